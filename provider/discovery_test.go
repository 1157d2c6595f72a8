package provider_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

var basic = provider.ClientSecretBasic("billing", "s3cret")

func TestNew_Discovery(t *testing.T) {
	p := newIDP(t, true)
	p.set("token_endpoint_auth_methods_supported", []string{"client_secret_basic", "private_key_jwt"})
	p.set("token_endpoint_auth_signing_alg_values_supported", []string{"RS256", "ES256"})
	p.set("mtls_endpoint_aliases", map[string]string{"token_endpoint": p.srv.URL + "/mtls/token"})
	p.set("unknown_field", 42)
	c := p.client(t, basic)

	got := c.Metadata()
	want := provider.Metadata{
		Issuer:                            p.srv.URL,
		TokenEndpoint:                     p.srv.URL + "/token",
		JWKSURI:                           p.srv.URL + "/jwks",
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "private_key_jwt"},
		TokenEndpointAuthSigningAlgValuesSupported: []string{"RS256", "ES256"},
		MTLSEndpointAliases:                        map[string]string{"token_endpoint": p.srv.URL + "/mtls/token"},
	}
	if !equalMetadata(got, want) {
		t.Errorf("Metadata() = %+v; want %+v", got, want)
	}
	if got, want := c.JWKSURI(), p.srv.URL+"/jwks"; got != want {
		t.Errorf("JWKSURI() = %q; want %q", got, want)
	}
	if n := p.discoveries.Load(); n != 1 {
		t.Errorf("discovery requests = %d; want 1", n)
	}

	// Metadata returns a copy.
	got.TokenEndpointAuthMethodsSupported[0] = "changed"
	got.MTLSEndpointAliases["token_endpoint"] = "changed"
	if again := c.Metadata(); !equalMetadata(again, want) {
		t.Errorf("Metadata() after modifying a copy = %+v; want %+v", again, want)
	}

	// The metadata is not fetched per token.
	for range 3 {
		if _, err := c.Issue(t.Context()); err != nil {
			t.Fatalf("Issue() error = %v", err)
		}
	}
	if n := p.discoveries.Load(); n != 1 {
		t.Errorf("discovery requests after 3 Issue() = %d; want 1", n)
	}
}

func equalMetadata(a, b provider.Metadata) bool {
	return a.Issuer == b.Issuer && a.TokenEndpoint == b.TokenEndpoint && a.JWKSURI == b.JWKSURI &&
		slices.Equal(a.TokenEndpointAuthMethodsSupported, b.TokenEndpointAuthMethodsSupported) &&
		slices.Equal(a.TokenEndpointAuthSigningAlgValuesSupported, b.TokenEndpointAuthSigningAlgValuesSupported) &&
		len(a.MTLSEndpointAliases) == len(b.MTLSEndpointAliases) &&
		a.MTLSEndpointAliases["token_endpoint"] == b.MTLSEndpointAliases["token_endpoint"]
}

func TestNew_RFC8414Fallback(t *testing.T) {
	tests := []struct {
		name     string
		path     string // the issuer's path
		wellKown string // where RFC 8414 puts the metadata
	}{
		{"issuer with a path", "/tenant/a", "/.well-known/oauth-authorization-server/tenant/a"},
		{"issuer with a path and a trailing slash", "/tenant/a/", "/.well-known/oauth-authorization-server/tenant/a"},
		{"issuer without a path", "", "/.well-known/oauth-authorization-server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var paths []string
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				paths = append(paths, r.URL.Path)
				mu.Unlock()
				if r.URL.Path != tt.wellKown {
					http.NotFound(w, r)
					return
				}
				writeJSON(w, http.StatusOK, map[string]any{"issuer": srv.URL + tt.path, "token_endpoint": srv.URL + "/token"})
			}))
			defer srv.Close()

			c, err := provider.New(t.Context(), srv.URL+tt.path, basic, provider.HTTPClient(srv.Client()))
			if err != nil {
				t.Fatalf("New() error = %v", err)
			}
			if got, want := c.Metadata().TokenEndpoint, srv.URL+"/token"; got != want {
				t.Errorf("Metadata().TokenEndpoint = %q; want %q", got, want)
			}
			oidc := strings.TrimSuffix(tt.path, "/") + "/.well-known/openid-configuration"
			mu.Lock()
			defer mu.Unlock()
			if want := []string{oidc, tt.wellKown}; !slices.Equal(paths, want) {
				t.Errorf("paths requested = %q; want %q", paths, want)
			}
		})
	}
}

