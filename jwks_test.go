package jwtcache_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
)

// jwksServer publishes a key set that the test can replace, and counts the
// times it is fetched.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	// guards set
	set jwk.Set
}

func newJWKSServer(t *testing.T, keys ...jwk.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.publish(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(t *testing.T, keys ...jwk.Key) {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		set.AddKey(pub)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = set
}

// rsaKey returns a new RSA private key as a JWK with the given kid.
func rsaKey(t *testing.T, kid string) jwk.Key {
	t.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	k.Set(jwk.KeyIDKey, kid)
	k.Set(jwk.AlgorithmKey, jwa.RS256)
	return k
}

// signWith returns an hour-long token signed with alg and key, whose header
// carries kid.
func signWith(t *testing.T, alg jwa.SignatureAlgorithm, key any, kid string) string {
	t.Helper()
	tok, err := jwt.NewBuilder().Subject("svc").IssuedAt(time.Now()).Expiration(time.Now().Add(time.Hour)).Build()
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	hdr.Set(jws.KeyIDKey, kid)
	raw, err := jwt.Sign(tok, jwt.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// unsigned returns an hour-long token with alg "none".
func unsigned(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewBuilder().Subject("svc").Expiration(time.Now().Add(time.Hour)).Build()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Sign(tok, jwt.WithInsecureNoSignature())
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestJWKS(t *testing.T) {
	k1, k2 := rsaKey(t, "k1"), rsaKey(t, "k2")
	srv := newJWKSServer(t, k1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	verify, err := jwtcache.JWKS(ctx, srv.URL, srv.Client(), jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	check := func(tok string) error {
		c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.ParseOptions(verify),
			jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
		_, err := c.EnsureToken(context.Background())
		return err
	}

	if err := check(signWith(t, jwa.RS256, k1, "k1")); err != nil {
		t.Fatalf("token signed with the published key: %v", err)
	}
	if got := srv.fetches.Load(); got != 1 {
		t.Errorf("key set fetches = %d; want 1", got)
	}

	// Rotation: the provider now signs with k2, which the cached set lacks.
	srv.publish(t, k1, k2)
	if err := check(signWith(t, jwa.RS256, k2, "k2")); err != nil {
		t.Fatalf("token signed with a rotated-in key: %v", err)
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("key set fetches after rotation = %d; want 2 (one refresh)", got)
	}

	var pubRaw rsa.PublicKey
	pub, err := k1.PublicKey()
	if err == nil {
		err = pub.Raw(&pubRaw)
	}
	if err != nil {
		t.Fatal(err)
	}
	hmacSecret := pubRaw.N.Bytes() // the public modulus, used as an HMAC secret
	other := rsaKey(t, "k1")       // the same kid on a key the provider never published

	tests := []struct {
		name string
		tok  string
	}{
		{"alg none", unsigned(t)},
		{"HMAC with the public key as secret", signWith(t, jwa.HS256, hmacSecret, "k1")},
		{"signed by an impostor under a known kid", signWith(t, jwa.RS256, other, "k1")},
		{"unknown kid", signWith(t, jwa.RS256, rsaKey(t, "k9"), "k9")},
		{"algorithm not allowed", signWith(t, jwa.RS512, k1, "k1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := check(tt.tok); !errors.Is(err, jwtcache.ErrUnparsable) {
				t.Errorf("EnsureToken() error = %v; want ErrUnparsable", err)
			}
		})
	}
	// Within 10s of the rotation's refresh, unknown kids fetch nothing more.
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("key set fetches = %d; want still 2", got)
	}

	// With ES256 allowed too, an ES256 token naming the RSA key's kid is
	// refused: the key's type does not suit the algorithm.
	both, err := jwtcache.JWKS(ctx, srv.URL, srv.Client(), jwa.RS256, jwa.ES256)
	if err != nil {
		t.Fatal(err)
	}
	es := signWith(t, jwa.ES256, testKey, "k1")
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.ParseOptions(both),
		jwtcache.TokenFunction(func(context.Context) (string, error) { return es, nil }))
	if _, err := c.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrUnparsable) {
		t.Errorf("ES256 token under an RSA kid: error = %v; want ErrUnparsable", err)
	}

	// An ES256 token verified by a P-384 key, or a key meant for encryption,
	// is refused (RFC 7518, section 3.4).
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  any
		use  string
	}{{"P-384 key for ES256", p384, ""}, {"encryption key", testKey, "enc"}, {"good key", testKey, "sig"}} {
		k, err := jwk.FromRaw(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		k.Set(jwk.KeyIDKey, "ec")
		if tt.use != "" {
			k.Set(jwk.KeyUsageKey, tt.use)
		}
		ecSrv := newJWKSServer(t, k)
		verifyEC, err := jwtcache.JWKS(ctx, ecSrv.URL, ecSrv.Client(), jwa.ES256)
		if err != nil {
			t.Fatal(err)
		}
		tok := signWith(t, jwa.ES256, tt.key, "ec")
		c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.ParseOptions(verifyEC),
			jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
		_, err = c.EnsureToken(context.Background())
		if want := tt.name == "good key"; (err == nil) != want {
			t.Errorf("%s: EnsureToken() error = %v; want ok = %v", tt.name, err, want)
		}
	}
}

func TestJWKS_BadArguments(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		url  string
		algs []jwa.SignatureAlgorithm
	}{
		{"no algorithms", "https://idp.example/jwks", nil},
		{"none", "https://idp.example/jwks", []jwa.SignatureAlgorithm{jwa.NoSignature}},
		{"HMAC", "https://idp.example/jwks", []jwa.SignatureAlgorithm{jwa.RS256, jwa.HS256}},
		{"not a URL", "idp.example/jwks", []jwa.SignatureAlgorithm{jwa.RS256}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := jwtcache.JWKS(ctx, tt.url, nil, tt.algs...); err == nil {
				t.Errorf("JWKS() = nil error; want one")
			}
		})
	}
}
