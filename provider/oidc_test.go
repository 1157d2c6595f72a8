package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// End to end against the real OpenID provider of the harness (oidc-provider
// from npm): each client authentication method, discovery, opaque and JWT
// access tokens and resource indicators, through the cache and the
// transport, and the bad configurations that must fail fast. Each feature's
// tests run on their own with -run, e.g. -run 'Discovery|PrivateKeyJWT|KeyRotation'.

// rawKey returns the private key inside a jwk.Key, as the crypto.Signer a
// client is configured with.
func rawKey(t *testing.T, k jwk.Key) crypto.Signer {
	t.Helper()
	var raw ecdsa.PrivateKey
	if err := k.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	return &raw
}

// newOIDCClient returns a provider client configured from s's issuer.
func newOIDCClient(t *testing.T, s *oidcServer, auth provider.ClientAuth, opts ...provider.Option) *provider.Client {
	t.Helper()
	c, err := provider.New(context.Background(), s.Issuer, auth, append([]provider.Option{provider.HTTPClient(s.Client(t))}, opts...)...)
	if err != nil {
		t.Fatalf("provider.New(%s) error = %v", s.Issuer, err)
	}
	return c
}

// cached returns a cache that fetches with c.
func cached(c *provider.Client, opts ...jwtcache.Option) *jwtcache.Cache {
	return jwtcache.NewCache(append([]jwtcache.Option{jwtcache.Name("e2e"), jwtcache.Logger(nil), jwtcache.IssueFunction(c.Issue)}, opts...)...)
}

// ensureMany calls the cache n times and fails on any error; it returns the
// distinct tokens served.
func ensureMany(t *testing.T, c *jwtcache.Cache, n int) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for range n {
		tok, err := c.EnsureToken(context.Background())
		if err != nil {
			t.Fatalf("EnsureToken() error = %v", err)
		}
		seen[tok] = true
	}
	return seen
}

func TestOIDC_Discovery(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{Clients: []oidcClient{{ID: "billing", Secret: harnessSecret}}})
	c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret))
	if got := c.Metadata(); got.Issuer != s.Issuer || got.TokenEndpoint != s.TokenURL || c.JWKSURI() == "" {
		t.Errorf("Metadata() = issuer %q, token endpoint %q, jwks_uri %q; want %q, %q and one",
			got.Issuer, got.TokenEndpoint, c.JWKSURI(), s.Issuer, s.TokenURL)
	}
	if got := ensureMany(t, cached(c), 50); len(got) != 1 || s.Issued(t, "billing") != 1 {
		t.Errorf("50 calls: %d distinct tokens, %d issued; want 1, 1", len(got), s.Issued(t, "billing"))
	}

	t.Run("issuer mismatch", func(t *testing.T) {
		_, err := provider.New(context.Background(), s.Issuer+"/", provider.ClientSecretBasic("billing", harnessSecret),
			provider.HTTPClient(s.Client(t)))
		if !errors.Is(err, provider.ErrIssuerMismatch) {
			t.Errorf("New(issuer + \"/\") error = %v; want ErrIssuerMismatch", err)
		}
	})
	t.Run("non-HTTPS issuer", func(t *testing.T) {
		_, err := provider.New(context.Background(), "http://idp.example.com", provider.ClientSecretBasic("billing", harnessSecret))
		if !errors.Is(err, provider.ErrInsecureURL) {
			t.Errorf("New(http://idp.example.com) error = %v; want ErrInsecureURL", err)
		}
	})
	t.Run("path issuer, RFC 8414", func(t *testing.T) {
		s := startOIDC(t, oidcConfig{IssuerPath: "/tenant-a", Clients: []oidcClient{{ID: "billing", Secret: harnessSecret}}})
		c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret))
		if got := c.Metadata().Issuer; got != s.Issuer || !strings.HasSuffix(got, "/tenant-a") {
			t.Errorf("Metadata().Issuer = %q; want %q", got, s.Issuer)
		}
		ensureMany(t, cached(c), 3)
	})
}

