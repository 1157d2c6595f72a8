package provider_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// certFunc returns a certificate function that returns cert, counting its
// calls in n if n is not nil.
func certFunc(cert *tls.Certificate, n *atomic.Int32) func() (*tls.Certificate, error) {
	return func() (*tls.Certificate, error) {
		if n != nil {
			n.Add(1)
		}
		return cert, nil
	}
}

func TestTLSClientAuth(t *testing.T) {
	pki := newPKI()
	issued := pki.client("billing", time.Now().Add(time.Hour))
	self := selfSignedClient("billing")
	tests := []struct {
		name        string
		auth        func(string, func() (*tls.Certificate, error)) provider.ClientAuth
		method      string
		cert        *tls.Certificate
		main, alias tls.ClientAuthType // what the token endpoint and its alias ask for
		noAlias     bool               // the document lists no mtls_endpoint_aliases
		wantPath    string
	}{
		{"tls_client_auth, on the alias", provider.TLSClientAuth, "tls_client_auth", issued,
			tls.NoClientCert, tls.RequireAndVerifyClientCert, false, "/mtls/token"},
		{"self_signed_tls_client_auth, on the alias", provider.SelfSignedTLSClientAuth, "self_signed_tls_client_auth", self,
			tls.NoClientCert, tls.RequireAnyClientCert, false, "/mtls/token"},
		{"tls_client_auth, no alias: the token endpoint", provider.TLSClientAuth, "tls_client_auth", issued,
			tls.VerifyClientCertIfGiven, tls.NoClientCert, true, "/token"},
		{"self_signed_tls_client_auth, no alias: the token endpoint", provider.SelfSignedTLSClientAuth, "self_signed_tls_client_auth", self,
			tls.RequestClientCert, tls.NoClientCert, true, "/token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newMTLSIDP(t, pki, tt.main, tt.alias)
			if tt.noAlias {
				p.set("mtls_endpoint_aliases", nil)
			}
			p.set("token_endpoint_auth_methods_supported", []string{"private_key_jwt", tt.method})
			var calls atomic.Int32
			c := p.client(t, tt.auth("svc:billing", certFunc(tt.cert, &calls)))
			const requests = 2
			for i := range requests {
				if _, err := c.Issue(t.Context()); err != nil {
					t.Fatalf("Issue() #%d error = %v", i+1, err)
				}
				r := p.last(t)
				if r.path != tt.wantPath {
					t.Errorf("token request path = %q; want %q", r.path, tt.wantPath)
				}
				if r.peer == nil || !r.peer.Equal(tt.cert.Leaf) {
					t.Errorf("client certificate presented = %v; want the one the function returned", subjectOf(r.peer))
				}
				if got := r.form.Get("client_id"); got != "svc:billing" {
					t.Errorf("client_id = %q; want svc:billing", got)
				}
				if got := r.form.Get("grant_type"); got != "client_credentials" {
					t.Errorf("grant_type = %q; want client_credentials", got)
				}
				for _, k := range []string{"client_secret", "client_assertion", "client_assertion_type"} {
					if r.form.Has(k) {
						t.Errorf("form has %s; want only client_id beside the certificate", k)
					}
				}
				if h := r.header.Get("Authorization"); h != "" {
					t.Errorf("Authorization = %q; want none", h)
				}
			}
			if n := calls.Load(); n != 2*requests {
				t.Errorf("certificate function calls = %d; want %d, two per token request (one to present, one to check for a rotation)", n, 2*requests)
			}
		})
	}
}

func subjectOf(c *x509.Certificate) string {
	if c == nil {
		return "none"
	}
	return c.Subject.String()
}

func TestTLSClientAuth_NewFromTokenURL(t *testing.T) {
	pki := newPKI()
	cert := pki.client("billing", time.Now().Add(time.Hour))
	p := newMTLSIDP(t, pki, tls.RequireAndVerifyClientCert, tls.NoClientCert)
	c, err := provider.NewFromTokenURL(p.srv.URL+"/token", provider.TLSClientAuth("billing", certFunc(cert, nil)), provider.HTTPClient(p.hc))
	if err != nil {
		t.Fatalf("NewFromTokenURL() error = %v", err)
	}
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	if r := p.last(t); r.peer == nil || !r.peer.Equal(cert.Leaf) || r.form.Get("client_id") != "billing" {
		t.Errorf("token request with certificate %s, client_id %q; want the client's and billing", subjectOf(r.peer), r.form.Get("client_id"))
	}
}

