package verify_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

const (
	testIssuer   = "https://issuer.example"
	testAudience = "api://orders"
)

// t0 is the fake clock's start.
var t0 = time.Unix(1_700_000_000, 0)

// allAlgs are every algorithm a Verifier can verify.
var allAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
	jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
}

// keyring holds the tests' private keys, generated once.
type keyring struct {
	rsa, rsa1024, rsaOther *rsa.PrivateKey
	p256, p384, p521       *ecdsa.PrivateKey
	ed                     ed25519.PrivateKey
	hmac                   []byte
}

var testKeys = sync.OnceValue(func() keyring {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k keyring
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	k.p521, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	k.hmac = []byte("a secret of thirty-two bytes....")
	return k
})

// staticKeys is a KeySource of fixed keys that counts its calls.
type staticKeys struct {
	mu sync.Mutex
	// guards keys
	keys  map[string]jwk.Key
	calls atomic.Int64
}

// errNoKey is staticKeys' error for an unknown kid.
var errNoKey = errors.New("no such key")

func (s *staticKeys) Key(ctx context.Context, kid string) (jwk.Key, error) {
	s.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, errNoKey
}

func (s *staticKeys) remove(kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, kid)
}

// presentKeys is staticKeys with KeyPresence.
type presentKeys struct{ *staticKeys }

func (p presentKeys) HasKey(kid string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.keys[kid]
	return ok
}

// publicJWK returns the public JWK of priv with kid and the extra fields.
func publicJWK(t testing.TB, priv any, kid string, fields map[string]any) jwk.Key {
	t.Helper()
	var raw any = priv
	if s, ok := priv.(crypto.Signer); ok {
		raw = s.Public()
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	fields = maps.Clone(fields)
	if fields == nil {
		fields = map[string]any{}
	}
	fields[jwk.KeyIDKey] = kid
	for name, val := range fields {
		if err := k.Set(name, val); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// newKeys returns a key source with a key of every kind, by kid.
func newKeys(t testing.TB) *staticKeys {
	k := testKeys()
	return &staticKeys{keys: map[string]jwk.Key{
		"rsa":       publicJWK(t, k.rsa, "rsa", nil),
		"rsa-rs512": publicJWK(t, k.rsa, "rsa-rs512", map[string]any{jwk.AlgorithmKey: jwa.RS512}),
		"rsa-enc":   publicJWK(t, k.rsa, "rsa-enc", map[string]any{jwk.KeyUsageKey: "enc"}),
		"rsa-sig":   publicJWK(t, k.rsa, "rsa-sig", map[string]any{jwk.KeyUsageKey: "sig", jwk.AlgorithmKey: jwa.RS256}),
		"rsa-ops":   publicJWK(t, k.rsa, "rsa-ops", map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpEncrypt}}),
		"rsa1024":   publicJWK(t, k.rsa1024, "rsa1024", nil),
		"p256":      publicJWK(t, k.p256, "p256", nil),
		"p384":      publicJWK(t, k.p384, "p384", nil),
		"p521":      publicJWK(t, k.p521, "p521", nil),
		"ed":        publicJWK(t, k.ed, "ed", nil),
		"hs":        publicJWK(t, k.hmac, "hs", nil),
	}}
}

// claims returns valid claims for t0, with the changes (a nil value deletes).
func claims(changes map[string]any) map[string]any {
	c := map[string]any{
		"iss": testIssuer,
		"aud": testAudience,
		"sub": "client-1",
		"iat": t0.Unix(),
		"exp": t0.Add(time.Hour).Unix(),
	}
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// b64 encodes b as a JWS part.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign returns a compact JWS of claims by alg with key, with header fields
// added to alg (a nil value deletes), signed independently of the package
// under test.
func sign(t testing.TB, alg string, kid string, key any, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	hj, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := b64(hj) + "." + b64(cj)
	return input + "." + b64(rawSign(t, alg, key, input))
}

// rawSign signs input by alg with key.
func rawSign(t testing.TB, alg string, key any, input string) []byte {
	t.Helper()
	hash := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}[alg[len(alg)-3:]]
	var digest []byte
	if hash != 0 {
		h := hash.New()
		h.Write([]byte(input))
		digest = h.Sum(nil)
	}
	var sig []byte
	var err error
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if strings.HasPrefix(alg, "PS") {
			sig, err = rsa.SignPSS(rand.Reader, k, hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(nil, k, hash, digest)
		}
	case *ecdsa.PrivateKey:
		r, s, e := ecdsa.Sign(rand.Reader, k, digest)
		n := (k.Curve.Params().BitSize + 7) / 8
		sig, err = append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...), e
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(input))
	case []byte:
		m := hmac.New(hash.New, k)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case nil:
	default:
		t.Fatalf("rawSign: %T", key)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// newVerifier returns a verifier for testIssuer and testAudience on clock,
// allowing every algorithm, configured further by opts.
func newVerifier(t testing.TB, keys verify.KeySource, clock *testkit.Clock, opts ...verify.Option) *verify.Verifier {
	t.Helper()
	opts = append([]verify.Option{
		verify.Issuer(testIssuer), verify.Audience(testAudience),
		verify.Algorithms(allAlgs...), verify.Clock(clock.Now),
	}, opts...)
	v, err := verify.New(keys, opts...)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return v
}

// checkNoTokenText fails if msg holds 8 or more consecutive characters of
// token's payload or signature.
func checkNoTokenText(t *testing.T, msg, token string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) < 3 {
		parts = []string{token}
	}
	for _, part := range parts[1:] {
		for i := 0; i+8 <= len(part); i++ {
			if strings.Contains(msg, part[i:i+8]) {
				t.Errorf("%q holds token text %q", msg, part[i:i+8])
				return
			}
		}
	}
}

// ptr returns a pointer to x.
func ptr[T any](x T) *T { return &x }