func TestOIDC_ClientSecretBasicAndPost(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{Clients: []oidcClient{
		{ID: "basic", Secret: harnessSecret},
		{ID: "post", Secret: harnessSecret, AuthMethod: "client_secret_post"},
	}})
	for id, auth := range map[string]provider.ClientAuth{
		"basic": provider.ClientSecretBasic("basic", harnessSecret),
		"post":  provider.ClientSecretPost("post", harnessSecret),
	} {
		ensureMany(t, cached(newOIDCClient(t, s, auth)), 10)
		if got := s.Issued(t, id); got != 1 {
			t.Errorf("Issued(%s) = %d; want 1", id, got)
		}
	}
	t.Run("wrong secret", func(t *testing.T) {
		c := newOIDCClient(t, s, provider.ClientSecretBasic("basic", "not-the-secret"))
		_, err := cached(c).EnsureToken(context.Background())
		var perr *provider.Error
		if !errors.As(err, &perr) || perr.Code != "invalid_client" || strings.Contains(err.Error(), "not-the-secret") {
			t.Errorf("EnsureToken() with a wrong secret: error = %v; want invalid_client, without the secret", err)
		}
	})
}

func TestOIDC_ClientSecretJWT(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{Clients: []oidcClient{
		{ID: "secret-jwt", Secret: harnessSecret, AuthMethod: "client_secret_jwt", SigningAlg: "HS256"},
	}})
	c := cached(newOIDCClient(t, s, provider.ClientSecretJWT("secret-jwt", []byte(harnessSecret))))
	first := ensureMany(t, c, 10)
	// A second fetch needs a fresh assertion: the provider refuses a replay.
	c.Invalidate()
	if second := ensureMany(t, c, 1); len(second) != 1 || first[firstKey(second)] || s.Issued(t, "secret-jwt") != 2 {
		t.Errorf("after InvalidateToken: a new token %v, issued %d; want a new one, 2", !first[firstKey(second)], s.Issued(t, "secret-jwt"))
	}
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

func TestOIDC_PrivateKeyJWT(t *testing.T) {
	t.Parallel()
	key := newSigningKey(t, jwa.ES256, "billing-es256")
	other := newSigningKey(t, jwa.ES256, "billing-es256") // same kid, another key
	s := startOIDC(t, oidcConfig{Clients: []oidcClient{
		{ID: "key-jwt", AuthMethod: "private_key_jwt", SigningAlg: "ES256", JWKS: publicJWKS(t, key)},
	}})
	c := cached(newOIDCClient(t, s, provider.PrivateKeyJWT("key-jwt", rawKey(t, key), provider.KeyID("billing-es256"))))
	for round := range 3 { // each fetch signs a fresh assertion; a replay would be refused
		ensureMany(t, c, 5)
		c.Invalidate()
		if got := s.Issued(t, "key-jwt"); got != round+1 {
			t.Fatalf("Issued after %d fetches = %d", round+1, got)
		}
	}

	t.Run("wrong key", func(t *testing.T) {
		c := cached(newOIDCClient(t, s, provider.PrivateKeyJWT("key-jwt", rawKey(t, other), provider.KeyID("billing-es256"))))
		_, err := c.EnsureToken(context.Background())
		var perr *provider.Error
		if !errors.As(err, &perr) || perr.Code != "invalid_client" {
			t.Errorf("EnsureToken() with the wrong key: error = %v; want invalid_client", err)
		}
		checkRefusal(t, s, "key-jwt", "invalid_client", "")
	})
	t.Run("assertion from a file (workload identity)", func(t *testing.T) {
		// A federated assertion that some other system wrote, re-read on
		// every fetch: here the test signs it, as the kubelet would.
		path := t.TempDir() + "/token"
		write := func() {
			if err := writeFile(path, clientAssertion(t, jwa.ES256, key, "key-jwt", s.Issuer)+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		write()
		c := cached(newOIDCClient(t, s, provider.ClientAssertionFile("key-jwt", path)))
		before := s.Issued(t, "key-jwt")
		for tok := range ensureMany(t, c, 3) {
			c.InvalidateToken(tok)
		}
		write() // rotated, as projected service-account tokens are
		ensureMany(t, c, 3)
		if got := s.Issued(t, "key-jwt") - before; got != 2 {
			t.Errorf("tokens issued from a rotating assertion file = %d; want 2", got)
		}
	})
}

// TestOIDC_Opaque caches the provider's opaque access tokens for their
// expires_in, through the cache and the transport.
func TestOIDC_Opaque(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{AccessTokenTTL: time.Hour, Clients: []oidcClient{{ID: "billing", Secret: harnessSecret, Scope: "read write"}}})
	c := cached(newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret),
		provider.DefaultRequest(provider.Request{Scopes: []string{"read"}})))
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(tok.Value, ".") == 2 || tok.Scope != "read" {
		t.Errorf("Token() = a JWT %v, scope %q; want an opaque token, scope read", strings.Count(tok.Value, ".") == 2, tok.Scope)
	}
	if left := time.Until(tok.Expiry); left > time.Hour || left < 59*time.Minute {
		t.Errorf("opaque token cached for %v; want its expires_in, an hour", left)
	}
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(api.Close)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	for range 20 {
		resp, err := client.Get(api.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h != "Bearer "+tok.Value {
			t.Fatalf("API saw %q; want the cached opaque token", h)
		}
	}
	if got := s.Issued(t, "billing"); got != 1 {
		t.Errorf("Issued = %d after 20 requests; want 1", got)
	}
}

