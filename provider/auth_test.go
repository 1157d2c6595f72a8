package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func TestClientSecretBasic(t *testing.T) {
	tests := []struct {
		name, id, secret string
		wantHeader       string // empty: only decoded
	}{
		{"plain", "billing", "s3cret", "Basic " + base64.StdEncoding.EncodeToString([]byte("billing:s3cret"))},
		// RFC 6749, section 2.3.1: form-urlencoded, then base64: a space is
		// "+", a "+" is "%2B".
		{"form-urlencoded before base64", "a b", "c+d", "Basic " + base64.StdEncoding.EncodeToString([]byte("a+b:c%2Bd"))},
		{"special characters", "svc:billing/ü", "p@ss:w+rd/&=%~ é\"'", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, true)
			c := p.client(t, provider.ClientSecretBasic(tt.id, tt.secret))
			if _, err := c.Issue(t.Context()); err != nil {
				t.Fatalf("Issue() error = %v", err)
			}
			r := p.last(t)
			h := r.header.Get("Authorization")
			if tt.wantHeader != "" && h != tt.wantHeader {
				t.Errorf("Authorization = %q; want %q", h, tt.wantHeader)
			}
			// Decode as RFC 6749 says a provider must.
			raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(h, "Basic "))
			if err != nil || !strings.HasPrefix(h, "Basic ") {
				t.Fatalf("Authorization = %q; want Basic and base64", h)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok || strings.Contains(pass, ":") {
				t.Fatalf("decoded credentials %q; want one ':', between the encoded id and secret", raw)
			}
			gotID, err1 := url.QueryUnescape(user)
			gotSecret, err2 := url.QueryUnescape(pass)
			if err1 != nil || err2 != nil || gotID != tt.id || gotSecret != tt.secret {
				t.Errorf("decoded id, secret = %q, %q (%v, %v); want %q, %q", gotID, gotSecret, err1, err2, tt.id, tt.secret)
			}
			for _, k := range []string{"client_id", "client_secret", "client_assertion"} {
				if r.form.Has(k) {
					t.Errorf("form has %s = %q; want it only in the header", k, r.form.Get(k))
				}
			}
			if got := r.form.Get("grant_type"); got != "client_credentials" {
				t.Errorf("grant_type = %q; want client_credentials", got)
			}
		})
	}
}

func TestClientSecretPost(t *testing.T) {
	p := newIDP(t, true)
	id, secret := "svc:billing/ü", "p@ss:w+rd/&=%~ é"
	c := p.client(t, provider.ClientSecretPost(id, secret))
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	r := p.last(t)
	if got := r.form.Get("client_id"); got != id {
		t.Errorf("client_id = %q; want %q", got, id)
	}
	if got := r.form.Get("client_secret"); got != secret {
		t.Errorf("client_secret = %q; want %q", got, secret)
	}
	if h := r.header.Get("Authorization"); h != "" {
		t.Errorf("Authorization = %q; want none", h)
	}
	if got := r.header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q; want application/x-www-form-urlencoded", got)
	}
}

// assertionOf checks that r authenticates as the client id with a JWT client
// assertion, and returns it.
func assertionOf(t *testing.T, r tokenRequest, id string) string {
	t.Helper()
	if got := r.form.Get("client_assertion_type"); got != jwtBearer {
		t.Errorf("client_assertion_type = %q; want %q", got, jwtBearer)
	}
	if got := r.form.Get("client_id"); got != id {
		t.Errorf("client_id = %q; want %q", got, id)
	}
	if r.form.Has("client_secret") || r.header.Get("Authorization") != "" {
		t.Errorf("request has a client_secret or an Authorization header beside the assertion")
	}
	a := r.form.Get("client_assertion")
	if a == "" {
		t.Fatal("client_assertion is empty")
	}
	return a
}

// assertionClaims are a client assertion's claims; aud a string, as RFC 7523
// allows and every provider accepts.
type assertionClaims struct {
	Iss, Sub, Aud, Jti string
	Iat, Exp           int64
}

