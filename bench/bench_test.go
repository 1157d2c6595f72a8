package bench_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	gjwt "github.com/golang-jwt/jwt/v5"
)

// BenchmarkKeyLookup finds a key by kid in a warm key set: the lookup every
// verification starts with. For jwx, it is the jwk.Cache's set, as
// jwt.WithKeySet reads it; for keyfunc, the jwt.Keyfunc golang-jwt calls.
func BenchmarkKeyLookup(b *testing.B) {
	p := newPeers(b)
	for _, bm := range keyLookups(p) {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bm.lookup(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyLookupParallel is BenchmarkKeyLookup from every P at once: how
// the lookup scales.
func BenchmarkKeyLookupParallel(b *testing.B) {
	p := newPeers(b)
	for _, bm := range keyLookups(p) {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bm.lookup(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// keyLookups are the lookups of the RSA key by kid, one per peer.
func keyLookups(p *peers) []struct {
	name   string
	lookup func() error
} {
	ctx := context.Background()
	kf := p.keyfunc.KeyfuncCtx(ctx)
	token := &gjwt.Token{Header: map[string]any{"alg": "RS256", "kid": kidRSA}}
	return []struct {
		name   string
		lookup func() error
	}{
		{"verify", func() error {
			_, err := p.keySet.Key(ctx, kidRSA)
			return err
		}},
		{"jwx", func() error {
			if _, ok := p.jwxSet.LookupKeyID(kidRSA); !ok {
				return errNoKey
			}
			return nil
		}},
		{"keyfunc", func() error {
			_, err := kf(token)
			return err
		}},
	}
}

// BenchmarkVerifyNew verifies a token not seen before: verify with
// CacheSize(jwtcache.Off), so that every call checks the signature, as the others
// always do. bare is the floor: base64-decoding the parts and checking the
// signature of the signing input with the standard library.
func BenchmarkVerifyNew(b *testing.B) {
	p := newPeers(b)
	k := signingKeys()
	for _, a := range algs {
		token := p.tokens[a.alg]
		b.Run(a.alg, func(b *testing.B) {
			for _, bm := range []struct {
				name   string
				verify func(string) error
			}{
				{"verify", func(s string) error { return p.verify(p.uncached, s) }},
				{"jwx", p.jwx},
				{"golang-jwt", p.golangJWT},
				{"bare", func(s string) error {
					if a.alg == "RS256" {
						return bareRSA(&k.rsa.PublicKey, s)
					}
					return bareECDSA(&k.p256.PublicKey, s)
				}},
			} {
				b.Run(bm.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if err := bm.verify(token); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkVerifySeen verifies the RS256 token again and again: verify
// accepts it from its verified-token cache; the others verify it afresh each
// time, as they have no such cache.
func BenchmarkVerifySeen(b *testing.B) {
	p := newPeers(b)
	token := p.tokens["RS256"]
	for _, bm := range seenVerifiers(b, p, token) {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bm.verify(token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifySeenParallel is BenchmarkVerifySeen from every P at once:
// how the verified-token cache scales.
func BenchmarkVerifySeenParallel(b *testing.B) {
	p := newPeers(b)
	token := p.tokens["RS256"]
	for _, bm := range seenVerifiers(b, p, token) {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bm.verify(token); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// seenVerifiers are the peers' verifications of token, verify's with token
// already in its cache.
func seenVerifiers(b *testing.B, p *peers, token string) []struct {
	name   string
	verify func(string) error
} {
	b.Helper()
	if err := p.verify(p.verifier, token); err != nil {
		b.Fatal(err)
	}
	return []struct {
		name   string
		verify func(string) error
	}{
		{"verify", func(s string) error { return p.verify(p.verifier, s) }},
		{"jwx", p.jwx},
		{"golang-jwt", p.golangJWT},
	}
}

// bareParts base64-decodes the parts of token, as any verification must, and
// returns its signing input and signature.
func bareParts(token string) (input string, sig []byte, err error) {
	h, rest, _ := strings.Cut(token, ".")
	c, s, _ := strings.Cut(rest, ".")
	if _, err := base64.RawURLEncoding.DecodeString(h); err != nil {
		return "", nil, err
	}
	if _, err := base64.RawURLEncoding.DecodeString(c); err != nil {
		return "", nil, err
	}
	if sig, err = base64.RawURLEncoding.DecodeString(s); err != nil {
		return "", nil, err
	}
	return token[:len(h)+1+len(c)], sig, nil
}

// bareRSA checks token's RS256 signature with rsa.VerifyPKCS1v15.
func bareRSA(pub *rsa.PublicKey, token string) error {
	input, sig, err := bareParts(token)
	if err != nil {
		return err
	}
	digest := sha256.Sum256([]byte(input))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
}

// bareECDSA checks token's ES256 signature with ecdsa.Verify.
func bareECDSA(pub *ecdsa.PublicKey, token string) error {
	input, sig, err := bareParts(token)
	if err != nil {
		return err
	}
	if len(sig) != 64 {
		return errBadSignature
	}
	digest := sha256.Sum256([]byte(input))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errBadSignature
	}
	return nil
}
