// Package oidctest runs a real OpenID provider for the tests of every module:
// node's oidc-provider, from npm (provider/testdata/oidc/server.mjs, whose
// packages `make test` installs), started by [Start] on 127.0.0.1 and
// configured by a [Config]. It drives the provider through the server's
// standard input and output: it counts the tokens issued and refused, mints
// grants as an authorization code flow would leave them, revokes them, and
// rotates the signing keys.
package oidctest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// serverDir returns the directory of server.mjs and its npm packages, beside
// this package in the repository, wherever the test that starts it runs.
func serverDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "provider", "testdata", "oidc")
}

// Config configures a test OpenID provider. The zero value is a provider
// over plain HTTP with no clients and no resources. Every client may use the
// client_credentials and the token exchange grants; see server.mjs for the
// token exchange's rules.
type Config struct {
	// Clients are the registered clients.
	Clients []Client
	// Resources are the resource servers a token can be requested for, with
	// resource (RFC 8707) or, in a token exchange, audience. A token
	// requested without resource is opaque; one for an unknown resource is
	// refused with invalid_target.
	Resources []Resource
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
	TLS *TLS
	// MTLSEndpointAliases, with TLS, requests client certificates on a
	// second listener only, whose token, introspection and revocation
	// endpoints the metadata publishes as mtls_endpoint_aliases (RFC 8705
	// section 5); the issuer's own listener then requests none.
	MTLSEndpointAliases bool
	// TrustedIssuers are the issuers whose JWTs a token exchange accepts as
	// subject tokens, besides tokens this provider issued.
	TrustedIssuers []TrustedIssuer
	// AssertionIssuers are the issuers whose JWTs the JWT bearer grant (RFC
	// 7523) accepts as assertions, for clients that list
	// urn:ietf:params:oauth:grant-type:jwt-bearer in their grant_types (in
	// Metadata); see server.mjs for the grant's rules.
	AssertionIssuers []TrustedIssuer
	// DPoPNonces makes every DPoP proof at the token endpoint carry a nonce
	// the provider issued (400 use_dpop_nonce with a DPoP-Nonce header
	// otherwise). DPoP proofs are accepted either way.
	DPoPNonces bool
	// KeyRotation adds a second RS256 key, "rs256-next", which
	// [Server.Rotate] publishes, signs with, and then makes the only
	// RS256 key published; its jwks_uri is then served by server.mjs, with
	// the published keys. The default keys are "rs256" and "es256".
	KeyRotation bool
	// RefreshTokens, when set, lets [Server.Grant] mint grants with a
	// refresh token, for clients that list refresh_token among their
	// grant_types (in Metadata).
	RefreshTokens *RefreshTokens
}

// RefreshTokens configures the refresh tokens of minted grants.
type RefreshTokens struct {
	// Rotate spends a refresh token on every refresh, which issues a new
	// one; a spent one presented again revokes the grant.
	Rotate bool
	// Resource is the resource (one of Config.Resources) the grants'
	// access tokens are for, and Scope their scope there.
	Resource, Scope string
}