// verifyAssertion verifies s's signature with key by alg, and checks its
// header's alg and its claims: iss and sub id, aud aud, iat now, exp
// lifetime later, a jti. It returns the header and the jti.
func verifyAssertion(t *testing.T, s string, alg jwa.SignatureAlgorithm, key any, id, aud string, now time.Time, lifetime time.Duration) (jws.Headers, string) {
	t.Helper()
	payload, err := jws.Verify([]byte(s), jws.WithKey(alg, key))
	if err != nil {
		t.Fatalf("verify the client assertion with %s: %v", alg, err)
	}
	msg, err := jws.Parse([]byte(s))
	if err != nil {
		t.Fatalf("parse the client assertion: %v", err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if got := h.Algorithm(); got != alg {
		t.Errorf("assertion alg = %s; want %s", got, alg)
	}
	if got := h.Type(); got != "JWT" {
		t.Errorf("assertion typ = %q; want JWT", got)
	}
	var cl assertionClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		t.Fatalf("assertion claims %s: %v", payload, err)
	}
	want := assertionClaims{Iss: id, Sub: id, Aud: aud, Jti: cl.Jti, Iat: now.Unix(), Exp: now.Add(lifetime).Unix()}
	if cl != want {
		t.Errorf("assertion claims = %+v; want %+v", cl, want)
	}
	if len(cl.Jti) < 16 {
		t.Errorf("assertion jti = %q; want at least 16 random characters", cl.Jti)
	}
	return h, cl.Jti
}

func TestClientSecretJWT(t *testing.T) {
	tests := []struct {
		name string
		opts []provider.AssertionOption
		alg  jwa.SignatureAlgorithm
	}{
		{"HS256 by default", nil, jwa.HS256},
		{"HS512 chosen", []provider.AssertionOption{provider.SigningAlgorithm("HS512")}, jwa.HS512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, true)
			clk := newClock()
			secret := []byte("a client secret of at least 64 bytes, long enough for HMAC with SHA-512")
			c := p.client(t, provider.ClientSecretJWT("billing", secret, tt.opts...), provider.Clock(clk.Now))
			secret[0] = 'X' // copied
			if _, err := c.Issue(t.Context()); err != nil {
				t.Fatalf("Issue() error = %v", err)
			}
			a := assertionOf(t, p.last(t), "billing")
			verifyAssertion(t, a, tt.alg, []byte("a client secret of at least 64 bytes, long enough for HMAC with SHA-512"), "billing", p.srv.URL+"/token", clk.Now(), time.Minute)
		})
	}
}

