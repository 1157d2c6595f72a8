package verify_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// TestClock_OneForVerifierAndKeySet: one Clock, given to a KeySet and to the
// Verifier on it, is the clock of both: the key set's expiry and the
// token's are judged by the one time the test moves.
func TestClock_OneForVerifierAndKeySet(t *testing.T) {
	priv := ksPrivate(t, "A")
	pub, err := priv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var raw ecdsa.PrivateKey
	if err := priv.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	src := &ksSource{}
	src.set(ksDocOf(t, pub), nil) // no caching headers: the MinTTL, 5 minutes
	clk := ksNewClock()
	clock := verify.Clock(clk.Now)
	set := ksNew(t, ksServe(t, src), nil, clock)
	v, err := verify.New(set, verify.Issuer(testIssuer), verify.Audience(testAudience), clock)
	if err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	token := sign(t, "ES256", "A", &raw, nil, claims(map[string]any{"iat": start.Unix(), "exp": start.Add(time.Minute).Unix()}))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify() = %v; want the token accepted", err)
	}
	if got, want := set.Stats().Expiry, start.Add(5*time.Minute); !got.Equal(want) {
		t.Errorf("KeySet Stats().Expiry = %v; want %v, 5 minutes after the test clock's start", got, want)
	}
	clk.Advance(time.Minute + 31*time.Second) // past exp and the leeway
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, verify.ErrExpired) {
		t.Errorf("Verify() after the test clock passed exp = %v; want ErrExpired", err)
	}
}

// TestKeySetClock_Deprecated: the deprecated KeySetClock still sets a
// KeySet's clock.
func TestKeySetClock_Deprecated(t *testing.T) {
	src := &ksSource{}
	src.set(ksDoc(t, "k1"), nil)
	clk := ksNewClock()
	set, err := verify.NewKeySet(ksServe(t, src), verify.KeySetClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Key(context.Background(), "k1"); err != nil {
		t.Fatal(err)
	}
	if got, want := set.Stats().LastRefresh, clk.Now(); !got.Equal(want) {
		t.Errorf("Stats().LastRefresh = %v; want the test clock's %v", got, want)
	}
}

// TestLogger_OneForVerifierAndKeySet: one Logger, given to a KeySet and to
// the Verifier on it, receives the records of both: the key set's fetch and
// the middleware's refusal. The deprecated KeySetLogger still sets a
// KeySet's.
func TestLogger_OneForVerifierAndKeySet(t *testing.T) {
	for _, deprecated := range []bool{false, true} {
		l, log := testkit.NewLogger()
		logger := verify.Logger(l)
		var ksLogger verify.KeySetOption = logger
		if deprecated {
			ksLogger = verify.KeySetLogger(l)
		}
		src := &ksSource{}
		src.set(ksDoc(t, "k1"), nil)
		set := ksNew(t, ksServe(t, src), ksNewClock(), ksLogger)
		v, err := verify.New(set, verify.Issuer(testIssuer), verify.Audience(testAudience), logger)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := set.Key(context.Background(), "k1"); err != nil {
			t.Fatal(err)
		}
		h := v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		for _, msg := range []string{"verify: key set fetched", "verify: request refused"} {
			if !strings.Contains(log.String(), msg) {
				t.Errorf("deprecated %v: the one logger did not get %q; got:\n%s", deprecated, msg, log.String())
			}
		}
	}
}