// Client is a registered client. ID is required.
type Client struct {
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
	// JWKS is the client's public key set, a JWKS: the keys of its
	// private_key_jwt assertions, or (x5c) the certificates of its
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

// Resource is a resource server.
type Resource struct {
	// Identifier is the resource indicator, an absolute URI such as
	// https://api.example.
	Identifier string
	// Audience is the aud of its tokens. The default is Identifier.
	Audience string
	// Scope is the space-separated scopes it knows; a token for it carries
	// the requested ones among them.
	Scope string
	// TTL is its tokens' lifetime, in whole seconds. The default is
	// Config.AccessTokenTTL.
	TTL time.Duration
	// Opaque issues opaque tokens instead of JWT access tokens (RFC 9068).
	Opaque bool
	// SigningAlg signs its JWTs: RS256 (the default) or ES256.
	SigningAlg string
}

// TrustedIssuer is an issuer of subject tokens for token exchange.
type TrustedIssuer struct {
	Issuer string          // the iss of its JWTs
	JWKS   json.RawMessage // its public keys, a JWKS
}

// TLS is the provider's HTTPS configuration.
type TLS struct {
	CertPEM, KeyPEM []byte         // the server's certificate for 127.0.0.1, and its key
	RootCAs         *x509.CertPool // verifies CertPEM, for the test's clients
	ClientCAPEMs    [][]byte       // the CAs whose certificates tls_client_auth accepts
}

// Server is a running provider, stopped when the test ends.
type Server struct {
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

	mu        sync.Mutex // guards issued, refused, refreshed and grantsRevoked
	issued    map[string]int
	refused   map[string][]Refusal
	refreshed map[string]int // refresh token grants by account

	grantsRevoked []string // the grants oidc-provider revoked, in order
}

// Refusal is a token request the provider refused.
type Refusal struct {
	Error  string // the OAuth error code, such as invalid_client
	Detail string // why, which an invalid_client response does not say
}

// Start starts a provider configured by cfg and waits (30 s at most)
// until it listens: until its READY line, which names the issuer. Without
// node or the npm packages (`make test` installs them), the test is skipped,
// unless CI=true: there it fails. The end of the server's output is logged
// if the test fails. When the test ends, the server's stdin is closed, on
// which it exits; it is killed if it has not within 10 s.
func Start(t *testing.T, cfg Config) *Server {
	t.Helper()
	dir := serverDir()
	node := testkit.Node(t, dir, "oidc-provider")
	doc, err := json.Marshal(cfg.wire())
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "oidc.json")
	if err := os.WriteFile(cfgFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}

	s := &Server{
		synced:    make(chan int, 1),
		rotated:   make(chan string, 1),
		granted:   make(chan string, 1),
		revoked:   make(chan string, 1),
		issued:    map[string]int{},
		refused:   map[string][]Refusal{},
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
					s.refused[f[0]] = append(s.refused[f[0]], Refusal{Error: f[2], Detail: f[3]})
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
			case "GRANTREVOKED":
				s.mu.Lock()
				s.grantsRevoked = append(s.grantsRevoked, rest)
				s.mu.Unlock()
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
func (s *Server) Issued(t *testing.T, clientID string) int {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[clientID]
}

// Refused returns the token requests the server refused for the client
// ("-" for requests that name no client), in order, up to the last response
// the test has received.
func (s *Server) Refused(t *testing.T, clientID string) []Refusal {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.refused[clientID])
}

// sync sends "sync n" and waits for "SYNCED n": the server has written every
// line before it, and the reader has read them.
func (s *Server) sync(t *testing.T) {
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
func (s *Server) Rotate(t *testing.T, step string) {
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
func (s *Server) Grant(t *testing.T, clientID, account string) (grantID, refreshToken string) {
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
func (s *Server) Revoke(t *testing.T, grantID string) {
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
func (s *Server) Refreshed(t *testing.T, account string) int {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshed[account]
}

// GrantsRevoked returns the ids of the grants the provider revoked of its
// own accord (on reuse of a spent refresh token: not by [Server.Revoke]),
// in order, up to the last response the test has received.
func (s *Server) GrantsRevoked(t *testing.T) []string {
	t.Helper()
	s.sync(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.grantsRevoked)
}

// Client returns an HTTP client that trusts the server's certificate and
// presents certs, if any, as its TLS client certificate. Its idle
// connections are closed when the test ends.
func (s *Server) Client(t *testing.T, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.RootCAs, Certificates: certs}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// wire is the JSON document server.mjs reads.
func (c Config) wire() map[string]any {
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
	trusted := func(list []TrustedIssuer) []map[string]any {
		issuers := make([]map[string]any, 0, len(list))
		for _, iss := range list {
			issuers = append(issuers, map[string]any{"issuer": iss.Issuer, "jwks": iss.JWKS})
		}
		return issuers
	}
	w := map[string]any{
		"clients": clients, "resources": resources,
		"accessTokenTTL": seconds(c.AccessTokenTTL), "issuerPath": c.IssuerPath,
		"mtlsEndpointAliases": c.MTLSEndpointAliases,
		"dpopNonces":          c.DPoPNonces,
		"keyRotation":         c.KeyRotation,
		"tokenExchange":       map[string]any{"trustedIssuers": trusted(c.TrustedIssuers)},
		"jwtBearer":           map[string]any{"trustedIssuers": trusted(c.AssertionIssuers)},
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