// TestOIDC_ResourceIndicator asks for a token per resource (RFC 8707)
// through a CacheMap keyed by the request, and sends each to its API through
// the map transport: each API verifies the JWT access token and its audience.
func TestOIDC_ResourceIndicator(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		Clients: []oidcClient{{ID: "billing", Secret: harnessSecret, Scope: "read write"}},
		Resources: []oidcResource{
			{Identifier: "https://invoices.example", Scope: "read write", TTL: time.Hour},
			{Identifier: "https://ledger.example", Scope: "read", TTL: time.Hour, SigningAlg: "ES256"},
		},
	})
	hc := s.Client(t)
	c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret))
	m := jwtcache.NewCacheMap(jwtcache.MapName("apis"), jwtcache.Logger(nil), jwtcache.MapIssueFunction(c.IssueKey))

	apis := map[string]string{} // API host → resource
	var rejected sync.Map
	for _, resource := range []string{"https://invoices.example", "https://ledger.example"} {
		api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			tok := verifyAccessToken(t, s, hc, raw)
			if aud := tok.Audience(); len(aud) != 1 || aud[0] != resource {
				rejected.Store(resource, aud)
				http.Error(w, "wrong audience", http.StatusUnauthorized)
				return
			}
			io.WriteString(w, "ok")
		}))
		t.Cleanup(api.Close)
		apis[strings.TrimPrefix(api.URL, "http://")] = resource
	}
	client := &http.Client{Transport: jwtcache.NewMapTransport(m, func(r *http.Request) (string, error) {
		return provider.Request{Resources: []string{apis[r.URL.Host]}}.Key(), nil
	}, nil)}
	for range 3 {
		for host := range apis {
			resp, err := client.Get("http://" + host + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s = %d; want 200", host, resp.StatusCode)
			}
		}
	}
	rejected.Range(func(k, v any) bool {
		t.Errorf("API %v got a token for audience %v", k, v)
		return true
	})
	if got := s.Issued(t, "billing"); got != 2 || m.Len() != 2 {
		t.Errorf("Issued = %d for %d keys after 6 requests; want 2 tokens, 2 keys", got, m.Len())
	}
}

// writeFile replaces the file at path with content, as a rename does: a
// reader sees the old content or the new, never a mix.
func writeFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// TestOIDC_DiscoveryJWKS has a client configured from the issuer verify the
// JWT access tokens it fetches against the jwks_uri that discovery found.
func TestOIDC_DiscoveryJWKS(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		Clients:   []oidcClient{{ID: "billing", Secret: harnessSecret, Scope: "read"}},
		Resources: []oidcResource{{Identifier: "https://invoices.example", Scope: "read", TTL: time.Hour}},
	})
	c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret),
		provider.DefaultRequest(provider.Request{Resources: []string{"https://invoices.example"}}))
	keys, err := verify.NewKeySet(c.JWKSURI(), verify.HTTPClient(s.Client(t)))
	if err != nil {
		t.Fatal(err)
	}
	verified, err := verify.ParseOption(keys, jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	cache := cached(c, jwtcache.ParseOptions(verified))
	tok, err := cache.Token(context.Background())
	if err != nil || strings.Count(tok.Value, ".") != 2 {
		t.Fatalf("Token() = %v; want a verified JWT access token", err)
	}

	// A client whose tokens another key signed gets none.
	other := newSigningKey(t, jwa.RS256, "other")
	otherPub, err := other.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	wrong := cached(c, jwtcache.ParseOptions(jwt.WithKey(jwa.RS256, otherPub)))
	if _, err := wrong.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrUnparsable) {
		t.Errorf("EnsureToken() verified against another key: error = %v; want ErrUnparsable", err)
	}
}