func TestPrivateKeyJWT(t *testing.T) {
	tests := []struct {
		name string
		key  crypto.Signer
		opts []provider.AssertionOption
		alg  jwa.SignatureAlgorithm
	}{
		{"RSA: RS256", rsaKey(), nil, jwa.RS256},
		{"RSA: PS256 chosen", rsaKey(), []provider.AssertionOption{provider.SigningAlgorithm("PS256")}, jwa.PS256},
		{"P-256: ES256", p256Key(), nil, jwa.ES256},
		{"P-384: ES384", p384Key(), nil, jwa.ES384},
		{"Ed25519: EdDSA", edKey(), nil, jwa.EdDSA},
		{"a KMS key, RSA", &kmsKey{inner: rsaKey()}, nil, jwa.RS256},
		{"a KMS key, RSA: PS256 chosen", &kmsKey{inner: rsaKey()}, []provider.AssertionOption{provider.SigningAlgorithm("PS256")}, jwa.PS256},
		{"a KMS key, P-256", &kmsKey{inner: p256Key()}, nil, jwa.ES256},
		{"a KMS key, P-384", &kmsKey{inner: p384Key()}, nil, jwa.ES384},
		{"a KMS key, Ed25519", &kmsKey{inner: edKey()}, nil, jwa.EdDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, true)
			p.set("token_endpoint_auth_methods_supported", []string{"private_key_jwt"})
			p.set("token_endpoint_auth_signing_alg_values_supported", []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"})
			clk := newClock()
			c := p.client(t, provider.PrivateKeyJWT("billing", tt.key, tt.opts...), provider.Clock(clk.Now))
			const requests = 3
			jtis := map[string]bool{}
			for i := range requests {
				if _, err := c.Issue(t.Context()); err != nil {
					t.Fatalf("Issue() error = %v", err)
				}
				a := assertionOf(t, p.last(t), "billing")
				h, jti := verifyAssertion(t, a, tt.alg, tt.key.Public(), "billing", p.srv.URL+"/token", clk.Now(), time.Minute)
				if jtis[jti] {
					t.Errorf("request %d: jti %q was used before", i+1, jti)
				}
				jtis[jti] = true
				if kid := h.KeyID(); kid != "" {
					t.Errorf("kid = %q; want none", kid)
				}
				if x5t := h.X509CertThumbprintS256(); x5t != "" {
					t.Errorf("x5t#S256 = %q; want none", x5t)
				}
				clk.Advance(time.Second)
			}
			if k, ok := tt.key.(*kmsKey); ok && k.signs.Load() != requests {
				t.Errorf("crypto.Signer's Sign calls = %d; want %d", k.signs.Load(), requests)
			}
		})
	}
}

func TestPrivateKeyJWT_Headers(t *testing.T) {
	p := newIDP(t, true)
	clk := newClock()
	key := p256Key()
	cert := selfSigned(t, key)
	c := p.client(t, provider.PrivateKeyJWT("billing", key, provider.KeyID("billing-2026-03"), provider.CertificateThumbprint(cert)), provider.Clock(clk.Now))
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	h, _ := verifyAssertion(t, assertionOf(t, p.last(t), "billing"), jwa.ES256, key.Public(), "billing", p.srv.URL+"/token", clk.Now(), time.Minute)
	if got := h.KeyID(); got != "billing-2026-03" {
		t.Errorf("kid = %q; want billing-2026-03", got)
	}
	sum := sha256.Sum256(cert.Raw)
	if got, want := h.X509CertThumbprintS256(), base64.RawURLEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("x5t#S256 = %q; want %q", got, want)
	}
}

