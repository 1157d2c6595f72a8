package verify_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// snapshotKeys is a KeySource with a lock-free KeyPresence, as *KeySet has.
type snapshotKeys struct {
	keys atomic.Pointer[map[string]jwk.Key]
}

func newSnapshotKeys(s *staticKeys) *snapshotKeys {
	k := &snapshotKeys{}
	m := s.keys
	k.keys.Store(&m)
	return k
}

func (s *snapshotKeys) Key(_ context.Context, kid string) (jwk.Key, error) {
	if k, ok := (*s.keys.Load())[kid]; ok {
		return k, nil
	}
	return nil, errNoKey
}

func (s *snapshotKeys) HasKey(kid string) bool {
	_, ok := (*s.keys.Load())[kid]
	return ok
}

// benchTokens are an RS256 and an ES256 token of typical access-token claims.
func benchTokens(b *testing.B) map[string]string {
	k := testKeys()
	c := claims(map[string]any{
		"jti":       "7f3c2a10-4b5e-4d8f-9a61-0e2f3c4d5e6f",
		"scope":     "orders:read orders:write",
		"client_id": "client-1",
	})
	return map[string]string{
		"RS256": sign(b, "RS256", "rsa", k.rsa, nil, c),
		"ES256": sign(b, "ES256", "p256", k.p256, nil, c),
	}
}

// BenchmarkVerifier_New verifies a token not seen before: the cache is off.
func BenchmarkVerifier_New(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			token := benchTokens(b)[alg]
			v := newVerifier(b, newSnapshotKeys(newKeys(b)), testkit.NewClock(t0), verify.CacheSize(jwtcache.Off))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// bareParts base64-decodes the parts of token, as any verification must.
func bareParts(b *testing.B, token string) (input string, sig []byte) {
	h, rest, _ := strings.Cut(token, ".")
	p, s, _ := strings.Cut(rest, ".")
	if _, err := base64.RawURLEncoding.DecodeString(h); err != nil {
		b.Fatal(err)
	}
	if _, err := base64.RawURLEncoding.DecodeString(p); err != nil {
		b.Fatal(err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		b.Fatal(err)
	}
	return token[:len(h)+1+len(p)], sig
}

// BenchmarkVerifier_BareRSA is the floor of BenchmarkVerifier_New/RS256:
// decoding the parts and rsa.VerifyPKCS1v15 of the signing input.
func BenchmarkVerifier_BareRSA(b *testing.B) {
	token := benchTokens(b)["RS256"]
	pub := &testKeys().rsa.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		input, sig := bareParts(b, token)
		digest := sha256.Sum256([]byte(input))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifier_BareECDSA is the floor of BenchmarkVerifier_New/ES256:
// decoding the parts and ecdsa.Verify of the signing input.
func BenchmarkVerifier_BareECDSA(b *testing.B) {
	token := benchTokens(b)["ES256"]
	pub := &testKeys().p256.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		input, sig := bareParts(b, token)
		digest := sha256.Sum256([]byte(input))
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(pub, digest[:], r, s) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkVerifier_Seen verifies a token verified before: a hit of the
// verified-token cache, with a KeyPresence check. Its cost grows with the
// token's length, which SHA-256 reads whole.
func BenchmarkVerifier_Seen(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			token := benchTokens(b)[alg]
			v := newVerifier(b, newSnapshotKeys(newKeys(b)), testkit.NewClock(t0))
			ctx := context.Background()
			if _, err := v.Verify(ctx, token); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(token)), "token-bytes")
		})
	}
}

// BenchmarkVerifier_SeenParallel is BenchmarkVerifier_Seen from every
// processor at once.
func BenchmarkVerifier_SeenParallel(b *testing.B) {
	token := benchTokens(b)["ES256"]
	v := newVerifier(b, newSnapshotKeys(newKeys(b)), testkit.NewClock(t0))
	ctx := context.Background()
	if _, err := v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, token); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