// TestOIDC_MTLS authenticates with client certificates over HTTPS
// (tls_client_auth and self_signed_tls_client_auth, RFC 8705): the provider
// binds each JWT access token to the certificate (cnf.x5t#S256); after a
// rotation, the cache holds a token bound to the new one; a certificate the
// provider does not know is refused.
func TestOIDC_MTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "client CA")
	certA, certB := pki.clientCert(t, "billing"), pki.clientCert(t, "billing")
	self := selfSignedCert(t, "reports")
	s := startOIDC(t, oidcConfig{
		TLS: pki.serverTLS(t),
		Clients: []oidcClient{
			{ID: "billing", AuthMethod: "tls_client_auth", SubjectDN: certA.Leaf.Subject.String(), CertificateBound: true, Scope: "read"},
			{ID: "reports", AuthMethod: "self_signed_tls_client_auth", JWKS: certJWKS(t, self), CertificateBound: true, Scope: "read"},
		},
		Resources: []oidcResource{{Identifier: "https://api.example", Scope: "read", TTL: time.Hour}},
	})
	hc := s.Client(t)
	req := provider.DefaultRequest(provider.Request{Resources: []string{"https://api.example"}})
	var cur sync.Map // client id → *tls.Certificate
	certFor := func(id string) func() (*tls.Certificate, error) {
		return func() (*tls.Certificate, error) {
			c, _ := cur.Load(id)
			return c.(*tls.Certificate), nil
		}
	}
	cur.Store("billing", &certA)
	cur.Store("reports", &self)

	billing := cached(newOIDCClient(t, s, provider.TLSClientAuth("billing", certFor("billing")), req))
	reports := cached(newOIDCClient(t, s, provider.SelfSignedTLSClientAuth("reports", certFor("reports")), req))
	for name, tc := range map[string]struct {
		cache *jwtcache.Cache
		cert  *tls.Certificate
	}{"billing": {billing, &certA}, "reports": {reports, &self}} {
		tok, err := tc.cache.EnsureToken(context.Background())
		if err != nil {
			t.Fatalf("%s: EnsureToken() error = %v", name, err)
		}
		if got, want := cnfThumbprint(t, verifyAccessToken(t, s, hc, tok)), certThumbprint(*tc.cert); got != want {
			t.Errorf("%s: token bound to %q; want the client certificate's %q", name, got, want)
		}
	}

	t.Run("rotation", func(t *testing.T) {
		cur.Store("billing", &certB) // same subject, new key: the provider accepts it
		provider.Rotated(billing)
		tok, err := billing.EnsureToken(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := cnfThumbprint(t, verifyAccessToken(t, s, hc, tok)); got != certThumbprint(certB) {
			t.Errorf("after rotation, token bound to %q; want the new certificate's", got)
		}
	})
	t.Run("unknown certificate", func(t *testing.T) {
		stranger := newTestPKI(t, "another CA").clientCert(t, "billing")
		cur.Store("stranger", &stranger)
		c := cached(newOIDCClient(t, s, provider.TLSClientAuth("billing", certFor("stranger")), req))
		_, err := c.EnsureToken(context.Background())
		var perr *provider.Error
		if !errors.As(err, &perr) || perr.Code != "invalid_client" {
			t.Errorf("EnsureToken() with a certificate of another CA: error = %v; want invalid_client", err)
		}
	})
}

// cnfThumbprint returns a token's cnf.x5t#S256.
func cnfThumbprint(t *testing.T, tok jwt.Token) string {
	t.Helper()
	cnf, _ := tok.Get("cnf")
	m, _ := cnf.(map[string]any)
	x5t, _ := m["x5t#S256"].(string)
	return x5t
}

