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
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// This file is the harness of a real OpenID provider for the package's
// tests: node's oidc-provider (testdata/oidc/server.mjs), started by
// startOIDC on 127.0.0.1 and configured by an oidcConfig; the helpers that
// make the keys and certificates its clients authenticate with; and the
// TestOIDCHarness tests, which prove it with net/http, jwx and testkit alone.

// Grant and token types of OAuth 2.0 Token Exchange (RFC 8693).
const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	tokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	assertionTypeJWT     = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// oidcConfig configures a test OpenID provider. The zero value is a provider
// over plain HTTP with no clients and no resources. Every client may use the
// client_credentials and the token exchange grants; see server.mjs for the
// token exchange's rules.
type oidcConfig struct {
	// Clients are the registered clients.
	Clients []oidcClient
	// Resources are the resource servers a token can be requested for, with
	// resource (RFC 8707) or, in a token exchange, audience. A token
	// requested without resource is opaque; one for an unknown resource is
	// refused with invalid_target.
	Resources []oidcResource
	// AccessTokenTTL is the lifetime of tokens issued without a resource,
	// and of tokens for a resource with no TTL of its own, in whole seconds.
	// The default is 10 minutes.
	AccessTokenTTL time.Duration
	// IssuerPath is appended to the origin to make the issuer: "/tenant"
	// gives http://127.0.0.1:port/tenant, whose metadata is served at both
	// /tenant/.well-known/openid-configuration and (RFC 8414)
	// /.well-known/oauth-authorization-server/tenant. The default is none.
	IssuerPath string
	// TLS, when set, serves the provider over HTTPS, requests client
	// certificates and enables tls_client_auth and
	// self_signed_tls_client_auth. The default is plain HTTP.
	TLS *oidcTLS
	// MTLSEndpointAliases, with TLS, requests client certificates on a
	// second listener only, whose token, introspection and revocation
	// endpoints the metadata publishes as mtls_endpoint_aliases (RFC 8705
	// section 5); the issuer's own listener then requests none.
	MTLSEndpointAliases bool
	// TrustedIssuers are the issuers whose JWTs a token exchange accepts as
	// subject tokens, besides tokens this provider issued.
	TrustedIssuers []oidcTrustedIssuer
	// DPoPNonces makes every DPoP proof at the token endpoint carry a nonce
	// the provider issued (400 use_dpop_nonce with a DPoP-Nonce header
	// otherwise). DPoP proofs are accepted either way.
	DPoPNonces bool
	// KeyRotation adds a second RS256 key, "rs256-next", which
	// [oidcServer.Rotate] publishes, signs with, and then makes the only
	// RS256 key published; its jwks_uri is then served by server.mjs, with
	// the published keys. The default keys are "rs256" and "es256".
	KeyRotation bool
	// RefreshTokens, when set, lets [oidcServer.Grant] mint grants with a
	// refresh token, for clients that list refresh_token among their
	// grant_types (in Metadata).
	RefreshTokens *oidcRefreshTokens
}

// oidcRefreshTokens configures the refresh tokens of minted grants.
type oidcRefreshTokens struct {
	// Rotate spends a refresh token on every refresh, which issues a new
	// one; a spent one presented again revokes the grant.
	Rotate bool
	// Resource is the resource (one of oidcConfig.Resources) the grants'
	// access tokens are for, and Scope their scope there.
	Resource, Scope string
}

// oidcClient is a registered client. ID is required.
type oidcClient struct {
	ID string
	// Secret is the client_secret, for client_secret_basic,
	// client_secret_post and client_secret_jwt (where it is the HMAC key).
	Secret string
	// AuthMethod is the token_endpoint_auth_method. The default is
	// client_secret_basic.
	AuthMethod string
	// SigningAlg is the token_endpoint_auth_signing_alg the client's
	// assertions must use. The default accepts any the provider supports
	// (HS256 for client_secret_jwt; RS256, PS256, ES256, EdDSA for
	// private_key_jwt).
	SigningAlg string
	// JWKS is the client's public key set (publicJWKS): the keys of its
	// private_key_jwt assertions, or (certJWKS) the certificates of its
	// self_signed_tls_client_auth.
	JWKS json.RawMessage
	// SubjectDN and SANDNS identify the certificate of a tls_client_auth
	// client: tls_client_auth_subject_dn (in the form of Go's
	// pkix.Name.String(), "CN=billing,O=jwtcache tests") or
	// tls_client_auth_san_dns. Such a client needs exactly one.
	SubjectDN, SANDNS string
	// CertificateBound binds the client's tokens to its TLS client
	// certificate (tls_client_certificate_bound_access_tokens): a JWT
	// access token carries cnf.x5t#S256, and a request without a
	// certificate is refused.
	CertificateBound bool
	// DPoPBound requires a DPoP proof on the client's token requests
	// (dpop_bound_access_tokens); its tokens are DPoP tokens, bound to the
	// proof's key (a JWT carries cnf.jkt).
	DPoPBound bool
	// Scope is the space-separated scopes the client may request. The
	// default is any.
	Scope string
	// Metadata is more client metadata for oidc-provider, overriding the
	// fields above.
	Metadata map[string]any
}