func TestNew_IssuerMismatch(t *testing.T) {
	tests := []struct {
		name             string
		configured, said func(base string) string
	}{
		{"configured with a trailing slash", func(b string) string { return b + "/" }, func(b string) string { return b }},
		{"document with a trailing slash", func(b string) string { return b }, func(b string) string { return b + "/" }},
		{"another host", func(b string) string { return b }, func(string) string { return "https://idp.example" }},
		{"another case", func(b string) string { return b + "/Realm" }, func(b string) string { return b + "/realm" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, true)
			issuer := tt.configured(p.srv.URL)
			// The document is served wherever the configured issuer puts it.
			p.intercept(func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
				writeJSON(w, http.StatusOK, map[string]any{"issuer": tt.said(p.srv.URL), "token_endpoint": p.srv.URL + "/token"})
			})
			_, err := provider.New(t.Context(), issuer, basic, provider.HTTPClient(p.srv.Client()))
			if !errors.Is(err, provider.ErrIssuerMismatch) {
				t.Fatalf("New() error = %v; want ErrIssuerMismatch", err)
			}
			for _, name := range []string{`"` + issuer + `"`, `"` + tt.said(p.srv.URL) + `"`} {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("New() error = %q; want it to name %s", err, name)
				}
			}
		})
	}
}

func TestNew_InsecureURL(t *testing.T) {
	tests := []struct {
		name   string
		issuer string
	}{
		{"http, a public host", "http://idp.example"},
		{"http, a private address", "http://10.0.0.1/realms/acme"},
		{"http, a name that starts with localhost", "http://localhost.example.com"},
		{"http, a name that starts with 127", "http://127.0.0.1.nip.io"},
		{"http, an address that is not loopback", "http://128.0.0.1"},
		{"another scheme", "ftp://idp.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &countingTransport{}
			_, err := provider.New(t.Context(), tt.issuer, basic, provider.HTTPClient(&http.Client{Transport: rt}))
			if !errors.Is(err, provider.ErrInsecureURL) {
				t.Errorf("New(%q) error = %v; want ErrInsecureURL", tt.issuer, err)
			}
			if n := rt.calls.Load(); n != 0 {
				t.Errorf("New(%q) made %d requests; want 0", tt.issuer, n)
			}
		})
	}
}

func TestNew_InsecureEndpoint(t *testing.T) {
	for _, field := range []string{"token_endpoint", "jwks_uri"} {
		t.Run(field, func(t *testing.T) {
			p := newIDP(t, false)
			p.set(field, "http://idp.example/"+field)
			_, err := provider.New(t.Context(), p.srv.URL, basic)
			if !errors.Is(err, provider.ErrInsecureURL) {
				t.Errorf("New() with %s on http error = %v; want ErrInsecureURL", field, err)
			}
		})
	}
}

func TestNew_LoopbackHTTP(t *testing.T) {
	for _, issuer := range []string{"http://localhost:9999", "http://LOCALHOST/realms/acme", "http://127.0.0.1:8080", "http://127.1.2.3", "http://[::1]:8080"} {
		t.Run(issuer, func(t *testing.T) {
			rt := &countingTransport{answer: func(r *http.Request) (int, string) {
				return http.StatusOK, `{"issuer":"` + issuer + `","token_endpoint":"` + issuer + `/token"}`
			}}
			if _, err := provider.New(t.Context(), issuer, basic, provider.HTTPClient(&http.Client{Transport: rt})); err != nil {
				t.Errorf("New(%q) error = %v; want nil", issuer, err)
			}
		})
	}
}