// selfSigned returns a self-signed certificate for key.
func selfSigned(t *testing.T, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "billing"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestPrivateKeyJWT_AssertionOptions(t *testing.T) {
	p := newIDP(t, true)
	clk := newClock()
	key := p256Key()
	c := p.client(t, provider.PrivateKeyJWT("billing", key, provider.AudienceIssuer(), provider.AssertionLifetime(5*time.Minute)), provider.Clock(clk.Now))
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	verifyAssertion(t, assertionOf(t, p.last(t), "billing"), jwa.ES256, key.Public(), "billing", p.srv.URL, clk.Now(), 5*time.Minute)
}

// TestPrivateKeyJWT_FreshOnRetry has a cache retry a failed fetch: the retry
// carries an assertion of its own, with a new jti, as a provider that refuses
// replays requires.
func TestPrivateKeyJWT_FreshOnRetry(t *testing.T) {
	p := newIDP(t, true)
	clk := newClock()
	key := p256Key()
	c := p.client(t, provider.PrivateKeyJWT("billing", key), provider.Clock(clk.Now))
	cache := jwtcache.NewCache(jwtcache.IssueFunction(c.Issue), jwtcache.Clock(clk.Now), jwtcache.Logger(nil))

	p.answer(respond(http.StatusServiceUnavailable, `{"error":"temporarily_unavailable"}`))
	if _, err := cache.EnsureToken(t.Context()); err == nil {
		t.Fatal("EnsureToken() error = nil; want the provider's error")
	}
	p.answer(nil)
	clk.Advance(2 * time.Second) // past the backoff after a failure with no token
	if _, err := cache.EnsureToken(t.Context()); err != nil {
		t.Fatalf("EnsureToken() after the backoff error = %v", err)
	}
	reqs := p.got()
	if len(reqs) != 2 {
		t.Fatalf("token requests = %d; want 2 (a failure, a retry)", len(reqs))
	}
	_, jti1 := verifyAssertion(t, assertionOf(t, reqs[0], "billing"), jwa.ES256, key.Public(), "billing", p.srv.URL+"/token", clk.Now().Add(-2*time.Second), time.Minute)
	_, jti2 := verifyAssertion(t, assertionOf(t, reqs[1], "billing"), jwa.ES256, key.Public(), "billing", p.srv.URL+"/token", clk.Now(), time.Minute)
	if jti1 == jti2 {
		t.Errorf("the retry's jti = %q, the failed request's; want a fresh one", jti2)
	}
}

func TestPrivateKeyJWT_Algorithm(t *testing.T) {
	var nilKey *ecdsa.PrivateKey
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		algs    []string // token_endpoint_auth_signing_alg_values_supported; nil: absent
		auth    provider.ClientAuth
		wantErr bool
	}{
		{"listed", []string{"ES256"}, provider.PrivateKeyJWT("billing", p256Key()), false},
		{"not listed", []string{"RS256", "PS256"}, provider.PrivateKeyJWT("billing", p256Key()), true},
		{"chosen, not listed", []string{"RS256"}, provider.PrivateKeyJWT("billing", rsaKey(), provider.SigningAlgorithm("PS256")), true},
		{"list absent", nil, provider.PrivateKeyJWT("billing", p384Key()), false},
		{"an RSA key for ES256", nil, provider.PrivateKeyJWT("billing", rsaKey(), provider.SigningAlgorithm("ES256")), true},
		{"an RSA key for HS256", nil, provider.PrivateKeyJWT("billing", rsaKey(), provider.SigningAlgorithm("HS256")), true},
		{"none", nil, provider.PrivateKeyJWT("billing", rsaKey(), provider.SigningAlgorithm("none")), true},
		{"a P-256 key for ES384", nil, provider.PrivateKeyJWT("billing", p256Key(), provider.SigningAlgorithm("ES384")), true},
		{"an Ed25519 key for ES256", nil, provider.PrivateKeyJWT("billing", edKey(), provider.SigningAlgorithm("ES256")), true},
		{"a P-224 key", nil, provider.PrivateKeyJWT("billing", p224), true},
		{"a secret for RS256", nil, provider.ClientSecretJWT("billing", []byte("s3cret"), provider.SigningAlgorithm("RS256")), true},
		{"a secret, HS256 not listed", []string{"RS256"}, provider.ClientSecretJWT("billing", []byte("s3cret")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, false)
			if tt.algs != nil {
				p.set("token_endpoint_auth_signing_alg_values_supported", tt.algs)
			}
			_, err := provider.New(t.Context(), p.srv.URL, tt.auth)
			if tt.wantErr != errors.Is(err, provider.ErrSigningAlgorithm) || !tt.wantErr && err != nil {
				t.Errorf("New() error = %v; want ErrSigningAlgorithm: %v", err, tt.wantErr)
			}
		})
	}
	for name, auth := range map[string]provider.ClientAuth{
		"nil key":                  provider.PrivateKeyJWT("billing", nil),
		"nil *ecdsa.PrivateKey":    provider.PrivateKeyJWT("billing", nilKey),
		"empty client id":          provider.PrivateKeyJWT("", p256Key()),
		"empty secret":             provider.ClientSecretJWT("billing", nil),
		"empty assertion clientid": provider.ClientAssertion("", func(context.Context) (string, error) { return "a", nil }),
		"nil assertion function":   provider.ClientAssertion("billing", nil),
	} {
		t.Run(name, func(t *testing.T) {
			p := newIDP(t, false)
			if _, err := provider.New(t.Context(), p.srv.URL, auth); err == nil {
				t.Error("New() error = nil; want an error")
			}
		})
	}
}

