package bench_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	gjwt "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

const (
	issuer   = "https://issuer.example"
	audience = "orders-api"
	kidRSA   = "rsa"
	kidP256  = "p256"
)

var (
	errNoKey        = errors.New("bench: no key")
	errBadSignature = errors.New("bench: bad signature")
)

// algs are the algorithms benchmarked, each with the kid of its key.
var algs = []struct{ alg, kid string }{{"RS256", kidRSA}, {"ES256", kidP256}}

// signingKeys are the issuer's keys, generated once for the whole run: RSA
// 2048 takes a while.
var signingKeys = sync.OnceValue(func() (k struct {
	rsa  *rsa.PrivateKey
	p256 *ecdsa.PrivateKey
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// peers are the three receiving sides, on one JWKS server, with their key
// sets warm. Their goroutines (jwk.Cache's and keyfunc's refreshers) end, and
// the server closes, when the test or benchmark that made them ends.
type peers struct {
	tokens map[string]string // by alg, signed with the kid of algs

	keySet   *verify.KeySet
	verifier *verify.Verifier // default cache
	uncached *verify.Verifier // CacheSize(0): every call verifies

	jwxSet jwk.Set // jwk.NewCachedSet on the jwk.Cache

	keyfunc    keyfunc.Keyfunc
	gjwtParser *gjwt.Parser
}

// newPeers starts the JWKS server on 127.0.0.1, signs the tokens and warms
// each peer's key set.
func newPeers(tb testing.TB) *peers {
	tb.Helper()
	k := signingKeys()
	srv := httptest.NewServer(jwksHandler(tb, &k.rsa.PublicKey, &k.p256.PublicKey))
	tb.Cleanup(srv.Close) // registered first, so it runs after the cancels
	url := srv.URL + "/jwks"
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)

	now := time.Now()
	claims := map[string]any{
		"iss":       issuer,
		"aud":       audience,
		"sub":       "client-1",
		"client_id": "client-1",
		"scope":     "orders:read orders:write",
		"jti":       "7f3c2a10-4b5e-4d8f-9a61-0e2f3c4d5e6f",
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
	p := &peers{tokens: map[string]string{
		"RS256": sign(tb, "RS256", kidRSA, k.rsa, claims),
		"ES256": sign(tb, "ES256", kidP256, k.p256, claims),
	}}

	var err error
	if p.keySet, err = verify.NewKeySet(url, verify.HTTPClient(srv.Client())); err != nil {
		tb.Fatal(err)
	}
	opts := []verify.Option{verify.Issuer(issuer), verify.Audience(audience), verify.Algorithms(jwa.RS256, jwa.ES256)}
	if p.verifier, err = verify.New(p.keySet, opts...); err != nil {
		tb.Fatal(err)
	}
	if p.uncached, err = verify.New(p.keySet, append(opts, verify.CacheSize(jwtcache.Off))...); err != nil {
		tb.Fatal(err)
	}

	cache := jwk.NewCache(ctx)
	if err := cache.Register(url, jwk.WithHTTPClient(srv.Client())); err != nil {
		tb.Fatal(err)
	}
	if _, err := cache.Refresh(ctx, url); err != nil {
		tb.Fatal(err)
	}
	p.jwxSet = jwk.NewCachedSet(cache, url)

	if p.keyfunc, err = keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{Client: srv.Client()}); err != nil {
		tb.Fatal(err)
	}
	p.gjwtParser = gjwt.NewParser(
		gjwt.WithValidMethods([]string{"RS256", "ES256"}),
		gjwt.WithIssuer(issuer),
		gjwt.WithAudience(audience),
		gjwt.WithExpirationRequired(),
	)

	for _, a := range algs {
		if _, err := p.keySet.Key(ctx, a.kid); err != nil {
			tb.Fatalf("KeySet.Key(%q): %v", a.kid, err)
		}
	}
	return p
}

// verify verifies token with verify's Verifier v.
func (p *peers) verify(v *verify.Verifier, token string) error {
	_, err := v.Verify(context.Background(), token)
	return err
}

// jwx verifies token with jwt.Parse on the jwk.Cache.
func (p *peers) jwx(token string) error {
	_, err := jwt.ParseString(token,
		jwt.WithKeySet(p.jwxSet),
		jwt.WithValidate(true),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
	)
	return err
}

// golangJWT verifies token with golang-jwt on keyfunc.
func (p *peers) golangJWT(token string) error {
	_, err := p.gjwtParser.Parse(token, p.keyfunc.Keyfunc)
	return err
}

// jwksHandler serves the public keys as a JWKS, cacheable for an hour.
func jwksHandler(tb testing.TB, rsaPub *rsa.PublicKey, p256Pub *ecdsa.PublicKey) http.Handler {
	tb.Helper()
	set := jwk.NewSet()
	for _, k := range []struct {
		raw      any
		kid, alg string
	}{{rsaPub, kidRSA, "RS256"}, {p256Pub, kidP256, "ES256"}} {
		key, err := jwk.FromRaw(k.raw)
		if err != nil {
			tb.Fatal(err)
		}
		for name, v := range map[string]string{jwk.KeyIDKey: k.kid, jwk.AlgorithmKey: k.alg, jwk.KeyUsageKey: "sig"} {
			if err := key.Set(name, v); err != nil {
				tb.Fatal(err)
			}
		}
		if err := set.AddKey(key); err != nil {
			tb.Fatal(err)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(body)
	})
}

// sign returns a JWS in compact form of claims, signed by key with alg and
// kid in the header.
func sign(tb testing.TB, alg, kid string, key crypto.Signer, claims map[string]any) string {
	tb.Helper()
	b64 := base64.RawURLEncoding
	h, err := json.Marshal(map[string]string{"alg": alg, "kid": kid, "typ": "JWT"})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		// JWS puts r and s side by side, 32 bytes each (RFC 7518, section 3.4).
		r, s, e := ecdsa.Sign(rand.Reader, k, digest[:])
		sig, err = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...), e
	}
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// tamper returns token with its payload changed ("client-1" becomes
// "client-2") and its signature kept.
func tamper(tb testing.TB, token string) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	c, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.ReplaceAll(string(c), "client-1", "client-2")))
	return strings.Join(parts, ".")
}

// TestPeers_AgreeOnTokens checks that every peer accepts the tokens the
// benchmarks verify and refuses a tampered one, so that no benchmark measures
// a failing path.
func TestPeers_AgreeOnTokens(t *testing.T) {
	p := newPeers(t)
	peers := []struct {
		name   string
		verify func(string) error
	}{
		{"verify", func(s string) error { return p.verify(p.verifier, s) }},
		{"verify.CacheSize(jwtcache.Off)", func(s string) error { return p.verify(p.uncached, s) }},
		{"jwx", p.jwx},
		{"golang-jwt", p.golangJWT},
	}
	for _, pr := range peers {
		for _, a := range algs {
			t.Run(pr.name+"/"+a.alg, func(t *testing.T) {
				token := p.tokens[a.alg]
				for i := range 2 { // the second time, from verify's cache
					if err := pr.verify(token); err != nil {
						t.Errorf("verify #%d = %v; want nil", i+1, err)
					}
				}
				if err := pr.verify(tamper(t, token)); err == nil {
					t.Error("verify(tampered) = nil; want an error")
				}
			})
		}
	}
}