// TestOIDC_TokenExchange exchanges a caller's token, signed by an upstream
// issuer the provider trusts, for one meant for a downstream API (RFC 8693),
// cached per subject and never outliving it.
func TestOIDC_TokenExchange(t *testing.T) {
	t.Parallel()
	const upstreamIss = "https://login.upstream.example"
	upstream := testkit.NewMinter(upstreamIss)
	s := startOIDC(t, oidcConfig{
		Clients:        []oidcClient{{ID: "gateway", Secret: harnessSecret}},
		Resources:      []oidcResource{{Identifier: "https://orders.example", Audience: "orders", Scope: "orders:read", TTL: time.Hour}},
		TrustedIssuers: []oidcTrustedIssuer{{Issuer: upstreamIss, JWKS: publicJWKS(t, upstream.PublicKey())}},
	})
	hc := s.Client(t)
	// subject returns a token of the upstream issuer about who, and its exp.
	subject := func(who string, life time.Duration) (string, time.Time) {
		raw := upstream.Mint(time.Now(), life, map[string]any{"sub": who, "aud": []string{"gateway"}})
		return raw, testkit.Claims(t, raw).Expiration()
	}
	c := newOIDCClient(t, s, provider.ClientSecretBasic("gateway", harnessSecret))
	x := provider.NewExchanger(c, provider.Request{Audience: []string{"orders"}}, jwtcache.Logger(nil))

	alice, aliceExp := subject("alice", 10*time.Minute)
	bob, _ := subject("bob", 10*time.Minute)
	for range 3 {
		for who, sub := range map[string]string{"alice": alice, "bob": bob} {
			tok, err := x.Token(context.Background(), sub)
			if err != nil {
				t.Fatalf("Token(%s's token) error = %v", who, err)
			}
			got := verifyAccessToken(t, s, hc, tok.Value)
			if got.Subject() != who || len(got.Audience()) != 1 || got.Audience()[0] != "orders" {
				t.Errorf("exchanged token: sub %q, aud %v; want %s, [orders]", got.Subject(), got.Audience(), who)
			}
			if who == "alice" && tok.Expiry.After(aliceExp) {
				t.Errorf("alice's exchanged token cached until %v, past her token's exp %v", tok.Expiry, aliceExp)
			}
		}
	}
	if got := s.Issued(t, "gateway"); got != 2 {
		t.Errorf("exchanges = %d for 2 subjects, 6 calls; want 2", got)
	}

	t.Run("empty subject", func(t *testing.T) {
		if _, err := x.Token(context.Background(), ""); !errors.Is(err, provider.ErrNoSubjectToken) {
			t.Errorf("Token(\"\") error = %v; want ErrNoSubjectToken", err)
		}
	})
	t.Run("forged subject", func(t *testing.T) {
		// A token of the upstream issuer about mallory (its kid, its
		// claims), with another key's signature.
		mallory, _ := subject("mallory", time.Hour)
		other := testkit.NewMinter("forger").Mint(time.Now(), time.Hour, nil)
		forged := mallory[:strings.LastIndex(mallory, ".")] + other[strings.LastIndex(other, "."):]
		_, err := x.Token(context.Background(), forged)
		var perr *provider.Error
		if !errors.As(err, &perr) || perr.Code != "invalid_request" || strings.Contains(err.Error(), forged) {
			t.Errorf("Token(forged) error = %v; want invalid_request, without the token", err)
		}
	})
}

