package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
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

// BenchmarkDPoP_Proof compares making a DPoP proof for a resource request
// (claims with a fresh jti and the access token's hash, the header, the
// signature, the encoding) with the signature alone: ecdsa.Sign of the SHA-256
// of the same signing input, with the same P-256 key, the floor.
func BenchmarkDPoP_Proof(b *testing.B) {
	key := p256Key()
	d, err := provider.NewDPoP(key)
	if err != nil {
		b.Fatal(err)
	}
	const url = "https://api.example/orders/42"
	token := strings.Repeat("t", 800) // a JWT access token's size
	b.Run("proof", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Proof(http.MethodPost, url, token); err != nil {
				b.Fatal(err)
			}
		}
	})
	proof, err := d.Proof(http.MethodPost, url, token)
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(proof[:strings.LastIndexByte(proof, '.')])
	b.Run("ecdsa.Sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sum := sha256.Sum256(input)
			if _, _, err := ecdsa.Sign(rand.Reader, key, sum[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDPoP_Transport compares a request through the transport with a
// DPoP proof with one with a bearer token, to a server on 127.0.0.1 that
// answers 204: what DPoP adds to a request.
func BenchmarkDPoP_Transport(b *testing.B) {
	d, err := provider.NewDPoP(nil)
	if err != nil {
		b.Fatal(err)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(api.Close)
	token := strings.Repeat("t", 800)
	for _, s := range []struct {
		name string
		opts []jwtcache.TransportOption
	}{
		{"bearer", nil},
		{"dpop", []jwtcache.TransportOption{jwtcache.AuthScheme(d)}},
	} {
		cache := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.IssueFunction(func(context.Context) (jwtcache.Issued, error) {
			return jwtcache.Issued{Token: token, ExpiresIn: time.Hour}, nil
		}))
		base := &http.Transport{MaxIdleConnsPerHost: 4}
		b.Cleanup(base.CloseIdleConnections)
		client := &http.Client{Transport: jwtcache.NewTransport(cache, base, s.opts...)}
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(api.URL + "/orders/42")
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkDelegated_Hit measures a call for a user whose access token is
// cached, against its floor: the same hit on a plain CacheMap.
func BenchmarkDelegated_Hit(b *testing.B) {
	p := newIDP(b, false)
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-2"})
	})
	grants := jwtcachetest.NewGrants()
	d, err := provider.NewDelegated(p.client(b, basic), grants, jwtcache.Logger(nil))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Authorize(b.Context(), "alice", "rt-1"); err != nil {
		b.Fatal(err)
	}
	m := jwtcache.NewCacheMap(jwtcache.Logger(nil), jwtcache.MapIssueFunction(func(context.Context, string) (jwtcache.Issued, error) {
		return jwtcache.Issued{Token: "at", ExpiresIn: time.Hour}, nil
	}))
	for name, ensure := range map[string]func(context.Context, string) (string, error){
		"CacheMap":  m.EnsureToken,
		"Delegated": d.Token,
	} {
		if _, err := ensure(b.Context(), "alice"); err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ensure(ctx, "alice"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
