package challenge_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
)

// fakeSource records what the rule does to it. It holds token "old" until
// it is dropped or renewed; then it hands out fresh, or fails with err.
type fakeSource struct {
	held, fresh string
	err         error
	calls       []string // "invalidate", "token", "renew", in order
	claims      string   // the claims on the context of Renew
}

func (s *fakeSource) Token(context.Context) (string, error) {
	s.calls = append(s.calls, "token")
	return s.held, s.err
}

func (s *fakeSource) Invalidate(tok string) bool {
	s.calls = append(s.calls, "invalidate")
	if tok != s.held {
		return false
	}
	s.held = s.fresh
	return true
}

func (s *fakeSource) Renew(ctx context.Context, tok string) (string, error) {
	s.calls = append(s.calls, "renew")
	s.claims, _ = challenge.Claims(ctx)
	if s.err != nil {
		return "", s.err
	}
	s.held = s.fresh
	return s.held, nil
}

func TestHandle(t *testing.T) {
	const claimsJSON = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	const claimsB64 = "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzAwMDAwMDAwIn19fQ=="
	errFetch := errors.New("provider down")
	tests := []struct {
		name      string
		status    challenge.Status
		again     bool
		challenge string
		replay    bool
		fresh     string // the source's next token; "old" is none different
		err       error  // the source's fetch error
		// want
		action challenge.Action
		next   string // "" when not sent again
		calls  string
		claims string
	}{
		{name: "not a refusal", status: challenge.Other, challenge: `Bearer error="invalid_token"`, replay: true, fresh: "new",
			action: challenge.Pass},
		{name: "401 without a challenge", status: challenge.Unauthorized, replay: true, fresh: "new",
			action: challenge.Refetch, next: "new", calls: "invalidate token"},
		{name: "401 invalid_token", status: challenge.Unauthorized, challenge: `Bearer error="invalid_token"`, replay: true, fresh: "new",
			action: challenge.Refetch, next: "new", calls: "invalidate token"},
		{name: "401 of another scheme", status: challenge.Unauthorized, challenge: `Basic realm="x"`, replay: true, fresh: "new",
			action: challenge.Refetch, next: "new", calls: "invalidate token"},
		{name: "401, cannot replay: dropped, no fetch", status: challenge.Unauthorized, fresh: "new",
			action: challenge.Refetch, calls: "invalidate"},
		{name: "401, no different token", status: challenge.Unauthorized, replay: true, fresh: "old",
			action: challenge.Refetch, calls: "invalidate token"},
		{name: "401, fetch fails", status: challenge.Unauthorized, replay: true, fresh: "new", err: errFetch,
			action: challenge.Refetch, calls: "invalidate token"},
		{name: "claims, base64", status: challenge.Unauthorized, challenge: `Bearer realm="", error="insufficient_claims", claims="` + claimsB64 + `"`, replay: true, fresh: "new",
			action: challenge.Renew, next: "new", calls: "renew", claims: claimsJSON},
		{name: "claims, JSON", status: challenge.Unauthorized, challenge: `Bearer error="insufficient_claims", claims="` + strings.ReplaceAll(claimsJSON, `"`, `\"`) + `"`, replay: true, fresh: "new",
			action: challenge.Renew, next: "new", calls: "renew", claims: claimsJSON},
		{name: "claims, cannot replay: nothing fetched", status: challenge.Unauthorized, challenge: `Bearer error="insufficient_claims", claims="` + claimsB64 + `"`, fresh: "new",
			action: challenge.Renew},
		{name: "claims, renewal fails", status: challenge.Unauthorized, challenge: `Bearer error="insufficient_claims", claims="` + claimsB64 + `"`, replay: true, fresh: "new", err: errFetch,
			action: challenge.Renew, calls: "renew", claims: claimsJSON},
		{name: "claims without claims", status: challenge.Unauthorized, challenge: `Bearer error="insufficient_claims"`, replay: true, fresh: "new",
			action: challenge.Pass},
		{name: "claims not JSON", status: challenge.Unauthorized, challenge: `Bearer error="insufficient_claims", claims="bm90IGpzb24="`, replay: true, fresh: "new",
			action: challenge.Pass},
		{name: "403 insufficient_scope", status: challenge.Forbidden, challenge: `Bearer error="insufficient_scope", scope="orders:write"`, replay: true, fresh: "new",
			action: challenge.Refuse},
		{name: "401 insufficient_scope", status: challenge.Unauthorized, challenge: `Bearer error="insufficient_scope"`, replay: true, fresh: "new",
			action: challenge.Refuse},
		{name: "401 insufficient_user_authentication", status: challenge.Unauthorized, challenge: `DPoP error="insufficient_user_authentication", acr_values="phr"`, replay: true, fresh: "new",
			action: challenge.Refuse},
		{name: "use_dpop_nonce the scheme did not take", status: challenge.Unauthorized, challenge: `DPoP error="use_dpop_nonce"`, replay: true, fresh: "new",
			action: challenge.Pass},
		{name: "nonce the scheme took", status: challenge.Unauthorized, again: true, challenge: `DPoP error="use_dpop_nonce"`, replay: true, fresh: "new",
			action: challenge.Resend, next: "old"},
		{name: "nonce, cannot replay", status: challenge.Unauthorized, again: true, fresh: "new",
			action: challenge.Resend},
		{name: "403 without a challenge", status: challenge.Forbidden, replay: true, fresh: "new",
			action: challenge.Pass},
		{name: "403 invalid_token", status: challenge.Forbidden, challenge: `Bearer error="invalid_token"`, replay: true, fresh: "new",
			action: challenge.Pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &fakeSource{held: "old", fresh: tt.fresh, err: tt.err}
			var values []string
			if tt.challenge != "" {
				values = []string{tt.challenge}
			}
			v, next, ok := challenge.Handle(context.Background(), src, tt.status, tt.again, values, "old", tt.replay)
			if v.Action != tt.action || next != tt.next || ok != (tt.next != "") {
				t.Errorf("Handle() = %v, %q, %v; want %v, %q, %v", v.Action, next, ok, tt.action, tt.next, tt.next != "")
			}
			if got := strings.Join(src.calls, " "); got != tt.calls {
				t.Errorf("calls on the source: %q; want %q", got, tt.calls)
			}
			if src.claims != tt.claims || (tt.claims != "" && v.Claims != tt.claims) {
				t.Errorf("renewed with claims %q (verdict %q); want %q", src.claims, v.Claims, tt.claims)
			}
			if tt.action == challenge.Refuse && !slices.Contains([]string{challenge.CodeInsufficientScope, challenge.CodeInsufficientUserAuth}, v.Challenge.Params["error"]) {
				t.Errorf("refusal's challenge %#v; want the one that refused", v.Challenge)
			}
		})
	}
}

// TestHandle_Claims: the claims that Renew fetches with are on its context,
// for jwtcache.ClaimsChallenge, and on no other.
func TestHandle_Claims(t *testing.T) {
	if _, ok := challenge.Claims(context.Background()); ok {
		t.Error("Claims(Background) reports claims")
	}
	ctx := challenge.WithClaims(context.Background(), `{"id_token":{}}`)
	if got, ok := challenge.Claims(ctx); !ok || got != `{"id_token":{}}` {
		t.Errorf("Claims(WithClaims(x)) = %q, %v; want x, true", got, ok)
	}
}