// TestOIDC_VerifierMiddleware runs both ends against the real provider: a
// client gets tokens for a resource through the cache and the transport; the
// API in front of the resource verifies them with package verify, its key set
// fetched from the provider's jwks_uri, and hands the claims to its handler.
func TestOIDC_VerifierMiddleware(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		Clients:   []oidcClient{{ID: "billing", Secret: harnessSecret, Scope: "read"}},
		Resources: []oidcResource{{Identifier: "https://invoices.example", Scope: "read", TTL: time.Hour}},
	})
	c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret),
		provider.DefaultRequest(provider.Request{Resources: []string{"https://invoices.example"}, Scopes: []string{"read"}}))
	keys, err := verify.NewKeySet(c.JWKSURI(), verify.HTTPClient(s.Client(t)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys, verify.Issuer(c.Metadata().Issuer), verify.Audience("https://invoices.example"),
		verify.Algorithms(jwa.RS256), verify.Type("at+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	var subjects sync.Map
	api := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := verify.FromContext(r.Context())
		if !ok || !claims.HasScope("read") {
			http.Error(w, "no claims", http.StatusForbidden)
			return
		}
		subjects.Store(claims.Subject(), true)
		io.WriteString(w, "ok")
	})))
	t.Cleanup(api.Close)

	client := &http.Client{Transport: jwtcache.NewTransport(cached(c), nil)}
	for range 20 {
		resp, err := client.Get(api.URL + "/invoices")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /invoices = %d; want 200", resp.StatusCode)
		}
	}
	if _, ok := subjects.Load("billing"); !ok || s.Issued(t, "billing") != 1 || v.Len() != 1 {
		t.Errorf("subject billing seen %v, tokens issued %d, verified tokens cached %d; want true, 1, 1",
			ok, s.Issued(t, "billing"), v.Len())
	}
	// A request without the transport's token, or with a forged one, is refused.
	for name, auth := range map[string]string{"none": "", "forged": "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.c2ln"} {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/invoices", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: status %d, WWW-Authenticate %q; want 401 with a Bearer challenge", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

// TestOIDC_KeySetRegistry registers the real provider in a verify.Registry by
// its issuer alone: discovery finds its jwks_uri, and the key set verifies
// the provider's tokens; the issuer with a trailing slash is another issuer.
func TestOIDC_KeySetRegistry(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		Clients:   []oidcClient{{ID: "billing", Secret: harnessSecret}},
		Resources: []oidcResource{{Identifier: "https://invoices.example", TTL: time.Hour}},
	})
	reg := verify.NewRegistry(10, verify.HTTPClient(s.Client(t)))
	ctx := context.Background()
	if err := reg.RegisterIssuer(ctx, "acme", s.Issuer); err != nil {
		t.Fatalf("RegisterIssuer(%s) error = %v", s.Issuer, err)
	}
	if err := reg.RegisterIssuer(ctx, "slash", s.Issuer+"/"); !errors.Is(err, provider.ErrIssuerMismatch) {
		t.Errorf("RegisterIssuer(issuer + /) error = %v; want ErrIssuerMismatch", err)
	}
	keys, ok := reg.Get("acme")
	if !ok || keys.URL() != s.Issuer+"/jwks" {
		t.Fatalf("Get(acme) = %v, %v; want the key set of %s/jwks", keys, ok, s.Issuer)
	}
	v, err := verify.New(keys, verify.Issuer(s.Issuer), verify.Audience("https://invoices.example"), verify.Algorithms(jwa.RS256))
	if err != nil {
		t.Fatal(err)
	}
	c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret),
		provider.DefaultRequest(provider.Request{Resources: []string{"https://invoices.example"}}))
	tok, err := c.Issue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, tok.Token); err != nil {
		t.Errorf("Verify(a token of the provider) error = %v", err)
	}
	if st, _ := reg.Status("acme"); st.Keys != 2 || st.LastRefresh.IsZero() || st.Err != nil {
		t.Errorf("Status(acme) = %+v; want the provider's 2 keys, a last refresh, no error", st)
	}
}

// kidOf returns the kid in the header of the JWS token.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) != 1 {
		t.Fatalf("jws.Parse(a token) error = %v; want one signature", err)
	}
	return msg.Signatures()[0].ProtectedHeaders().KeyID()
}

