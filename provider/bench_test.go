package provider_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// BenchmarkPrivateKeyJWTAssertion compares the cost of making one client
// assertion (claims, a fresh jti, the header, and the signature through jwx)
// with the signature alone: a crypto.Signer's Sign of the same signing input
// (SHA-256 and ECDSA, RSA or Ed25519), the floor.
func BenchmarkPrivateKeyJWTAssertion(b *testing.B) {
	keys := []struct {
		name string
		key  crypto.Signer
		hash crypto.Hash
	}{
		{"ES256", p256Key(), crypto.SHA256},
		{"RS256", rsaKey(), crypto.SHA256},
		{"EdDSA", edKey(), 0},
	}
	now := time.Now()
	const aud = "https://idp.example/realms/acme/protocol/openid-connect/token"
	for _, k := range keys {
		auth := provider.PrivateKeyJWT("billing", k.key, provider.KeyID("billing-2026"))
		b.Run(k.name+"/assertion", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := provider.SignAssertion(auth, aud, now); err != nil {
					b.Fatal(err)
				}
			}
		})
		a, err := provider.SignAssertion(auth, aud, now)
		if err != nil {
			b.Fatal(err)
		}
		input := []byte(a[:strings.LastIndexByte(a, '.')])
		b.Run(k.name+"/Signer.Sign", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				digest := input
				if k.hash != 0 {
					sum := sha256.Sum256(input)
					digest = sum[:]
				}
				if _, err := k.key.Sign(rand.Reader, digest, k.hash); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExchanger_Hit measures a call for a subject whose exchanged token
// is cached: the SHA-256 of a subject token of about a kilobyte, its key, and
// the map's hit.
func BenchmarkExchanger_Hit(b *testing.B) {
	p := newIDP(b, false)
	c := p.client(b, basic)
	x := provider.NewExchanger(c, provider.Request{Audience: []string{"orders"}}, jwtcache.Logger(nil))
	subject := strings.Repeat("s", 1024)
	if _, err := x.EnsureToken(b.Context(), subject); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x.EnsureToken(b.Context(), subject); err != nil {
			b.Fatal(err)
		}
	}
}