// oidcResource is a resource server.
type oidcResource struct {
	// Identifier is the resource indicator, an absolute URI such as
	// https://api.example.
	Identifier string
	// Audience is the aud of its tokens. The default is Identifier.
	Audience string
	// Scope is the space-separated scopes it knows; a token for it carries
	// the requested ones among them.
	Scope string
	// TTL is its tokens' lifetime, in whole seconds. The default is
	// oidcConfig.AccessTokenTTL.
	TTL time.Duration
	// Opaque issues opaque tokens instead of JWT access tokens (RFC 9068).
	Opaque bool
	// SigningAlg signs its JWTs: RS256 (the default) or ES256.
	SigningAlg string
}

// oidcTrustedIssuer is an issuer of subject tokens for token exchange.
type oidcTrustedIssuer struct {
	Issuer string          // the iss of its JWTs
	JWKS   json.RawMessage // its public keys (publicJWKS)
}

// oidcTLS is the provider's HTTPS configuration; testPKI.serverTLS makes one.
type oidcTLS struct {
	CertPEM, KeyPEM []byte         // the server's certificate for 127.0.0.1, and its key
	RootCAs         *x509.CertPool // verifies CertPEM, for the test's clients
	ClientCAPEMs    [][]byte       // the CAs whose certificates tls_client_auth accepts
}

// oidcServer is a running provider, stopped when the test ends.
type oidcServer struct {
	// Issuer is the issuer identifier, exactly as in the metadata.
	Issuer string
	// TokenURL is the token endpoint, Issuer + "/token".
	TokenURL string
	// MTLSTokenURL is the token endpoint's mTLS alias; empty without
	// MTLSEndpointAliases.
	MTLSTokenURL string
	// RootCAs verifies the server's certificate; nil over plain HTTP.
	RootCAs *x509.CertPool

	proc    *testkit.Process
	synced  chan int    // the n of each SYNCED line
	rotated chan string // the step of each ROTATED line
	granted chan string // the rest of each GRANT line
	revoked chan string // the grant id of each REVOKED line

	syncMu sync.Mutex // serializes sync and Rotate: one outstanding at a time
	nsync  int        // guarded by syncMu

	mu        sync.Mutex // guards issued, refused and refreshed
	issued    map[string]int
	refused   map[string][]oidcRefusal
	refreshed map[string]int // refresh token grants by account
}

// oidcRefusal is a token request the provider refused.
type oidcRefusal struct {
	Error  string // the OAuth error code, such as invalid_client
	Detail string // why, which an invalid_client response does not say
}