// TestKeyRotation_OIDC runs a Verifier on a KeySet of the real provider's
// jwks_uri through a rotation of its RS256 key: the new key is published,
// tokens are signed with it, and the old key is withdrawn. A load issues and
// verifies tokens all along: none is refused. Once the key set has fetched
// the set without the old key, the old key's tokens are refused, one the
// verifier had cached as verified included. The key set's clock runs ahead
// when the test says, so that its set (cached for 5 minutes, the MinTTL: the
// jwks_uri sends no caching headers) expires without waiting, and the
// tokens' own times stay valid on the verifier's real clock.
func TestKeyRotation_OIDC(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		Clients:     []oidcClient{{ID: "billing", Secret: harnessSecret}},
		Resources:   []oidcResource{{Identifier: "https://invoices.example", TTL: time.Hour}},
		KeyRotation: true,
	})
	c := newOIDCClient(t, s, provider.ClientSecretBasic("billing", harnessSecret),
		provider.DefaultRequest(provider.Request{Resources: []string{"https://invoices.example"}}))
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	expire := func() { ahead.Add(int64(6 * time.Minute)) }
	keys, err := verify.NewKeySet(c.JWKSURI(), verify.HTTPClient(s.Client(t)), verify.Clock(clock))
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys, verify.Issuer(s.Issuer), verify.Audience("https://invoices.example"), verify.Algorithms(jwa.RS256))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	issue := func(wantKID string) string {
		t.Helper()
		tok, err := c.Issue(ctx)
		if err != nil {
			t.Fatalf("Issue() error = %v", err)
		}
		if got := kidOf(t, tok.Token); got != wantKID {
			t.Fatalf("token signed with kid %q; want %q", got, wantKID)
		}
		return tok.Token
	}

	// The load: each token issued and verified at once, as a client and an
	// API would. A step of the rotation that must not fall between the two
	// holds step.
	var (
		step     sync.RWMutex
		verified sync.Map // kid -> *atomic.Int64, of the tokens verified
		refused  atomic.Int64
	)
	tick := make(chan struct{}, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop); <-done }) }
	t.Cleanup(stopLoad) // before the provider stops, if the test fails
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			step.RLock()
			tok, err := c.Issue(ctx)
			if err != nil {
				step.RUnlock()
				t.Errorf("the load: Issue() error = %v", err)
				return
			}
			_, err = v.Verify(ctx, tok.Token)
			step.RUnlock()
			if err != nil {
				refused.Add(1)
				t.Errorf("the load's token refused: %v", err)
				continue
			}
			n, _ := verified.LoadOrStore(kidOf(t, tok.Token), new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			select {
			case tick <- struct{}{}:
			default:
			}
		}
	}()
	// load waits until the load has verified a few more tokens.
	load := func(what string) {
		t.Helper()
		for range 3 {
			select {
			case <-tick:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: the load verified no token for 10s", what)
			}
		}
	}
	mustVerify := func(what, tok string) {
		t.Helper()
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("%s: Verify() error = %v; want the token accepted", what, err)
		}
	}

	old := issue("rs256")
	mustVerify("before the rotation", old) // and cached as verified
	oldUnseen := issue("rs256")            // never verified before the withdrawal
	load("before the rotation")

	// The new key is published; once the key set has fetched it, tokens
	// are signed with it.
	s.Rotate(t, "publish")
	expire()
	load("new key published")
	if !keys.HasKey("rs256-next") {
		t.Fatalf("the key set lacks the published key rs256-next after its refresh")
	}
	s.Rotate(t, "sign")
	next := issue("rs256-next")
	mustVerify("signed with the new key", next)
	mustVerify("signed with the new key, an old token", old)
	load("signed with the new key")

	// The old key is withdrawn, and the key set refreshed.
	step.Lock()
	s.Rotate(t, "withdraw")
	expire()
	step.Unlock()
	load("old key withdrawn")
	if keys.HasKey("rs256") {
		t.Fatalf("the key set still has the withdrawn key rs256 after its refresh")
	}
	for what, tok := range map[string]string{"cached as verified": old, "never verified": oldUnseen} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, verify.ErrUnknownKey) {
			t.Errorf("Verify(a token of the withdrawn key, %s) error = %v; want ErrUnknownKey", what, err)
		}
	}
	mustVerify("after the rotation", next)

	stopLoad()
	counts := map[string]int64{}
	verified.Range(func(kid, n any) bool {
		counts[kid.(string)] = n.(*atomic.Int64).Load()
		return true
	})
	if refused.Load() != 0 || counts["rs256"] < 3 || counts["rs256-next"] < 3 {
		t.Errorf("the load: %d tokens refused, verified by kid %v; want 0 refused, at least 3 of each key", refused.Load(), counts)
	}
	if st := keys.Stats(); st.Refreshes < 3 || st.RefreshErrors != 0 {
		t.Errorf("KeySet Stats() = %+v; want at least 3 refreshes (the first fetch and one after each step), no error", st)
	}
}