func TestNew_RedirectRefused(t *testing.T) {
	clients := map[string]func(*httptest.Server) *http.Client{
		"default client":                  func(*httptest.Server) *http.Client { return nil },
		"a client that follows redirects": func(*httptest.Server) *http.Client { return &http.Client{} },
	}
	for name, hc := range clients {
		t.Run(name, func(t *testing.T) {
			p := newIDP(t, false)
			var followed atomic.Bool
			p.intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				switch r.URL.Path {
				case "/.well-known/openid-configuration":
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
				case "/elsewhere":
					followed.Store(true)
					r.URL.Path = "/.well-known/openid-configuration"
					next.ServeHTTP(w, r)
				}
			})
			_, err := provider.New(t.Context(), p.srv.URL, basic, provider.HTTPClient(hc(p.srv)))
			if err == nil || !strings.Contains(err.Error(), "redirect") {
				t.Errorf("New() error = %v; want a redirect error", err)
			}
			if followed.Load() {
				t.Error("New() followed the redirect")
			}
		})
	}
}

func TestClient_TokenRedirectRefused(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, provider.ClientSecretPost("billing", "s3cret"))
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			http.Redirect(w, r, "/stolen", http.StatusTemporaryRedirect)
		}
	})
	_, err := c.Issue(t.Context())
	if err == nil || !strings.Contains(err.Error(), "HTTP 307") {
		t.Errorf("Issue() error = %v; want a redirect error", err)
	}
	for _, r := range p.got() {
		if r.path == "/stolen" {
			t.Error("Issue() followed the redirect with the client's credentials")
		}
	}
}

func TestNew_OversizedDocument(t *testing.T) {
	p := newIDP(t, false)
	p.set("padding", strings.Repeat("x", 1<<20))
	_, err := provider.New(t.Context(), p.srv.URL, basic)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("New() with a 1 MiB document error = %v; want larger than ...", err)
	}
}

func TestNew_MissingTokenEndpoint(t *testing.T) {
	p := newIDP(t, false)
	p.set("token_endpoint", nil)
	_, err := provider.New(t.Context(), p.srv.URL, basic)
	if err == nil || !strings.Contains(err.Error(), "token_endpoint") {
		t.Errorf("New() error = %v; want no token_endpoint", err)
	}
}

func TestNew_AuthMethod(t *testing.T) {
	tests := []struct {
		name    string
		methods any // token_endpoint_auth_methods_supported; nil: absent
		auth    provider.ClientAuth
		wantErr error
	}{
		{"listed", []string{"client_secret_basic"}, basic, nil},
		{"not listed", []string{"private_key_jwt", "client_secret_post"}, basic, provider.ErrAuthMethod},
		{"none listed", []string{}, basic, provider.ErrAuthMethod},
		{"list absent: any method", nil, provider.ClientSecretPost("billing", "s3cret"), nil},
		{"post not listed", []string{"client_secret_basic"}, provider.ClientSecretPost("billing", "s3cret"), provider.ErrAuthMethod},
		{"private_key_jwt not listed", []string{"client_secret_basic"}, provider.PrivateKeyJWT("billing", p256Key()), provider.ErrAuthMethod},
		{"client_secret_jwt not listed", []string{"private_key_jwt"}, provider.ClientSecretJWT("billing", []byte("a-client-secret-of-at-least-32-bytes")), provider.ErrAuthMethod},
		{"an assertion is private_key_jwt", []string{"private_key_jwt"}, provider.ClientAssertionFile("billing", "/nonexistent"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, false)
			p.set("token_endpoint_auth_methods_supported", tt.methods)
			_, err := provider.New(t.Context(), p.srv.URL, tt.auth)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("New() error = %v; want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "client_secret") && !strings.Contains(err.Error(), "private_key_jwt") {
				t.Errorf("New() error = %q; want it to name the method", err)
			}
		})
	}
}

func TestNew_Errors(t *testing.T) {
	p := newIDP(t, false)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>"))
	}))
	defer notJSON.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	missing := httptest.NewServer(http.NotFoundHandler())
	defer missing.Close()

	tests := []struct {
		name    string
		issuer  string
		auth    provider.ClientAuth
		wantErr string
	}{
		{"no auth", p.srv.URL, nil, "no client authentication"},
		{"issuer with a query", p.srv.URL + "?realm=acme", basic, "query"},
		{"issuer with a fragment", p.srv.URL + "#acme", basic, "fragment"},
		{"relative issuer", "/realms/acme", basic, "not an absolute URL"},
		{"empty client id", p.srv.URL, provider.ClientSecretBasic("", "s3cret"), "empty client id"},
		{"empty secret", p.srv.URL, provider.ClientSecretPost("billing", ""), "empty client secret"},
		{"not JSON", notJSON.URL, basic, "not a metadata document"},
		{"discovery failing", failing.URL, basic, "HTTP 503"},
		{"no metadata at either URL", missing.URL, basic, "/.well-known/oauth-authorization-server (HTTP 404)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := provider.New(t.Context(), tt.issuer, tt.auth)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v; want %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "provider: ") {
				t.Errorf("New() error = %q; want the prefix provider: ", err)
			}
		})
	}
}

