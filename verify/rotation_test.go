package verify_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// TestKeyRotation runs a Verifier on a KeySet through an issuer's key
// rotation: key B published beside A, tokens signed with B, A withdrawn.
// No valid token is refused at any step, and a token of A, verified and
// cached before, is refused once A has left the set.
func TestKeyRotation(t *testing.T) {
	clk := ksNewClock()
	clock := verify.Clock(clk.Now) // one clock, for the key set and the verifier
	privA, privB := ksPrivate(t, "A"), ksPrivate(t, "B")
	pub := func(k jwk.Key) jwk.Key {
		p, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw := func(k jwk.Key) *ecdsa.PrivateKey {
		var r ecdsa.PrivateKey
		if err := k.Raw(&r); err != nil {
			t.Fatal(err)
		}
		return &r
	}
	src := &ksSource{}
	src.set(ksDocOf(t, pub(privA)), nil)
	set := ksNew(t, ksServe(t, src), nil, clock)
	v, err := verify.New(set, verify.Issuer(testIssuer), verify.Audience(testAudience), clock)
	if err != nil {
		t.Fatal(err)
	}
	token := func(kid string, k jwk.Key) string {
		now := clk.Now()
		return sign(t, "ES256", kid, raw(k), nil, claims(map[string]any{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}))
	}
	mustVerify := func(step, tok string) {
		t.Helper()
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("%s: Verify() = %v; want the token accepted", step, err)
		}
	}

	a1 := token("A", privA)
	mustVerify("A only", a1)

	// B is published beside A, and tokens signed with it arrive: the
	// unknown kid refreshes the set (past its rate limit), and both verify.
	src.set(ksDocOf(t, pub(privA), pub(privB)), nil)
	clk.Advance(11 * time.Second)
	b1 := token("B", privB)
	mustVerify("B published", b1)
	mustVerify("B published, A again", a1)

	// A is withdrawn. Once the set's TTL (5 minutes, the minimum, since the
	// server sends no caching headers) has run, the next call refreshes it.
	src.set(ksDocOf(t, pub(privB)), nil)
	clk.Advance(6 * time.Minute)
	mustVerify("A withdrawn, B again", token("B", privB))
	deadline := time.Now().Add(10 * time.Second)
	for set.HasKey("A") {
		if time.Now().After(deadline) {
			t.Fatal("the set still has A 10s after its refresh was due")
		}
		time.Sleep(time.Millisecond) // the background refresh lands
	}
	if _, err := v.Verify(context.Background(), a1); !errors.Is(err, verify.ErrUnknownKey) {
		t.Errorf("Verify(a token of the withdrawn key) = %v; want ErrUnknownKey", err)
	}
	mustVerify("after the rotation, B", b1)
	if got := set.Stats().Refreshes; got < 3 {
		t.Errorf("KeySet refreshes = %d; want the first fetch, B's and the one after the TTL", got)
	}
}
