package jwtgrpc_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
)

// claimsJSON and claimsB64 are a claims challenge's claims, and the claims
// parameter that carries them, base64-encoded as Microsoft Entra ID sends it.
const (
	claimsJSON = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	claimsB64  = "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzAwMDAwMDAwIn19fQ=="
)

// TestGRPC_Interceptors_ClaimsChallenge has the server refuse every token
// not fetched with a claims challenge, with the challenge in the refusal's
// trailer or header: the interceptors fetch a successor with the claims and
// send the call again with it, once; the challenged token stayed cached
// until it came, and the successor serves the next call at the first try.
func TestGRPC_Interceptors_ClaimsChallenge(t *testing.T) {
	calls := []struct {
		name string
		call func(testgrpc.TestServiceClient) error
	}{
		{"unary", func(c testgrpc.TestServiceClient) error {
			sub, err := call(context.Background(), c)
			if err == nil && sub != "client-1" {
				t.Errorf("UnaryCall() = %q; want client-1", sub)
			}
			return err
		}},
		{"stream", greeted},
	}
	for _, cl := range calls {
		for _, inHeader := range []bool{false, true} {
			where := "trailer"
			if inHeader {
				where = "header"
			}
			t.Run(cl.name+", in the "+where, func(t *testing.T) {
				p := newIDP(t)
				s := startServer(t, p, serverConfig{})
				c := p.cache()
				creds := jwtgrpc.NewCredentials(c)
				client := dial(t, s.addr, s.clientTLS, grpc.WithChainUnaryInterceptor(creds.UnaryClientInterceptor()),
					grpc.WithChainStreamInterceptor(creds.StreamClientInterceptor()))
				s.challengeUnclaimed(challengeConfig{code: codes.Unauthenticated, inHeader: inHeader,
					value: `Bearer realm="", error="insufficient_claims", claims="` + claimsB64 + `"`})
				if err := cl.call(client); err != nil {
					t.Fatalf("call error = %v; want nil, after a retry with the claims", err)
				}
				if got := s.attempts.Load(); got != 2 {
					t.Errorf("server saw %d calls; want 2", got)
				}
				if got, want := p.claimsAsked(), []string{claimsJSON}; !slices.Equal(got, want) {
					t.Errorf("fetches with claims: %q; want %q", got, want)
				}
				if err := cl.call(client); err != nil {
					t.Errorf("next call error = %v; want nil", err)
				}
				if got := s.attempts.Load(); got != 3 {
					t.Errorf("server saw %d calls; want 3: the claims token serves the next call", got)
				}
				if got := p.calls.Load(); got != 2 {
					t.Errorf("token function called %d times; want 2", got)
				}
			})
		}
	}
}

// TestGRPC_MapInterceptor_ClaimsChallenge is the claims challenge of
// TestGRPC_Interceptors_ClaimsChallenge for a CacheMap's key: the successor
// is the key's, and the key function runs once per call.
func TestGRPC_MapInterceptor_ClaimsChallenge(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	m := jwtcache.NewCacheMap(jwtcache.MapTokenFunction(p.tenantToken), jwtcache.Logger(nil))
	var keys atomic.Int64
	creds := jwtgrpc.NewMapCredentials(m, func(ctx context.Context) (string, error) {
		keys.Add(1)
		return tenantKey(ctx)
	})
	client := dial(t, s.addr, s.clientTLS, withInterceptors(creds))
	s.challengeUnclaimed(challengeConfig{code: codes.Unauthenticated, value: `Bearer error="insufficient_claims", claims="` + claimsB64 + `"`})
	ctx := withTenant(context.Background(), "tenant-a")
	if sub, err := call(ctx, client); err != nil || sub != "tenant-a" {
		t.Fatalf("UnaryCall() = %q, %v; want tenant-a, nil, after a retry with the claims", sub, err)
	}
	if got, want := p.claimsAsked(), []string{claimsJSON}; !slices.Equal(got, want) {
		t.Errorf("fetches with claims: %q; want %q", got, want)
	}
	if tok, err := m.EnsureToken(ctx, "tenant-a"); err != nil || !strings.HasSuffix(jti(t, tok), "+claims") {
		t.Errorf("tenant-a's token after the call: jti %q, %v; want the one fetched with the claims", jti(t, tok), err)
	}
	if got := keys.Load(); got != 1 {
		t.Errorf("key function called %d times for the call; want 1", got)
	}
}

// jti returns the jti of tok, read without verifying it.
func jti(t *testing.T, tok string) string {
	t.Helper()
	parsed, err := jwt.ParseInsecure([]byte(tok))
	if err != nil {
		return ""
	}
	return parsed.JwtID()
}

// TestGRPC_UnaryInterceptor_Challenges: the rest of the challenge rule on
// gRPC: no retry where no token of the cache can do better, and the token
// kept; a challenge of another kind, a refusal that says nothing more.
func TestGRPC_UnaryInterceptor_Challenges(t *testing.T) {
	tests := []struct {
		name      string
		code      codes.Code
		challenge string
		tries     int64 // calls the server sees
		fetches   int64
	}{
		{"insufficient_scope", codes.Unauthenticated, `Bearer error="insufficient_scope", scope="orders:write"`, 1, 1},
		{"insufficient_user_authentication", codes.Unauthenticated, `Bearer error="insufficient_user_authentication"`, 1, 1},
		{"insufficient_claims without claims", codes.Unauthenticated, `Bearer error="insufficient_claims"`, 1, 1},
		{"PermissionDenied, insufficient_scope", codes.PermissionDenied, `Bearer error="insufficient_scope"`, 1, 1},
		{"PermissionDenied, invalid_token", codes.PermissionDenied, `Bearer error="invalid_token"`, 1, 1},
		{"invalid_token", codes.Unauthenticated, `Bearer error="invalid_token"`, 2, 2},
		{"another scheme's challenge", codes.Unauthenticated, `Basic realm="x"`, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t)
			s := startServer(t, p, serverConfig{})
			client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(p.cache())))
			s.challengeUnclaimed(challengeConfig{code: tt.code, value: tt.challenge})
			_, err := call(context.Background(), client)
			if status.Code(err) != tt.code {
				t.Errorf("UnaryCall() error = %v; want the server's %v", err, tt.code)
			}
			if got := s.attempts.Load(); got != tt.tries {
				t.Errorf("server saw %d calls; want %d", got, tt.tries)
			}
			if got := p.calls.Load(); got != tt.fetches {
				t.Errorf("token function called %d times; want %d", got, tt.fetches)
			}
			if len(p.claimsAsked()) != 0 {
				t.Errorf("fetched with claims %q; want none", p.claimsAsked())
			}
		})
	}
}