// boundTokens answers a token request with a JWT access token bound to the
// client certificate presented (cnf x5t#S256, RFC 8705, section 3.1), which
// lives an hour.
func boundTokens(iss *jwtcachetest.Issuer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		tok := iss.Mint(time.Now(), time.Hour, map[string]any{"cnf": map[string]any{"x5t#S256": thumbprint(r.TLS.PeerCertificates[0])}})
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}
}

// boundTo returns the x5t#S256 of a JWT's cnf claim.
func boundTo(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Cnf map[string]string `json:"cnf"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Cnf["x5t#S256"]
}

// TestTLSClientAuth_Rotation follows the contract of Rotated for each kind of
// cache: a token bound to certificate A is served until the rotation to B is
// signalled, and never after; the next token request presents B.
func TestTLSClientAuth_Rotation(t *testing.T) {
	pki := newPKI()
	a := pki.client("billing", time.Now().Add(time.Hour))
	b := pki.client("billing", time.Now().Add(2*time.Hour))
	// Each kind of cache fed by c: how to get its token, and how to signal
	// the rotation to it.
	type holder struct {
		get     func(ctx context.Context) (string, error)
		rotated func()
	}
	tests := []struct {
		name string
		make func(c *provider.Client) holder
	}{
		{"Cache", func(c *provider.Client) holder {
			cache := jwtcache.NewCache(jwtcache.IssueFunction(c.Issue), jwtcache.Logger(nil))
			return holder{cache.EnsureToken, func() { provider.Rotated(cache) }}
		}},
		{"CacheMap", func(c *provider.Client) holder {
			m := jwtcache.NewCacheMap(jwtcache.MapIssueFunction(c.IssueKey), jwtcache.Logger(nil))
			key := provider.Request{Audience: []string{"orders"}}.Key()
			return holder{func(ctx context.Context) (string, error) { return m.EnsureToken(ctx, key) }, func() { provider.Rotated(m) }}
		}},
		{"Exchanger", func(c *provider.Client) holder {
			x := provider.NewExchanger(c, provider.Request{Audience: []string{"orders"}}, jwtcache.Logger(nil))
			return holder{func(ctx context.Context) (string, error) { return x.EnsureToken(ctx, "the-caller's-token") }, func() { provider.Rotated(x) }}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newMTLSIDP(t, pki, tls.NoClientCert, tls.RequireAndVerifyClientCert)
			p.answer(boundTokens(jwtcachetest.NewIssuer()))
			var cur atomic.Pointer[tls.Certificate]
			cur.Store(a)
			c := p.client(t, provider.TLSClientAuth("billing", func() (*tls.Certificate, error) { return cur.Load(), nil }))
			h := tt.make(c)

			tokA, err := h.get(t.Context())
			if err != nil {
				t.Fatalf("token with certificate A: error = %v", err)
			}
			if got := boundTo(t, tokA); got != thumbprint(a.Leaf) {
				t.Fatalf("first token bound to %q; want A, %q", got, thumbprint(a.Leaf))
			}

			cur.Store(b)
			// A hit does no work: until the rotation is signalled, the
			// cache serves what it holds.
			if got, err := h.get(t.Context()); got != tokA || err != nil {
				t.Errorf("token after the certificate changed, before Rotated = %.20q..., %v; want the cached token", got, err)
			}

			h.rotated()
			tokB, err := h.get(t.Context())
			if err != nil {
				t.Fatalf("token after Rotated: error = %v", err)
			}
			if tokB == tokA {
				t.Fatal("token after Rotated = the token bound to A; want a new one")
			}
			if got := boundTo(t, tokB); got != thumbprint(b.Leaf) {
				t.Errorf("token after Rotated bound to %q; want B, %q", got, thumbprint(b.Leaf))
			}
			if r := p.last(t); r.peer == nil || !r.peer.Equal(b.Leaf) {
				t.Errorf("token request after Rotated presented %s; want B", subjectOf(r.peer))
			}
			if got, err := h.get(t.Context()); got != tokB || err != nil {
				t.Errorf("token again = %.20q..., %v; want the token bound to B, cached", got, err)
			}
			if n := len(p.got()); n != 2 {
				t.Errorf("token requests = %d; want 2", n)
			}
		})
	}
}

// TestTLSClientAuth_RotationDuringRequest rotates the certificate while the
// first token request of an empty cache is under way: the client finds the
// certificate changed when the response arrives, and asks again with the new
// one, and the cache, invalidated meanwhile, does not cache even that: it
// never holds a token bound to the old certificate.
func TestTLSClientAuth_RotationDuringRequest(t *testing.T) {
	pki := newPKI()
	a := pki.client("billing", time.Now().Add(time.Hour))
	b := pki.client("billing", time.Now().Add(2*time.Hour))
	p := newMTLSIDP(t, pki, tls.NoClientCert, tls.RequireAndVerifyClientCert)
	received, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the servers close
	var first atomic.Bool
	bound := boundTokens(jwtcachetest.NewIssuer())
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		if first.CompareAndSwap(false, true) {
			close(received)
			<-release
		}
		bound(w, r)
	})
	var cur atomic.Pointer[tls.Certificate]
	cur.Store(a)
	c := p.client(t, provider.TLSClientAuth("billing", func() (*tls.Certificate, error) { return cur.Load(), nil }))
	cache := jwtcache.NewCache(jwtcache.IssueFunction(c.Issue), jwtcache.Logger(nil))

	type result struct {
		tok string
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cache.EnsureToken(t.Context())
		done <- result{tok, err}
	}()
	<-received
	cur.Store(b)
	provider.Rotated(cache)
	releaseOnce.Do(func() { close(release) })
	r := <-done
	if r.err != nil {
		t.Fatalf("EnsureToken() error = %v", r.err)
	}
	if got := boundTo(t, r.tok); got != thumbprint(b.Leaf) {
		t.Errorf("token bound to %q; want B, %q", got, thumbprint(b.Leaf))
	}
	// The fetch was under way when Rotated invalidated the cache: its token
	// serves its caller but is not cached, so the next call fetches again,
	// with B.
	next, err := cache.EnsureToken(t.Context())
	if err != nil || boundTo(t, next) != thumbprint(b.Leaf) {
		t.Fatalf("EnsureToken() again = %v, bound to B: %v; want a token bound to B", err, err == nil && boundTo(t, next) == thumbprint(b.Leaf))
	}
	reqs := p.got()
	if len(reqs) != 3 || !reqs[0].peer.Equal(a.Leaf) || !reqs[1].peer.Equal(b.Leaf) || !reqs[2].peer.Equal(b.Leaf) {
		t.Fatalf("token requests = %d; want 3, with A, then B twice", len(reqs))
	}
	if got, err := cache.EnsureToken(t.Context()); got != next || err != nil {
		t.Errorf("EnsureToken() a third time = %.20q..., %v; want the token bound to B, cached", got, err)
	}
}

func TestTLSClientAuth_Lifetime(t *testing.T) {
	pki := newPKI()
	clk := jwtcachetest.NewClock(time.Now())
	cert := pki.client("billing", clk.Now().Add(30*time.Minute))
	other := pki.client("billing", clk.Now().Add(time.Hour))
	left := cert.Leaf.NotAfter.Sub(clk.Now()) // NotAfter is in whole seconds
	iss := jwtcachetest.NewIssuer()
	jwt := func(x5t string) string {
		claims := map[string]any{}
		if x5t != "" {
			claims["cnf"] = map[string]any{"x5t#S256": x5t}
		}
		return iss.Mint(clk.Now(), time.Hour, claims)
	}
	tests := []struct {
		name    string
		resp    map[string]any
		want    time.Duration
		wantErr string
	}{
		{"expires_in past the certificate's NotAfter: capped", map[string]any{"access_token": "opaque", "expires_in": 3600}, left, ""},
		{"expires_in before NotAfter: kept", map[string]any{"access_token": "opaque", "expires_in": 600}, 10 * time.Minute, ""},
		{"a JWT without expires_in: capped", map[string]any{"access_token": jwt("")}, left, ""},
		{"an opaque token without expires_in: no lifetime", map[string]any{"access_token": "opaque"}, 0, ""},
		{"bound to the certificate presented", map[string]any{"access_token": jwt(thumbprint(cert.Leaf)), "expires_in": 600}, 10 * time.Minute, ""},
		{"bound to another certificate", map[string]any{"access_token": jwt(thumbprint(other.Leaf)), "expires_in": 600}, 0,
			"provider: token response: the token is bound (cnf x5t#S256) to a certificate other than the one presented"},
	}
	p := newMTLSIDP(t, pki, tls.NoClientCert, tls.RequireAndVerifyClientCert)
	c := p.client(t, provider.TLSClientAuth("billing", certFunc(cert, nil)), provider.Clock(clk.Now))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.resp["token_type"] = "Bearer"
			p.answer(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, tt.resp) })
			got, err := c.Issue(t.Context())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Issue() error = %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue() error = %v", err)
			}
			if got.ExpiresIn != tt.want {
				t.Errorf("Issue().ExpiresIn = %v; want %v", got.ExpiresIn, tt.want)
			}
		})
	}
}

// TestTLSClientAuth_Refused has the provider refuse the certificate, or not
// ask for one: each error says what happened, and carries no key material.
func TestTLSClientAuth_Refused(t *testing.T) {
	pki := newPKI()
	stranger := newPKI().client("billing", time.Now().Add(time.Hour)) // from a CA the provider does not trust
	tests := []struct {
		name        string
		main, alias tls.ClientAuthType
		noAlias     bool
		answer      http.HandlerFunc
		want        []string
		wantOAuth   bool // a *provider.Error
	}{
		{"the handshake refuses the certificate", tls.NoClientCert, tls.RequireAndVerifyClientCert, false, nil,
			[]string{"provider: token request over mutual TLS: ", "/mtls/token", "tls: "}, false},
		{"the token endpoint does not ask for a certificate", tls.NoClientCert, tls.NoClientCert, true,
			respond(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"no client certificate"}`),
			[]string{"provider: token request: invalid_client (HTTP 401): no client certificate (the token endpoint asked for no client certificate, so none was sent)"}, true},
		{"the provider refuses the certificate", tls.NoClientCert, tls.RequireAnyClientCert, false,
			respond(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"unknown certificate"}`),
			[]string{"provider: token request: invalid_client (HTTP 401): unknown certificate"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newMTLSIDP(t, pki, tt.main, tt.alias)
			if tt.noAlias {
				p.set("mtls_endpoint_aliases", nil)
			}
			p.answer(tt.answer)
			c := p.client(t, provider.TLSClientAuth("billing", certFunc(stranger, nil)))
			_, err := c.Issue(t.Context())
			if err == nil {
				t.Fatal("Issue() error = nil; want one")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Issue() error = %q; want it to contain %q", err, w)
				}
			}
			var e *provider.Error
			if errors.As(err, &e) != tt.wantOAuth {
				t.Errorf("Issue() error is a *provider.Error: %v; want %v", !tt.wantOAuth, tt.wantOAuth)
			}
			checkNoKeyMaterial(t, err, stranger)
		})
	}
}

// checkNoKeyMaterial fails t if err shows cert's private key or its
// encoding, in PEM or base64.
func checkNoKeyMaterial(t *testing.T, err error, cert *tls.Certificate) {
	t.Helper()
	der, mErr := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if mErr != nil {
		t.Fatal(mErr)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for _, s := range []string{pemKey, base64.StdEncoding.EncodeToString(der), base64.StdEncoding.EncodeToString(der)[:32], string(der)} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error = %q; it shows the private key", err)
		}
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error = %q; it shows a PEM key", err)
	}
}

func TestTLSClientAuth_CertificateErrors(t *testing.T) {
	pki := newPKI()
	good := pki.client("billing", time.Now().Add(time.Hour))
	expired := pki.client("billing", time.Now().Add(-time.Minute))
	tests := []struct {
		name string
		cert func() (*tls.Certificate, error)
		want string
	}{
		{"the function fails", func() (*tls.Certificate, error) { return nil, errors.New("vault sealed") },
			"provider: client authentication (tls_client_auth): client certificate: vault sealed"},
		{"none", certFunc(nil, nil), "provider: client authentication (tls_client_auth): client certificate: the certificate function returned none"},
		{"no certificate", certFunc(&tls.Certificate{PrivateKey: good.PrivateKey}, nil), "holds no certificate"},
		{"no private key", certFunc(&tls.Certificate{Certificate: good.Certificate}, nil), "has no private key"},
		{"not DER", certFunc(&tls.Certificate{Certificate: [][]byte{[]byte("junk")}, PrivateKey: good.PrivateKey}, nil), "client certificate: x509: "},
		{"expired", certFunc(expired, nil), "client certificate: it expired at " + expired.Leaf.NotAfter.UTC().Format(time.RFC3339)},
	}
	p := newMTLSIDP(t, pki, tls.NoClientCert, tls.RequireAndVerifyClientCert)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := p.client(t, provider.TLSClientAuth("billing", tt.cert))
			_, err := c.Issue(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Issue() error = %v; want %q", err, tt.want)
			}
			if err != nil {
				checkNoKeyMaterial(t, err, good)
			}
			if n := len(p.got()); n != 0 {
				t.Errorf("token requests = %d; want none", n)
			}
		})
	}
}

// roundTripper is an http.RoundTripper that is no *http.Transport, as a
// tracing wrapper is.
type roundTripper struct{ http.RoundTripper }

func TestTLSClientAuth_NewErrors(t *testing.T) {
	pki := newPKI()
	cert := certFunc(pki.client("billing", time.Now().Add(time.Hour)), nil)
	tests := []struct {
		name    string
		auth    provider.ClientAuth
		doc     map[string]any
		hc      func(p *idp) *http.Client
		wantErr error
		want    string
	}{
		{"empty client id", provider.TLSClientAuth("", cert), nil, nil, nil, "provider: tls_client_auth: empty client id"},
		{"no certificate function", provider.SelfSignedTLSClientAuth("billing", nil), nil, nil, nil, "provider: self_signed_tls_client_auth: no certificate function"},
		{"method not listed", provider.TLSClientAuth("billing", cert), map[string]any{"token_endpoint_auth_methods_supported": []string{"private_key_jwt"}}, nil,
			provider.ErrAuthMethod, "tls_client_auth (it supports private_key_jwt)"},
		{"an insecure alias", provider.TLSClientAuth("billing", cert), map[string]any{"mtls_endpoint_aliases": map[string]string{"token_endpoint": "http://idp.example/token"}}, nil,
			provider.ErrInsecureURL, "mtls_endpoint_aliases token_endpoint"},
		{"a transport that is no *http.Transport", provider.TLSClientAuth("billing", cert), nil,
			func(p *idp) *http.Client { return &http.Client{Transport: roundTripper{p.hc.Transport}} },
			nil, "provider: mutual TLS: the HTTP client's transport is a provider_test.roundTripper, not an *http.Transport"},
		{"a transport that dials TLS itself", provider.TLSClientAuth("billing", cert), nil,
			func(p *idp) *http.Client {
				return &http.Client{Transport: &http.Transport{DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
					return nil, errors.New("unused")
				}}}
			},
			nil, "dials TLS itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newMTLSIDP(t, pki, tls.NoClientCert, tls.RequireAndVerifyClientCert)
			for k, v := range tt.doc {
				p.set(k, v)
			}
			hc := p.hc
			if tt.hc != nil {
				hc = tt.hc(p)
			}
			_, err := provider.New(t.Context(), p.srv.URL, tt.auth, provider.HTTPClient(hc))
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v; want %v, %q", err, tt.wantErr, tt.want)
			}
		})
	}
}