func TestNewFromTokenURL(t *testing.T) {
	p := newIDP(t, false)
	c, err := provider.NewFromTokenURL(p.srv.URL+"/token", provider.ClientSecretPost("billing", "s3cret"))
	if err != nil {
		t.Fatalf("NewFromTokenURL() error = %v", err)
	}
	iss, err := c.Issue(t.Context())
	if err != nil {
		t.Fatalf("Issue() error = %v", err)
	}
	if iss.Token != "token-1" {
		t.Errorf("Issue().Token = %q; want token-1", iss.Token)
	}
	if n := p.discoveries.Load(); n != 0 {
		t.Errorf("discovery requests = %d; want 0", n)
	}
	if got := c.JWKSURI(); got != "" {
		t.Errorf("JWKSURI() = %q; want empty", got)
	}

	if _, err := provider.NewFromTokenURL("http://idp.example/token", basic); !errors.Is(err, provider.ErrInsecureURL) {
		t.Errorf("NewFromTokenURL(http://idp.example/token) error = %v; want ErrInsecureURL", err)
	}
	if _, err := provider.NewFromTokenURL(p.srv.URL+"/token", provider.PrivateKeyJWT("billing", p256Key(), provider.AudienceIssuer())); err == nil {
		t.Error("NewFromTokenURL() with AudienceIssuer error = nil; want an error: there is no issuer")
	}
}