// startOIDC starts a provider configured by cfg and waits (30 s at most)
// until it listens: until its READY line, which names the issuer. Without
// node or the npm packages (`make test` installs them), the test is skipped,
// unless CI=true: there it fails. The end of the server's output is logged
// if the test fails. When the test ends, the server's stdin is closed, on
// which it exits; it is killed if it has not within 10 s.
func startOIDC(t *testing.T, cfg oidcConfig) *oidcServer {
	t.Helper()
	dir := filepath.Join("testdata", "oidc")
	node := testkit.Node(t, dir, "oidc-provider")
	doc, err := json.Marshal(cfg.wire())
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "oidc.json")
	if err := os.WriteFile(cfgFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}

	s := &oidcServer{
		synced:    make(chan int, 1),
		rotated:   make(chan string, 1),
		granted:   make(chan string, 1),
		revoked:   make(chan string, 1),
		issued:    map[string]int{},
		refused:   map[string][]oidcRefusal{},
		refreshed: map[string]int{},
	}
	if cfg.TLS != nil {
		s.RootCAs = cfg.TLS.RootCAs
	}
	// Written by OnLine before the READY line, so before Start returns;
	// only read after.
	var mtls string
	s.proc = testkit.Start(t, testkit.Command{
		Name:      "oidc-provider",
		Path:      node,
		Args:      []string{"server.mjs", cfgFile},
		Dir:       dir,
		ReadyLine: "READY", // READY <issuer>
		OnLine: func(line string) {
			word, rest, _ := strings.Cut(line, " ")
			switch word {
			case "MTLS":
				mtls = rest
			case "ISSUED":
				client, _, _ := strings.Cut(rest, " ")
				s.mu.Lock()
				s.issued[client]++
				s.mu.Unlock()
			case "REFUSED":
				f := strings.SplitN(rest, " ", 4)
				if len(f) == 4 {
					s.mu.Lock()
					s.refused[f[0]] = append(s.refused[f[0]], oidcRefusal{Error: f[2], Detail: f[3]})
					s.mu.Unlock()
				}
			case "SYNCED":
				n, _ := strconv.Atoi(rest)
				s.synced <- n
			case "ROTATED":
				s.rotated <- rest
			case "GRANT":
				s.granted <- rest
			case "REVOKED":
				s.revoked <- rest
			case "REFRESHED":
				account, _, _ := strings.Cut(rest, " ")
				s.mu.Lock()
				s.refreshed[account]++
				s.mu.Unlock()
			}
		},
		Stdin: true,
	})
	s.Issuer = s.proc.Ready()
	s.TokenURL = s.Issuer + "/token"
	if mtls != "" {
		s.MTLSTokenURL = mtls + cfg.IssuerPath + "/token"
	}
	return s
}

// Issued returns how many tokens the server has issued to the client, all
// of them, up to the last response the test has received: it syncs with the
// server's output first.
func (s *oidcServer) Issued(t *testing.T, clientID string) int {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[clientID]
}

// Refused returns the token requests the server refused for the client
// ("-" for requests that name no client), in order, up to the last response
// the test has received.
func (s *oidcServer) Refused(t *testing.T, clientID string) []oidcRefusal {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refused[clientID])
}

// sync sends "sync n" and waits for "SYNCED n": the server has written every
// line before it, and the reader has read them.
func (s *oidcServer) sync(t *testing.T) {
	t.Helper()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.nsync++
	if err := s.proc.Send(fmt.Sprintf("sync %d", s.nsync)); err != nil {
		t.Fatalf("sync with oidc-provider: %v", err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n := <-s.synced:
			if n == s.nsync {
				return
			}
		case <-s.proc.Exited():
			t.Fatal("oidc-provider exited")
		case <-timeout:
			t.Fatal("oidc-provider did not answer sync within 10s")
		}
	}
}

// Rotate runs a step of the key rotation of a server started with
// KeyRotation, and returns once it is in force: "publish" lists the key
// "rs256-next" in the jwks_uri beside "rs256", "sign" has JWT access tokens
// signed with it, "withdraw" removes "rs256" from the jwks_uri.
func (s *oidcServer) Rotate(t *testing.T, step string) {
	t.Helper()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.proc.Send("rotate " + step); err != nil {
		t.Fatalf("rotate %s: %v", step, err)
	}
	select {
	case got := <-s.rotated:
		if got != step {
			t.Fatalf("oidc-provider rotated %q; want %q", got, step)
		}
	case <-s.proc.Exited():
		t.Fatal("oidc-provider exited")
	case <-time.After(10 * time.Second):
		t.Fatalf("oidc-provider did not rotate %q within 10s (started without KeyRotation?)", step)
	}
}

// Grant mints a grant of the account to the client, as an authorization code
// flow would leave it (a server started with RefreshTokens), and returns its
// id and first refresh token.
func (s *oidcServer) Grant(t *testing.T, clientID, account string) (grantID, refreshToken string) {
	t.Helper()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.proc.Send("grant " + clientID + " " + account); err != nil {
		t.Fatalf("grant: %v", err)
	}
	select {
	case got := <-s.granted:
		f := strings.Fields(got)
		if len(f) != 3 || f[0] != account {
			t.Fatalf("oidc-provider granted %q; want a grant of %s", got, account)
		}
		return f[1], f[2]
	case <-s.proc.Exited():
		t.Fatal("oidc-provider exited")
	case <-time.After(10 * time.Second):
		t.Fatal("oidc-provider minted no grant within 10s (started without RefreshTokens?)")
	}
	return "", ""
}