type ctxKey struct{}

func TestClientAssertion(t *testing.T) {
	p := newIDP(t, true)
	n := 0
	var fail error
	c := p.client(t, provider.ClientAssertion("billing", func(ctx context.Context) (string, error) {
		if ctx.Value(ctxKey{}) != "caller" {
			t.Error("the assertion function did not get the call's context")
		}
		n++
		return fmt.Sprintf(" assertion-%d\n", n), fail
	}))
	ctx := context.WithValue(t.Context(), ctxKey{}, "caller")
	for i, want := range []string{"assertion-1", "assertion-2"} {
		if _, err := c.Issue(ctx); err != nil {
			t.Fatalf("Issue() error = %v", err)
		}
		if got := assertionOf(t, p.last(t), "billing"); got != want {
			t.Errorf("request %d: client_assertion = %q; want %q", i+1, got, want)
		}
	}

	fail = errors.New("no token from the platform")
	if _, err := c.Issue(ctx); !errors.Is(err, fail) {
		t.Errorf("Issue() error = %v; want it to wrap %v", err, fail)
	}
	if got := len(p.got()); got != 2 {
		t.Errorf("token requests = %d; want 2: none once the assertion fails", got)
	}
}

// TestClientAssertionFile_SymlinkSwap rotates the file as the kubelet rotates
// a projected service account token: the volume's files are links into
// ..data, a link to a timestamped directory, which a rename replaces
// atomically.
func TestClientAssertionFile_SymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	write := func(ts, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "token"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	swap := func(ts string) {
		t.Helper()
		if err := os.Symlink(ts, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("..2026_03_04_05_06_07.1", "assertion-1\n")
	swap("..2026_03_04_05_06_07.1")
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}

	p := newIDP(t, true)
	c := p.client(t, provider.ClientAssertionFile("billing", filepath.Join(dir, "token")))
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	if got := assertionOf(t, p.last(t), "billing"); got != "assertion-1" {
		t.Errorf("client_assertion = %q; want assertion-1", got)
	}

	write("..2026_03_04_05_56_07.2", "assertion-2\n")
	swap("..2026_03_04_05_56_07.2")
	if err := os.RemoveAll(filepath.Join(dir, "..2026_03_04_05_06_07.1")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatalf("Issue() after the swap error = %v", err)
	}
	if got := assertionOf(t, p.last(t), "billing"); got != "assertion-2" {
		t.Errorf("client_assertion after the swap = %q; want assertion-2", got)
	}

	tests := []struct {
		name, content string
		wantErr       string
	}{
		{"missing", "", "no such file"},
		{"empty", " \n", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := len(p.got())
			c := p.client(t, provider.ClientAssertionFile("billing", path))
			if _, err := c.Issue(t.Context()); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Issue() error = %v; want %q", err, tt.wantErr)
			}
			if got := len(p.got()); got != before {
				t.Errorf("token requests = %d; want %d: none without an assertion", got, before)
			}
		})
	}
}

// TestAuth_BadKeys refuses keys that cannot sign with an error, not a panic.
func TestAuth_BadKeys(t *testing.T) {
	tests := []struct {
		name string
		auth provider.ClientAuth
	}{
		{"zero ECDSA key", provider.PrivateKeyJWT("billing", &ecdsa.PrivateKey{})},
		{"HS256 secret under 32 bytes", provider.ClientSecretJWT("billing", []byte("short"))},
		{"HS512 secret under 64 bytes", provider.ClientSecretJWT("billing", []byte("a-client-secret-of-at-least-32-bytes"), provider.SigningAlgorithm("HS512"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := provider.NewFromTokenURL("https://idp.example/token", tt.auth)
			if !errors.Is(err, provider.ErrSigningAlgorithm) {
				t.Errorf("NewFromTokenURL() error = %v; want ErrSigningAlgorithm", err)
			}
		})
	}
}
