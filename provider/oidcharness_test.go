package provider_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/seed7aeb0c6e/jwtcache/internal/oidctest"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// This file holds what the package's tests add to the harness of a real
// OpenID provider, package oidctest (node's oidc-provider,
// testdata/oidc/server.mjs): the helpers that make the keys and certificates
// its clients authenticate with, and the TestOIDCHarness tests, which prove
// it with net/http, jwx and testkit alone.

// Grant and token types of OAuth 2.0 Token Exchange (RFC 8693).
const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	assertionTypeJWT     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// The harness's types, under the names the tests have used since it lived
// here.
type (
	oidcConfig        = oidctest.Config
	oidcClient        = oidctest.Client
	oidcResource      = oidctest.Resource
	oidcTrustedIssuer = oidctest.TrustedIssuer
	oidcTLS           = oidctest.TLS
	oidcRefreshTokens = oidctest.RefreshTokens
	oidcServer        = oidctest.Server
)

// startOIDC starts a provider configured by cfg: [oidctest.Start].
func startOIDC(t *testing.T, cfg oidcConfig) *oidcServer { return oidctest.Start(t, cfg) }

// newSigningKey returns a new private key for alg, RS256 (RSA 2048) or
// ES256 (P-256), as a JWK with alg and kid set, so that jwx signs with it
// and names it in the JWS header.
func newSigningKey(t *testing.T, alg jwa.SignatureAlgorithm, kid string) jwk.Key {
	t.Helper()
	var raw crypto.Signer
	var err error
	switch alg {
	case jwa.RS256, jwa.PS256:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		t.Fatalf("newSigningKey: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.KeyIDKey, kid); err != nil {
		t.Fatal(err)
	}
	if err := key.Set(jwk.AlgorithmKey, alg); err != nil {
		t.Fatal(err)
	}
	return key
}

// publicJWKS returns the JWKS document of the public halves of keys.
func publicJWKS(t *testing.T, keys ...jwk.Key) json.RawMessage {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		set.AddKey(pub)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// certJWKS returns the JWKS document of the public keys of certs, each with
// its certificate in x5c: the registration of a self_signed_tls_client_auth
// client, whose certificate must be one of them.
func certJWKS(t *testing.T, certs ...tls.Certificate) json.RawMessage {
	t.Helper()
	set := jwk.NewSet()
	for _, c := range certs {
		pub, err := jwk.FromRaw(c.Leaf.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		var chain cert.Chain
		chain.Add([]byte(base64.StdEncoding.EncodeToString(c.Leaf.Raw)))
		if err := pub.Set(jwk.X509CertChainKey, &chain); err != nil {
			t.Fatal(err)
		}
		set.AddKey(pub)
	}
	doc, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// certThumbprint returns the x5t#S256 of a certificate (RFC 8705 section
// 3.1): the base64url SHA-256 of its DER.
func certThumbprint(c tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// testPKI is a certificate authority for a test: it issues the provider's
// server certificate and the clients' certificates. Its keys are P-256.
type testPKI struct {
	CA    *x509.Certificate
	CAPEM []byte
	Roots *x509.CertPool // holds CA
	key   *ecdsa.PrivateKey
}

// newTestPKI returns a new certificate authority named name.
func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key := newCertKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          certSerial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"jwtcache tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c := createCert(t, tmpl, tmpl, key, key)
	p := &testPKI{CA: c.Leaf, key: key, Roots: x509.NewCertPool()}
	p.Roots.AddCert(c.Leaf)
	p.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw})
	return p
}

// serverTLS returns the provider's HTTPS configuration: a certificate for
// 127.0.0.1 issued by p, and p as the CA of tls_client_auth.
func (p *testPKI) serverTLS(t *testing.T) *oidcTLS {
	t.Helper()
	key := newCertKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: certSerial(t),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	c := createCert(t, tmpl, p.CA, key, p.key)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &oidcTLS{
		CertPEM:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw}),
		KeyPEM:       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		RootCAs:      p.Roots,
		ClientCAPEMs: [][]byte{p.CAPEM},
	}
}

// clientCert returns a client certificate issued by p, with subject
// "CN=<cn>,O=jwtcache tests" and dnsNames as its DNS subject alternative
// names. Its Leaf is set.
func (p *testPKI) clientCert(t *testing.T, cn string, dnsNames ...string) tls.Certificate {
	t.Helper()
	key := newCertKey(t)
	return createCert(t, clientTemplate(t, cn, dnsNames), p.CA, key, p.key)
}