// Revoke revokes the grant and its tokens, as an administrator would.
func (s *oidcServer) Revoke(t *testing.T, grantID string) {
	t.Helper()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.proc.Send("revoke " + grantID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	select {
	case got := <-s.revoked:
		if got != grantID {
			t.Fatalf("oidc-provider revoked %q; want %q", got, grantID)
		}
	case <-s.proc.Exited():
		t.Fatal("oidc-provider exited")
	case <-time.After(10 * time.Second):
		t.Fatal("oidc-provider did not revoke within 10s")
	}
}

// Refreshed returns how many refresh token grants of the account the server
// answered with a token, up to the last response the test has received.
func (s *oidcServer) Refreshed(t *testing.T, account string) int {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshed[account]
}

// Client returns an HTTP client that trusts the server's certificate and
// presents certs, if any, as its TLS client certificate. Its idle
// connections are closed when the test ends.
func (s *oidcServer) Client(t *testing.T, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs, Certificates: certs}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// wire is the JSON document server.mjs reads.
func (c oidcConfig) wire() map[string]any {
	seconds := func(d time.Duration) int { return int(d / time.Second) }
	clients := make([]map[string]any, 0, len(c.Clients))
	for _, cl := range c.Clients {
		m := map[string]any{"client_id": cl.ID}
		set := func(k string, v any, ok bool) {
			if ok {
				m[k] = v
			}
		}
		set("client_secret", cl.Secret, cl.Secret != "")
		set("token_endpoint_auth_method", cl.AuthMethod, cl.AuthMethod != "")
		set("token_endpoint_auth_signing_alg", cl.SigningAlg, cl.SigningAlg != "")
		set("jwks", cl.JWKS, cl.JWKS != nil)
		set("tls_client_auth_subject_dn", cl.SubjectDN, cl.SubjectDN != "")
		set("tls_client_auth_san_dns", cl.SANDNS, cl.SANDNS != "")
		set("tls_client_certificate_bound_access_tokens", true, cl.CertificateBound)
		set("dpop_bound_access_tokens", true, cl.DPoPBound)
		set("scope", cl.Scope, cl.Scope != "")
		for k, v := range cl.Metadata {
			m[k] = v
		}
		clients = append(clients, m)
	}
	resources := make([]map[string]any, 0, len(c.Resources))
	for _, r := range c.Resources {
		format := "jwt"
		if r.Opaque {
			format = "opaque"
		}
		resources = append(resources, map[string]any{
			"identifier": r.Identifier, "audience": r.Audience, "scope": r.Scope,
			"accessTokenTTL": seconds(r.TTL), "accessTokenFormat": format, "signingAlg": r.SigningAlg,
		})
	}
	issuers := make([]map[string]any, 0, len(c.TrustedIssuers))
	for _, iss := range c.TrustedIssuers {
		issuers = append(issuers, map[string]any{"issuer": iss.Issuer, "jwks": iss.JWKS})
	}
	w := map[string]any{
		"clients": clients, "resources": resources,
		"accessTokenTTL": seconds(c.AccessTokenTTL), "issuerPath": c.IssuerPath,
		"mtlsEndpointAliases": c.MTLSEndpointAliases,
		"dpopNonces":          c.DPoPNonces,
		"keyRotation":         c.KeyRotation,
		"tokenExchange":       map[string]any{"trustedIssuers": issuers},
	}
	if r := c.RefreshTokens; r != nil {
		w["refreshTokens"] = map[string]any{"rotate": r.Rotate, "resource": r.Resource, "scope": r.Scope}
	}
	if c.TLS != nil {
		cas := make([]string, 0, len(c.TLS.ClientCAPEMs))
		for _, ca := range c.TLS.ClientCAPEMs {
			cas = append(cas, string(ca))
		}
		w["tls"] = map[string]any{"cert": string(c.TLS.CertPEM), "key": string(c.TLS.KeyPEM), "clientCAs": cas}
	}
	return w
}

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
