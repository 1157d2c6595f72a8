package verify_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// TestKeyRotationAnyMoment: a provider that signs with a new key the moment
// it publishes it (as Ory Hydra does), at any moment after a key set fetch:
// no valid token is refused. The first token under a new key fetches the set
// at once; one whose refresh is not allowed yet is put off (503 with
// Retry-After, so that its client keeps it and tries again), never 401; and
// the sending side's ParseOption waits for the refresh instead of failing the
// token its cache fetched.
func TestKeyRotationAnyMoment(t *testing.T) {
	src := &ksSource{}
	keys := []jwk.Key{ksPrivate(t, "k0")}
	publish := func() {
		var pubs []any
		for _, k := range keys {
			p, _ := k.PublicKey()
			pubs = append(pubs, p)
		}
		src.set(ksDocOf(t, pubs...), http.Header{"Cache-Control": {"no-store"}})
	}
	publish()
	clk := ksNewClock()
	set := ksNew(t, ksServe(t, src), clk)
	v, err := verify.New(set, verify.Issuer(testIssuer), verify.Audience(testAudience), verify.Clock(clk.Now), verify.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	token := func(k jwk.Key) string {
		var raw any
		if err := k.Raw(&raw); err != nil {
			t.Fatal(err)
		}
		now := clk.Now()
		return sign(t, "ES256", k.KeyID(), raw, nil, claims(map[string]any{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}))
	}
	serve := func(tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := serve(token(keys[0])); rec.Code != http.StatusOK {
		t.Fatalf("first token: %d; want 200", rec.Code)
	}
	putOff := 0
	// Rotations at moments after the last fetch, from a tenth of a second to
	// past the refresh interval, some in quick succession.
	for i, after := range []time.Duration{100 * time.Millisecond, time.Second, 3 * time.Second, 9900 * time.Millisecond, 10 * time.Second, 200 * time.Millisecond, 5 * time.Second, 30 * time.Second} {
		clk.Advance(after)
		k := ksPrivate(t, "k"+itoa(i+1))
		keys = append(keys, k)
		publish()
		tok := token(k)
		for tries := 0; ; tries++ {
			rec := serve(tok)
			if rec.Code == http.StatusOK {
				break
			}
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("rotation %d, %v after the last: %d; want 200, or 503 with Retry-After", i, after, rec.Code)
			}
			putOff++
			if tries > 20 {
				t.Fatalf("rotation %d: still put off after %d tries", i, tries)
			}
			clk.Advance(time.Second) // the client tries again a little later
		}
	}
	if putOff == 0 {
		t.Log("no token was put off: every rotation found a refresh allowed")
	}
	if got := src.requests.Load(); got > 2+int64(len(keys)) {
		t.Errorf("key set requests = %d; want at most %d (one per rotation, and the first)", got, 2+len(keys))
	}

	// The sending side: a cache's ParseOption finds the key of a token
	// its provider signed with a key published just after the last
	// refresh, waiting for the refresh if need be.
	opt, err := verify.ParseOption(set, jwa.ES256)
	if err != nil {
		t.Fatal(err)
	}
	k := ksPrivate(t, "sender")
	keys = append(keys, k)
	publish()
	tok := token(k)
	done := make(chan error, 1)
	go func() {
		_, err := jwt.Parse([]byte(tok), opt, jwt.WithValidate(false))
		done <- err
	}()
	timeout := time.After(10 * time.Second) // a guard against a hang, not a wait
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("jwt.Parse() with ParseOption of a token under a just-published key: %v", err)
			}
			return
		case <-timeout:
			t.Fatal("ParseOption never found the key")
		case <-time.After(time.Millisecond):
			clk.Advance(100 * time.Millisecond)
		}
	}
}

// itoa is strconv.Itoa, for short test names.
func itoa(i int) string {
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

var _ = context.Background