// TestClient_MetadataRefresh: past the TTL, a token request starts a refresh
// in the background and goes on with the metadata it has; the next uses the
// new. A refresh that fails keeps the old metadata and backs off, from a
// second, as a Cache does.
func TestClient_MetadataRefresh(t *testing.T) {
	p := newIDP(t, false)
	clk := newClock()
	c := p.client(t, basic, provider.MetadataTTL(time.Hour), provider.Clock(clk.Now))
	issue := func() string {
		t.Helper()
		if _, err := c.Issue(t.Context()); err != nil {
			t.Fatalf("Issue() error = %v", err)
		}
		return p.last(t).path
	}
	// settle waits for the background refresh to have asked the provider
	// n times in all, and to have published what it found.
	settle := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); p.discoveries.Load() < n || !provider.DiscoveryIdle(c); {
			if time.Now().After(deadline) {
				t.Fatalf("discovery requests = %d; want %d", p.discoveries.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	steps := []struct {
		name            string
		advance         time.Duration
		change          func()
		wantDiscoveries int32
		wantPaths       [2]string // of the token request that finds the state, and of the next
	}{
		{"within the TTL: not fetched", 59 * time.Minute, func() { p.set("token_endpoint", p.srv.URL+"/token2") }, 1, [2]string{"/token", "/token"}},
		{"past the TTL: fetched again in the background", 2 * time.Minute, nil, 2, [2]string{"/token", "/token2"}},
		{"a failed refresh keeps the old document", time.Hour + time.Second, func() { p.set("issuer", "https://elsewhere.example") }, 3, [2]string{"/token2", "/token2"}},
		{"not tried again within the backoff", 500 * time.Millisecond, nil, 3, [2]string{"/token2", "/token2"}},
		{"tried again after it", 2 * time.Second, func() { p.set("issuer", p.srv.URL); p.set("token_endpoint", p.srv.URL+"/token3") }, 4, [2]string{"/token2", "/token3"}},
		{"then the TTL again", 59 * time.Minute, nil, 4, [2]string{"/token3", "/token3"}},
	}
	for _, s := range steps {
		if s.change != nil {
			s.change()
		}
		clk.Advance(s.advance)
		if got := issue(); got != s.wantPaths[0] {
			t.Errorf("%s: token request to %s; want %s", s.name, got, s.wantPaths[0])
		}
		settle(s.wantDiscoveries)
		// The refresh has asked; its outcome is published before the flight
		// ends, which the next request's wait, if any, joins.
		for deadline := time.Now().Add(10 * time.Second); ; {
			got := issue()
			if got == s.wantPaths[1] || time.Now().After(deadline) {
				if got != s.wantPaths[1] {
					t.Errorf("%s: next token request to %s; want %s", s.name, got, s.wantPaths[1])
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
		if n := p.discoveries.Load(); n != s.wantDiscoveries {
			t.Errorf("%s: discovery requests = %d; want %d", s.name, n, s.wantDiscoveries)
		}
	}
}

func TestClient_MetadataRefreshOneAtATime(t *testing.T) {
	p := newIDP(t, false)
	clk := newClock()
	c := p.client(t, basic, provider.Clock(clk.Now))
	clk.Advance(25 * time.Hour)
	const callers = 8
	entered, release := make(chan struct{}, callers), make(chan struct{})
	issued := make(chan struct{}, callers)
	p.intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodGet {
			entered <- struct{}{}
			<-release
		}
		next.ServeHTTP(w, r)
		if r.Method == http.MethodPost {
			issued <- struct{}{}
		}
	})

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, err := c.Issue(t.Context())
			errs <- err
		})
	}
	timeout := time.After(10 * time.Second) // a guard against a hang, not a wait
	select {
	case <-entered:
	case <-timeout:
		t.Fatal("no refresh started")
	}
	// Every caller but the refreshing one gets its token with the old
	// metadata while the refresh is held; a second refresh would be held too,
	// and its caller would not.
	for i := range callers - 1 {
		select {
		case <-issued:
		case <-timeout:
			close(release)
			t.Fatalf("%d of %d callers got a token while the refresh was held; want %d", i, callers, callers-1)
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Issue() error = %v", err)
		}
	}
	// The refresh runs in the background: once it has ended, it was one.
	testkit.Eventually(t, "the refresh to end", func() bool { return provider.DiscoveryIdle(c) })
	if n := p.discoveries.Load(); n != 2 {
		t.Errorf("discovery requests = %d; want 2 (New, and one refresh)", n)
	}
}

// TestDiscover: the metadata of a provider, for the verifying side, with the
// checks of New but those that concern a client: a document without a token
// endpoint is accepted.
func TestDiscover(t *testing.T) {
	p := newIDP(t, true)
	hc := provider.HTTPClient(p.srv.Client())
	m, err := provider.Discover(t.Context(), p.srv.URL, hc)
	if err != nil {
		t.Fatalf("Discover() error = %v", err)
	}
	if got, want := m.JWKSURI, p.srv.URL+"/jwks"; got != want || m.Issuer != p.srv.URL {
		t.Errorf("Discover() = %+v; want issuer %q, jwks_uri %q", m, p.srv.URL, want)
	}

	p.set("token_endpoint", nil)
	if m, err := provider.Discover(t.Context(), p.srv.URL, hc); err != nil || m.TokenEndpoint != "" {
		t.Errorf("Discover() without token_endpoint = %+v, %v; want the metadata", m, err)
	}
	p.set("jwks_uri", "http://idp.example/jwks")
	if _, err := provider.Discover(t.Context(), p.srv.URL, hc); !errors.Is(err, provider.ErrInsecureURL) {
		t.Errorf("Discover() with jwks_uri on http error = %v; want ErrInsecureURL", err)
	}
	if _, err := provider.Discover(t.Context(), p.srv.URL+"/", hc); !errors.Is(err, provider.ErrIssuerMismatch) {
		t.Errorf("Discover(issuer + /) error = %v; want ErrIssuerMismatch", err)
	}
	rt := &countingTransport{}
	if _, err := provider.Discover(t.Context(), "http://idp.example", provider.HTTPClient(&http.Client{Transport: rt})); !errors.Is(err, provider.ErrInsecureURL) || rt.calls.Load() != 0 {
		t.Errorf("Discover(http://idp.example) error = %v, %d requests; want ErrInsecureURL, none", err, rt.calls.Load())
	}
}