// selfSignedCert returns a self-signed client certificate with subject
// "CN=<cn>,O=jwtcache tests", for self_signed_tls_client_auth. Its Leaf is
// set.
func selfSignedCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key := newCertKey(t)
	tmpl := clientTemplate(t, cn, nil)
	return createCert(t, tmpl, tmpl, key, key)
}

func clientTemplate(t *testing.T, cn string, dnsNames []string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: certSerial(t),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"jwtcache tests"}},
		DNSNames:     dnsNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) tls.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newCertKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func certSerial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// oidcTokenResponse is a token endpoint's answer, success or error.
type oidcTokenResponse struct {
	Status           int    `json:"-"`
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int    `json:"expires_in"`
	Scope            string `json:"scope"`
	IssuedTokenType  string `json:"issued_token_type"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// postToken posts form to a token endpoint, with HTTP Basic authentication
// when basic is "id:secret".
func postToken(t *testing.T, hc *http.Client, tokenURL string, form url.Values, basic string) oidcTokenResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if id, secret, ok := strings.Cut(basic, ":"); ok {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", tokenURL, err)
	}
	defer resp.Body.Close()
	var tr oidcTokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("POST %s: status %d, decode: %v", tokenURL, resp.StatusCode, err)
	}
	tr.Status = resp.StatusCode
	return tr
}

// clientAssertion returns a client authentication JWT (RFC 7523) of
// clientID for the audience aud, signed with key: a jwk.Key for
// private_key_jwt, or the client secret as []byte for client_secret_jwt.
func clientAssertion(t *testing.T, alg jwa.SignatureAlgorithm, key any, clientID, aud string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().
		Issuer(clientID).Subject(clientID).Audience([]string{aud}).
		JwtID(rand.Text()).IssuedAt(now).Expiration(now.Add(time.Minute)).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// assertionForm is a client_credentials request authenticated by assertion.
func assertionForm(assertion string, extra ...string) url.Values {
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {assertionTypeJWT},
		"client_assertion":      {assertion},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Add(extra[i], extra[i+1])
	}
	return form
}

// fetchMetadata fetches and decodes a metadata document.
func fetchMetadata(t *testing.T, hc *http.Client, u string) map[string]any {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d; want 200", u, resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return m
}

// verifyAccessToken verifies a JWT access token against the provider's
// jwks_uri and its issuer, and returns it.
func verifyAccessToken(t *testing.T, s *oidcServer, hc *http.Client, raw string) jwt.Token {
	t.Helper()
	jwksURI, _ := fetchMetadata(t, hc, s.Issuer+"/.well-known/openid-configuration")["jwks_uri"].(string)
	// Not jwk.Fetch: it starts a fetcher whose goroutines outlive the test.
	resp, err := hc.Get(jwksURI)
	if err != nil {
		t.Fatalf("GET %s: %v", jwksURI, err)
	}
	defer resp.Body.Close()
	keys, err := jwk.ParseReader(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, parse: %v", jwksURI, resp.StatusCode, err)
	}
	tok, err := jwt.ParseString(raw, jwt.WithKeySet(keys), jwt.WithIssuer(s.Issuer))
	if err != nil {
		t.Fatalf("verify access token: %v", err)
	}
	msg, err := jws.ParseString(raw)
	if err != nil {
		t.Fatal(err)
	}
	if typ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "at+jwt" {
		t.Errorf("access token typ = %q; want at+jwt (RFC 9068)", typ)
	}
	return tok
}

// checkRefusal checks that the last request the server refused for the
// client was refused with code, for a reason that contains why.
func checkRefusal(t *testing.T, s *oidcServer, clientID, code, why string) {
	t.Helper()
	refused := s.Refused(t, clientID)
	if len(refused) == 0 {
		t.Errorf("Refused(%q) = none; want %s (%s)", clientID, code, why)
		return
	}
	if last := refused[len(refused)-1]; last.Error != code || !strings.Contains(last.Detail, why) {
		t.Errorf("last of Refused(%q) = %+v; want %s, with %q in its detail", clientID, last, code, why)
	}
}

// jwtLifetime is a JWT's exp less its iat.
func jwtLifetime(tok jwt.Token) time.Duration {
	return tok.Expiration().Sub(tok.IssuedAt())
}

// checkJWTLifetime checks that a JWT access token lives want. oidc-provider
// reads the clock twice as it makes one (exp from the first reading, iat
// from the second), so across a second boundary exp - iat is a second less.
func checkJWTLifetime(t *testing.T, tok jwt.Token, want time.Duration) {
	t.Helper()
	if d := jwtLifetime(tok); d != want && d != want-time.Second {
		t.Errorf("exp - iat = %v; want %v", d, want)
	}
}

// harnessSecret is the clients' secret in the TestOIDCHarness tests.
const harnessSecret = "a-client-secret-of-at-least-32-bytes"

// TestOIDCHarness_Discovery: the metadata is served where OpenID Connect
// Discovery and RFC 8414 look for it, with the issuer exactly as reported,
// for an issuer with and without a path.
func TestOIDCHarness_Discovery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		locations  []string // metadata locations, relative to the origin
	}{
		{"root issuer", "", []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"}},
		{"path issuer", "/tenant-a", []string{"/tenant-a/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/tenant-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startOIDC(t, oidcConfig{IssuerPath: tt.path})
			if !strings.HasPrefix(s.Issuer, "http://127.0.0.1:") || !strings.HasSuffix(s.Issuer, tt.path) {
				t.Errorf("issuer = %q; want http://127.0.0.1:<port>%s", s.Issuer, tt.path)
			}
			origin := strings.TrimSuffix(s.Issuer, tt.path)
			hc := s.Client(t)
			for _, loc := range tt.locations {
				m := fetchMetadata(t, hc, origin+loc)
				if got := m["issuer"]; got != s.Issuer {
					t.Errorf("%s: issuer = %v; want %q", loc, got, s.Issuer)
				}
				if got := m["token_endpoint"]; got != s.TokenURL {
					t.Errorf("%s: token_endpoint = %v; want %q", loc, got, s.TokenURL)
				}
				grants, _ := m["grant_types_supported"].([]any)
				for _, g := range []any{"client_credentials", grantTokenExchange} {
					if !slices.Contains(grants, g) {
						t.Errorf("%s: grant_types_supported = %v; want %s in it", loc, grants, g)
					}
				}
			}
		})
	}
}

// TestOIDCHarness_ClientAuthMethods has a client of each authentication
// method get a client_credentials token over HTTPS.
func TestOIDCHarness_ClientAuthMethods(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "client CA")
	pkiCert := pki.clientCert(t, "billing", "billing.svc.example")
	selfCert := selfSignedCert(t, "reports")
	ecKey := newSigningKey(t, jwa.ES256, "billing-es256")
	s := startOIDC(t, oidcConfig{
		TLS: pki.serverTLS(t),
		Clients: []oidcClient{
			{ID: "basic", Secret: harnessSecret},
			{ID: "post", Secret: harnessSecret, AuthMethod: "client_secret_post"},
			{ID: "secret-jwt", Secret: harnessSecret, AuthMethod: "client_secret_jwt", SigningAlg: "HS256"},
			{ID: "key-jwt", AuthMethod: "private_key_jwt", SigningAlg: "ES256", JWKS: publicJWKS(t, ecKey)},
			{ID: "tls-dn", AuthMethod: "tls_client_auth", SubjectDN: pkiCert.Leaf.Subject.String()},
			{ID: "tls-san", AuthMethod: "tls_client_auth", SANDNS: "billing.svc.example"},
			{ID: "self-signed", AuthMethod: "self_signed_tls_client_auth", JWKS: certJWKS(t, selfCert)},
		},
	})
	plain := s.Client(t)
	tests := []struct {
		client string
		hc     *http.Client
		form   url.Values
		basic  string
	}{
		{"basic", plain, url.Values{"grant_type": {"client_credentials"}}, "basic:" + harnessSecret},
		{"post", plain, url.Values{"grant_type": {"client_credentials"}, "client_id": {"post"}, "client_secret": {harnessSecret}}, ""},
		{"secret-jwt", plain, assertionForm(clientAssertion(t, jwa.HS256, []byte(harnessSecret), "secret-jwt", s.TokenURL)), ""},
		{"key-jwt", plain, assertionForm(clientAssertion(t, jwa.ES256, ecKey, "key-jwt", s.Issuer)), ""},
		{"tls-dn", s.Client(t, pkiCert), url.Values{"grant_type": {"client_credentials"}, "client_id": {"tls-dn"}}, ""},
		{"tls-san", s.Client(t, pkiCert), url.Values{"grant_type": {"client_credentials"}, "client_id": {"tls-san"}}, ""},
		{"self-signed", s.Client(t, selfCert), url.Values{"grant_type": {"client_credentials"}, "client_id": {"self-signed"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			got := postToken(t, tt.hc, s.TokenURL, tt.form, tt.basic)
			if got.Status != http.StatusOK || got.AccessToken == "" || got.TokenType != "Bearer" {
				t.Fatalf("token response = %+v; want 200 with a Bearer token", got)
			}
			if n := s.Issued(t, tt.client); n != 1 {
				t.Errorf("Issued(%q) = %d; want 1", tt.client, n)
			}
		})
	}
}

// TestOIDCHarness_AccessTokenFormats: without a resource, an opaque token
// with expires_in; with a resource indicator, a JWT access token that
// verifies against the provider's jwks_uri, for the resource's audience,
// lifetime and scopes.
func TestOIDCHarness_AccessTokenFormats(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		AccessTokenTTL: 10 * time.Minute,
		Clients:        []oidcClient{{ID: "billing", Secret: harnessSecret, Scope: "read write admin"}},
		Resources: []oidcResource{
			{Identifier: "https://api.example", Scope: "read write", TTL: time.Hour},
			{Identifier: "https://ledger.example", Audience: "ledger", Scope: "read", TTL: 2 * time.Minute, SigningAlg: "ES256"},
		},
	})
	hc := s.Client(t)
	basic := "billing:" + harnessSecret

	t.Run("opaque", func(t *testing.T) {
		got := postToken(t, hc, s.TokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, basic)
		if got.Status != http.StatusOK || got.ExpiresIn != 600 || got.Scope != "read" {
			t.Fatalf("token response = %+v; want 200, expires_in 600, scope read", got)
		}
		if strings.Contains(got.AccessToken, ".") {
			t.Errorf("access token %q looks like a JWT; want an opaque one", got.AccessToken)
		}
	})
	tests := []struct {
		resource, aud string
		alg           jwa.SignatureAlgorithm
		ttl           time.Duration
		scope         string
	}{
		{"https://api.example", "https://api.example", jwa.RS256, time.Hour, "read write"},
		{"https://ledger.example", "ledger", jwa.ES256, 2 * time.Minute, "read"},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			got := postToken(t, hc, s.TokenURL, url.Values{
				"grant_type": {"client_credentials"}, "resource": {tt.resource}, "scope": {"read write admin"},
			}, basic)
			if got.Status != http.StatusOK || got.ExpiresIn != int(tt.ttl.Seconds()) {
				t.Fatalf("token response = %+v; want 200, expires_in %d", got, int(tt.ttl.Seconds()))
			}
			tok := verifyAccessToken(t, s, hc, got.AccessToken)
			if aud := tok.Audience(); !slices.Equal(aud, []string{tt.aud}) {
				t.Errorf("aud = %q; want [%q]", aud, tt.aud)
			}
			checkJWTLifetime(t, tok, tt.ttl)
			if scope, _ := tok.PrivateClaims()["scope"].(string); scope != tt.scope || got.Scope != tt.scope {
				t.Errorf("scope = %q (response %q); want %q: the resource's among those requested", scope, got.Scope, tt.scope)
			}
			if msg, _ := jws.ParseString(got.AccessToken); msg.Signatures()[0].ProtectedHeaders().Algorithm() != tt.alg {
				t.Errorf("alg = %s; want %s", msg.Signatures()[0].ProtectedHeaders().Algorithm(), tt.alg)
			}
		})
	}
	t.Run("unknown resource", func(t *testing.T) {
		got := postToken(t, hc, s.TokenURL, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://other.example"}}, basic)
		if got.Status != http.StatusBadRequest || got.Error != "invalid_target" {
			t.Errorf("token response = %+v; want 400 invalid_target", got)
		}
	})
}

// TestOIDCHarness_ShortTTL: a 5-second lifetime is honoured, for opaque
// tokens and for a resource's JWTs.
func TestOIDCHarness_ShortTTL(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		AccessTokenTTL: 5 * time.Second,
		Clients:        []oidcClient{{ID: "billing", Secret: harnessSecret}},
		Resources:      []oidcResource{{Identifier: "https://api.example", Scope: "read"}},
	})
	hc := s.Client(t)
	for _, resource := range []string{"", "https://api.example"} {
		form := url.Values{"grant_type": {"client_credentials"}}
		if resource != "" {
			form.Set("resource", resource)
		}
		got := postToken(t, hc, s.TokenURL, form, "billing:"+harnessSecret)
		if got.Status != http.StatusOK || got.ExpiresIn != 5 {
			t.Errorf("resource %q: token response = %+v; want 200, expires_in 5", resource, got)
		}
		if resource != "" {
			checkJWTLifetime(t, verifyAccessToken(t, s, hc, got.AccessToken), 5*time.Second)
		}
	}
}

// TestOIDCHarness_CertificateBound: a certificate-bound client's JWT access
// token carries the x5t#S256 of its client certificate (RFC 8705 section 3),
// whichever way it authenticates; without a certificate it is refused.
func TestOIDCHarness_CertificateBound(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "client CA")
	pkiCert := pki.clientCert(t, "billing")
	selfCert := selfSignedCert(t, "reports")
	s := startOIDC(t, oidcConfig{
		TLS: pki.serverTLS(t),
		Clients: []oidcClient{
			{ID: "tls", AuthMethod: "tls_client_auth", SubjectDN: pkiCert.Leaf.Subject.String(), CertificateBound: true},
			{ID: "self-signed", AuthMethod: "self_signed_tls_client_auth", JWKS: certJWKS(t, selfCert), CertificateBound: true},
			{ID: "secret", Secret: harnessSecret, CertificateBound: true},
		},
		Resources: []oidcResource{{Identifier: "https://api.example", Scope: "read"}},
	})
	tests := []struct {
		client string
		cert   tls.Certificate
		basic  string
	}{
		{"tls", pkiCert, ""},
		{"self-signed", selfCert, ""},
		{"secret", pkiCert, "secret:" + harnessSecret}, // a secret, and a certificate to bind to
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			hc := s.Client(t, tt.cert)
			form := url.Values{"grant_type": {"client_credentials"}, "resource": {"https://api.example"}}
			if tt.basic == "" {
				form.Set("client_id", tt.client)
			}
			got := postToken(t, hc, s.TokenURL, form, tt.basic)
			if got.Status != http.StatusOK {
				t.Fatalf("token response = %+v; want 200", got)
			}
			tok := verifyAccessToken(t, s, hc, got.AccessToken)
			cnf, _ := tok.PrivateClaims()["cnf"].(map[string]any)
			if x5t, want := cnf["x5t#S256"], certThumbprint(tt.cert); x5t != want {
				t.Errorf("cnf = %v; want x5t#S256 %q", cnf, want)
			}
		})
	}
	t.Run("no certificate", func(t *testing.T) {
		got := postToken(t, s.Client(t), s.TokenURL, url.Values{"grant_type": {"client_credentials"}}, "secret:"+harnessSecret)
		if got.Status != http.StatusBadRequest || got.Error != "invalid_grant" {
			t.Errorf("token response = %+v; want 400 invalid_grant", got)
		}
	})
}

// TestOIDCHarness_RejectedAssertion: an assertion the provider cannot verify
// with the client's registered key or secret, or one used twice, is refused
// with invalid_client.
func TestOIDCHarness_RejectedAssertion(t *testing.T) {
	t.Parallel()
	key := newSigningKey(t, jwa.ES256, "k1")
	other := newSigningKey(t, jwa.ES256, "k1") // the same kid, another key
	s := startOIDC(t, oidcConfig{Clients: []oidcClient{
		{ID: "key-jwt", AuthMethod: "private_key_jwt", JWKS: publicJWKS(t, key)},
		{ID: "secret-jwt", Secret: harnessSecret, AuthMethod: "client_secret_jwt"},
	}})
	hc := s.Client(t)
	replayed := clientAssertion(t, jwa.ES256, key, "key-jwt", s.TokenURL)
	if got := postToken(t, hc, s.TokenURL, assertionForm(replayed), ""); got.Status != http.StatusOK {
		t.Fatalf("first use of an assertion: token response = %+v; want 200", got)
	}
	tests := []struct {
		name, client, assertion string
		why                     string // in the refusal's detail
	}{
		{"wrong key", "key-jwt", clientAssertion(t, jwa.ES256, other, "key-jwt", s.TokenURL), "signature verification failed"},
		{"wrong secret", "secret-jwt", clientAssertion(t, jwa.HS256, []byte(harnessSecret+"x"), "secret-jwt", s.TokenURL), "signature verification failed"},
		{"wrong audience", "key-jwt", clientAssertion(t, jwa.ES256, key, "key-jwt", "https://elsewhere.example/token"), "audience"},
		{"replayed", "key-jwt", replayed, "only be used once"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := postToken(t, hc, s.TokenURL, assertionForm(tt.assertion), "")
			if got.Status != http.StatusUnauthorized || got.Error != "invalid_client" {
				t.Errorf("token response = %+v; want 401 invalid_client", got)
			}
			checkRefusal(t, s, tt.client, "invalid_client", tt.why)
		})
	}
	if n := s.Issued(t, "key-jwt") + s.Issued(t, "secret-jwt"); n != 1 {
		t.Errorf("tokens issued = %d; want 1 (the first use)", n)
	}
}

// TestOIDCHarness_UnknownCertificate: a client certificate the provider
// cannot tie to the client is refused with invalid_client.
func TestOIDCHarness_UnknownCertificate(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "client CA")
	rogue := newTestPKI(t, "rogue CA")
	pkiCert := pki.clientCert(t, "billing")
	selfCert := selfSignedCert(t, "reports")
	s := startOIDC(t, oidcConfig{
		TLS: pki.serverTLS(t),
		Clients: []oidcClient{
			{ID: "tls", AuthMethod: "tls_client_auth", SubjectDN: pkiCert.Leaf.Subject.String()},
			{ID: "self-signed", AuthMethod: "self_signed_tls_client_auth", JWKS: certJWKS(t, selfCert)},
		},
	})
	tests := []struct {
		name, client string
		certs        []tls.Certificate
		why          string // in the refusal's detail
	}{
		{"another CA, same subject", "tls", []tls.Certificate{rogue.clientCert(t, "billing")}, "not verified"},
		{"same CA, other subject", "tls", []tls.Certificate{pki.clientCert(t, "payroll")}, "subject value does not match"},
		{"self-signed for tls_client_auth", "tls", []tls.Certificate{selfSignedCert(t, "billing")}, "not verified"},
		{"no certificate", "tls", nil, "not provided"},
		{"unregistered self-signed", "self-signed", []tls.Certificate{selfSignedCert(t, "reports")}, "unregistered client certificate"},
		{"CA-issued for self_signed_tls_client_auth", "self-signed", []tls.Certificate{pkiCert}, "unregistered client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := postToken(t, s.Client(t, tt.certs...), s.TokenURL,
				url.Values{"grant_type": {"client_credentials"}, "client_id": {tt.client}}, "")
			if got.Status != http.StatusUnauthorized || got.Error != "invalid_client" {
				t.Errorf("token response = %+v; want 401 invalid_client", got)
			}
			checkRefusal(t, s, tt.client, "invalid_client", tt.why)
		})
	}
	if n := s.Issued(t, "tls") + s.Issued(t, "self-signed"); n != 0 {
		t.Errorf("tokens issued = %d; want 0", n)
	}
}

// TestOIDCHarness_MTLSEndpointAliases: with aliases, the metadata names the
// mTLS token endpoint, where tls_client_auth works; the issuer's own
// listener requests no certificate.
func TestOIDCHarness_MTLSEndpointAliases(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "client CA")
	pkiCert := pki.clientCert(t, "billing")
	s := startOIDC(t, oidcConfig{
		TLS:                 pki.serverTLS(t),
		MTLSEndpointAliases: true,
		Clients:             []oidcClient{{ID: "tls", AuthMethod: "tls_client_auth", SubjectDN: pkiCert.Leaf.Subject.String()}},
	})
	hc := s.Client(t, pkiCert)
	m := fetchMetadata(t, hc, s.Issuer+"/.well-known/openid-configuration")
	aliases, _ := m["mtls_endpoint_aliases"].(map[string]any)
	if got := aliases["token_endpoint"]; got != s.MTLSTokenURL || s.MTLSTokenURL == s.TokenURL {
		t.Fatalf("mtls_endpoint_aliases = %v; want token_endpoint %q, not %q", aliases, s.MTLSTokenURL, s.TokenURL)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"tls"}}
	if got := postToken(t, hc, s.MTLSTokenURL, form, ""); got.Status != http.StatusOK {
		t.Errorf("alias: token response = %+v; want 200", got)
	}
	if got := postToken(t, hc, s.TokenURL, form, ""); got.Status != http.StatusUnauthorized || got.Error != "invalid_client" {
		t.Errorf("token_endpoint: token response = %+v; want 401 invalid_client (no certificate requested)", got)
	}
	checkRefusal(t, s, "tls", "invalid_client", "client certificate was not provided")
}

// TestOIDCHarness_TokenExchange: a token exchange (RFC 8693) issues a token
// for the requested audience or resource, about the subject token's subject
// and never outliving it, and refuses a request without subject_token_type
// or with a subject token it cannot verify.
func TestOIDCHarness_TokenExchange(t *testing.T) {
	t.Parallel()
	const upstreamIss = "https://login.upstream.example"
	upstream := testkit.NewMinter(upstreamIss)
	s := startOIDC(t, oidcConfig{
		AccessTokenTTL: time.Minute,
		Clients: []oidcClient{
			{ID: "gateway", Secret: harnessSecret},
			{ID: "billing", Secret: harnessSecret},
		},
		Resources: []oidcResource{
			{Identifier: "https://orders.example", Audience: "orders", Scope: "orders:read orders:write", TTL: time.Hour},
		},
		TrustedIssuers: []oidcTrustedIssuer{{Issuer: upstreamIss, JWKS: publicJWKS(t, upstream.PublicKey())}},
	})
	hc := s.Client(t)
	// subjectJWT returns a JWT about alice that iss issued, signed with the
	// upstream key, and its exp.
	subjectJWT := func(iss string, life time.Duration) (string, time.Time) {
		raw := upstream.Mint(time.Now(), life, map[string]any{"iss": iss, "sub": "alice", "aud": []string{"gateway"}})
		return raw, testkit.Claims(t, raw).Expiration()
	}
	subject := func(token string, _ time.Time) string { return token }
	// forged is an upstream JWT's header (its kid) and claims, with another
	// key's signature.
	valid := subject(subjectJWT(upstreamIss, time.Minute))
	other := testkit.NewMinter("forger").Mint(time.Now(), time.Minute, nil)
	forged := valid[:strings.LastIndex(valid, ".")] + other[strings.LastIndex(other, "."):]
	exchange := func(t *testing.T, subject, subjectType string, extra ...string) oidcTokenResponse {
		form := url.Values{"grant_type": {grantTokenExchange}, "subject_token": {subject}}
		if subjectType != "" {
			form.Set("subject_token_type", subjectType)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			form.Add(extra[i], extra[i+1])
		}
		return postToken(t, hc, s.TokenURL, form, "gateway:"+harnessSecret)
	}
	// Tokens this provider issued to another client, as subject tokens.
	ownOpaque := postToken(t, hc, s.TokenURL, url.Values{"grant_type": {"client_credentials"}}, "billing:"+harnessSecret)
	ownOpaqueExp := time.Now().Truncate(time.Second).Add(time.Duration(ownOpaque.ExpiresIn) * time.Second) // or before
	ownJWT := postToken(t, hc, s.TokenURL, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://orders.example"}}, "billing:"+harnessSecret)
	if ownOpaque.Status != http.StatusOK || ownJWT.Status != http.StatusOK {
		t.Fatalf("client_credentials: %+v, %+v; want 200", ownOpaque, ownJWT)
	}
	ownJWTExp := verifyAccessToken(t, s, hc, ownJWT.AccessToken).Expiration()
	upstream10m, upstream10mExp := subjectJWT(upstreamIss, 10*time.Minute)
	upstream2h, upstream2hExp := subjectJWT(upstreamIss, 2*time.Hour)

	tests := []struct {
		name                 string
		subject, subjectType string
		target               []string // audience or resource, and its value
		extra                []string // more parameters
		// A token about wantSub for wantAud (the orders resource, whose
		// TTL is an hour), expiring at the earlier of iat + 1h and
		// subjectExp (at subjectExp or before when !exact); or an opaque
		// token; or the error wantError, with why in its detail.
		wantSub, wantAud, wantScope string
		subjectExp                  time.Time
		exact                       bool
		wantOpaque                  bool
		wantError, why              string
	}{
		{name: "upstream JWT for an audience", subject: upstream10m, subjectType: tokenTypeJWT,
			target: []string{"audience", "orders"}, extra: []string{"scope", "orders:read"},
			wantSub: "alice", wantAud: "orders", wantScope: "orders:read", subjectExp: upstream10mExp, exact: true},
		{name: "upstream JWT for a resource", subject: upstream2h, subjectType: tokenTypeAccessToken,
			target:  []string{"resource", "https://orders.example"},
			wantSub: "alice", wantAud: "orders", subjectExp: upstream2hExp, exact: true},
		{name: "own opaque token", subject: ownOpaque.AccessToken, subjectType: tokenTypeAccessToken,
			target:  []string{"resource", "https://orders.example"},
			wantSub: "billing", wantAud: "orders", subjectExp: ownOpaqueExp},
		{name: "own JWT", subject: ownJWT.AccessToken, subjectType: tokenTypeAccessToken,
			target:  []string{"audience", "orders"},
			wantSub: "billing", wantAud: "orders", subjectExp: ownJWTExp, exact: true},
		{name: "no target", subject: upstream10m, subjectType: tokenTypeJWT,
			wantOpaque: true},
		{name: "missing subject_token_type", subject: subject(subjectJWT(upstreamIss, time.Minute)),
			target: []string{"audience", "orders"}, wantError: "invalid_request", why: "subject_token_type"},
		{name: "forged subject token", subject: forged, subjectType: tokenTypeJWT,
			target: []string{"audience", "orders"}, wantError: "invalid_request", why: "signature verification failed"},
		{name: "untrusted issuer", subject: subject(subjectJWT("https://other.example", time.Minute)), subjectType: tokenTypeJWT,
			target: []string{"audience", "orders"}, wantError: "invalid_request", why: "not trusted"},
		{name: "expired subject token", subject: subject(subjectJWT(upstreamIss, -time.Minute)), subjectType: tokenTypeJWT,
			target: []string{"audience", "orders"}, wantError: "invalid_request", why: `"exp"`},
		{name: "unknown opaque token", subject: "not-a-token-of-this-provider", subjectType: tokenTypeAccessToken,
			target: []string{"audience", "orders"}, wantError: "invalid_request", why: "subject_token is invalid"},
		{name: "unsupported subject_token_type", subject: subject(subjectJWT(upstreamIss, time.Minute)),
			subjectType: "urn:ietf:params:oauth:token-type:saml2",
			target:      []string{"audience", "orders"}, wantError: "invalid_request", why: "unsupported subject_token_type"},
		{name: "unknown audience", subject: subject(subjectJWT(upstreamIss, time.Minute)), subjectType: tokenTypeJWT,
			target: []string{"audience", "inventory"}, wantError: "invalid_target", why: "unknown audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, tt.subject, tt.subjectType, append(tt.target, tt.extra...)...)
			if tt.wantError != "" {
				if got.Status != http.StatusBadRequest || got.Error != tt.wantError {
					t.Errorf("token response = %+v; want 400 %s", got, tt.wantError)
				}
				checkRefusal(t, s, "gateway", tt.wantError, tt.why)
				return
			}
			if got.Status != http.StatusOK || got.IssuedTokenType != tokenTypeAccessToken || got.TokenType != "Bearer" {
				t.Fatalf("token response = %+v; want 200, a Bearer access_token", got)
			}
			if tt.wantOpaque {
				if strings.Contains(got.AccessToken, ".") || got.ExpiresIn != 60 {
					t.Errorf("token response = %+v; want an opaque token with expires_in 60", got)
				}
				return
			}
			tok := verifyAccessToken(t, s, hc, got.AccessToken)
			if tok.Subject() != tt.wantSub || !slices.Equal(tok.Audience(), []string{tt.wantAud}) {
				t.Errorf("sub, aud = %q, %q; want %q, [%q]", tok.Subject(), tok.Audience(), tt.wantSub, tt.wantAud)
			}
			if cid, _ := tok.PrivateClaims()["client_id"].(string); cid != "gateway" {
				t.Errorf("client_id = %q; want gateway", cid)
			}
			exp := tok.Expiration()
			if exp.After(tt.subjectExp) {
				t.Errorf("exp = %v; want at most the subject token's, %v", exp, tt.subjectExp)
			}
			want := tok.IssuedAt().Add(time.Hour)
			if tt.subjectExp.Before(want) {
				want = tt.subjectExp
			}
			if tt.exact && !exp.Equal(want) {
				t.Errorf("exp = %v; want %v, the earlier of iat + the resource's TTL and the subject token's exp", exp, want)
			}
			if d := jwtLifetime(tok); got.ExpiresIn != int(d.Seconds()) {
				t.Errorf("expires_in = %d; want exp - iat, %v", got.ExpiresIn, d)
			}
			if scope, _ := tok.PrivateClaims()["scope"].(string); scope != tt.wantScope {
				t.Errorf("scope = %q; want %q", scope, tt.wantScope)
			}
		})
	}
	if n := s.Issued(t, "gateway"); n != 5 {
		t.Errorf("Issued(gateway) = %d; want 5", n)
	}
}
