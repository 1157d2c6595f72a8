package discovery

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestWellKnownURLs(t *testing.T) {
	tests := []struct {
		issuer, oidc, rfc8414 string
	}{
		{"https://idp.example", "https://idp.example/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server"},
		{"https://idp.example/", "https://idp.example/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server"},
		{"https://idp.example/tenant/a", "https://idp.example/tenant/a/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server/tenant/a"},
		{"https://idp.example/tenant/a/", "https://idp.example/tenant/a/.well-known/openid-configuration", "https://idp.example/.well-known/oauth-authorization-server/tenant/a"},
		{"https://idp.example:8443/t%2Fx", "https://idp.example:8443/t%2Fx/.well-known/openid-configuration", "https://idp.example:8443/.well-known/oauth-authorization-server/t%2Fx"},
	}
	for _, tt := range tests {
		if got := openIDConfiguration(tt.issuer); got != tt.oidc {
			t.Errorf("openIDConfiguration(%q) = %q; want %q", tt.issuer, got, tt.oidc)
		}
		if got := authorizationServerMetadata(tt.issuer); got != tt.rfc8414 {
			t.Errorf("authorizationServerMetadata(%q) = %q; want %q", tt.issuer, got, tt.rfc8414)
		}
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		raw      string
		wantErr  string // "" for accepted
		insecure bool   // the error wraps ErrInsecureURL
	}{
		{"https://idp.example/realms/acme", "", false},
		{"http://localhost:9999", "", false},
		{"http://LOCALHOST/realms/acme", "", false},
		{"http://127.1.2.3", "", false},
		{"http://[::1]:8080", "", false},
		{"http://idp.example", "not an https URL", true},
		{"http://10.0.0.1/realms/acme", "not an https URL", true},
		{"http://localhost.example.com", "not an https URL", true},
		{"http://127.0.0.1.nip.io", "not an https URL", true},
		{"http://128.0.0.1", "not an https URL", true},
		{"ftp://idp.example", "not an https URL", true},
		{"/realms/acme", "not an absolute URL", false},
		{"https:opaque", "not an absolute URL", false},
		{"https://idp.example#acme", "has a fragment", false},
		{"https://idp.example/#", "has a fragment", false},
		{"https://idp.example/%zz", "invalid URL escape", false},
	}
	for _, tt := range tests {
		err := CheckURL("issuer", tt.raw)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("CheckURL(%q) = %v; want nil", tt.raw, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "provider: ") {
			t.Errorf("CheckURL(%q) = %v; want provider: ... %s", tt.raw, err, tt.wantErr)
		}
		if errors.Is(err, ErrInsecureURL) != tt.insecure {
			t.Errorf("CheckURL(%q) = %v; errors.Is ErrInsecureURL = %v, want %v", tt.raw, err, !tt.insecure, tt.insecure)
		}
	}
}

func TestCheckIssuer(t *testing.T) {
	for raw, wantErr := range map[string]string{
		"https://idp.example/realms/acme": "",
		"https://idp.example?realm=acme":  "query",
		"https://idp.example?":            "query",
		"https://user@idp.example":        "user information",
		"https://idp.example#x":           "fragment",
		"http://idp.example":              "not an https URL",
	} {
		err := CheckIssuer(raw)
		if (err == nil) != (wantErr == "") || err != nil && !strings.Contains(err.Error(), wantErr) {
			t.Errorf("CheckIssuer(%q) = %v; want %q", raw, err, wantErr)
		}
	}
}

func TestEndpoints_Check(t *testing.T) {
	const iss = "https://idp.example"
	tests := []struct {
		name      string
		e         Endpoints
		needToken bool
		wantErr   string
		is        error
	}{
		{"all there", Endpoints{iss, iss + "/token", iss + "/jwks"}, true, "", nil},
		{"no token endpoint, not needed", Endpoints{iss, "", iss + "/jwks"}, false, "", nil},
		{"no jwks_uri", Endpoints{iss, iss + "/token", ""}, true, "", nil},
		{"no token endpoint, needed", Endpoints{iss, "", iss + "/jwks"}, true, "no token_endpoint", nil},
		{"issuer with a trailing slash", Endpoints{iss + "/", iss + "/token", ""}, false, `says "https://idp.example/"; configured "https://idp.example"`, ErrIssuerMismatch},
		{"another case", Endpoints{"https://IDP.example", "", ""}, false, "issuer mismatch", ErrIssuerMismatch},
		{"insecure token endpoint", Endpoints{iss, "http://idp.example/token", ""}, false, "token_endpoint", ErrInsecureURL},
		{"insecure jwks_uri", Endpoints{iss, "", "http://idp.example/jwks"}, false, "jwks_uri", ErrInsecureURL},
		{"a long issuer is cut short", Endpoints{iss + "/" + strings.Repeat("é", 300), "", ""}, false, "...", ErrIssuerMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.e.Check(iss, tt.needToken)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check() = %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Check() = %v; want %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Check() = %v; want it to wrap %v", err, tt.is)
			}
			if len(err.Error()) > 400 {
				t.Errorf("Check() error has %d bytes; want a provider's string cut short", len(err.Error()))
			}
		})
	}
}

// server is a provider's metadata server on 127.0.0.1 (plain http, which a
// loopback host may use), answering each path with its handler, recording
// the paths asked for.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newServer(t *testing.T, routes map[string]http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		if h, ok := routes[r.URL.Path]; ok {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.paths)
}

// document answers the JSON of doc, with issuer's placeholder "ISSUER"
// replaced by the server's URL plus the path given.
func document(s **server, path string, doc map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		b, _ := json.Marshal(doc)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(strings.ReplaceAll(string(b), "ISSUER", (*s).URL+path)))
	}
}

func TestFetch_WellKnownOrder(t *testing.T) {
	for _, path := range []string{"", "/tenant/a"} {
		t.Run("path "+path, func(t *testing.T) {
			var s *server
			doc := map[string]any{"issuer": "ISSUER", "jwks_uri": "ISSUER/jwks", "extra": []int{1}}
			s = newServer(t, map[string]http.HandlerFunc{
				"/.well-known/oauth-authorization-server" + path: document(&s, path, doc),
			})
			var got map[string]any
			e, err := Fetch(t.Context(), s.Client(), s.URL+path, &got)
			if err != nil {
				t.Fatalf("Fetch() error = %v", err)
			}
			if e.Issuer != s.URL+path || e.JWKSURI != s.URL+path+"/jwks" || got["extra"] == nil {
				t.Errorf("Fetch() = %+v, doc %v; want the RFC 8414 document", e, got)
			}
			want := []string{path + "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server" + path}
			if got := s.asked(); !slices.Equal(got, want) {
				t.Errorf("paths asked = %q; want %q: OpenID first, then RFC 8414", got, want)
			}
		})
	}
}

func TestFetch_Errors(t *testing.T) {
	const oidc = "/.well-known/openid-configuration"
	tests := []struct {
		name    string
		h       http.HandlerFunc // at the OpenID URL; nil: 404
		wantErr string
	}{
		{"no document at either URL", nil, "/.well-known/oauth-authorization-server (HTTP 404)"},
		{"failing", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, "answered HTTP 503"},
		{"a redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, "answered a redirect (HTTP 302)"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>")) }, "not a metadata document"},
		{"not an object", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`["issuer"]`)) }, "not a metadata document"},
		{"too large", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"issuer":"x","padding":"` + strings.Repeat("x", MaxDocument) + `"}`))
		}, "larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := map[string]http.HandlerFunc{}
			if tt.h != nil {
				routes[oidc] = tt.h
			}
			var followed atomic.Bool
			routes["/elsewhere"] = func(http.ResponseWriter, *http.Request) { followed.Store(true) }
			s := newServer(t, routes)
			// A client that follows redirects: Fetch's copy must not.
			_, err := Fetch(t.Context(), &http.Client{}, s.URL, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "provider: discovery: ") {
				t.Fatalf("Fetch() error = %v; want provider: discovery: ... %q", err, tt.wantErr)
			}
			if followed.Load() {
				t.Error("Fetch() followed the redirect")
			}
		})
	}
}

func TestFetch_KeepsTheClient(t *testing.T) {
	var s *server
	s = newServer(t, map[string]http.HandlerFunc{
		"/.well-known/openid-configuration": document(&s, "", map[string]any{"issuer": "ISSUER"}),
	})
	hc := &http.Client{}
	if _, err := Fetch(t.Context(), hc, s.URL, nil); err != nil {
		t.Fatal(err)
	}
	if hc.CheckRedirect != nil {
		t.Error("Fetch() changed the caller's client")
	}
	if _, err := Fetch(t.Context(), nil, s.URL, nil); err != nil {
		t.Errorf("Fetch() with a nil client error = %v", err)
	}
}

func TestDiscover(t *testing.T) {
	var s *server
	doc := map[string]any{"issuer": "ISSUER", "jwks_uri": "ISSUER/jwks"}
	s = newServer(t, map[string]http.HandlerFunc{
		"/.well-known/openid-configuration": document(&s, "", doc),
	})
	e, err := Discover(t.Context(), s.Client(), s.URL, nil)
	if err != nil || e.JWKSURI != s.URL+"/jwks" {
		t.Fatalf("Discover() = %+v, %v; want jwks_uri %s", e, err, s.URL+"/jwks")
	}
	if _, err := Discover(t.Context(), s.Client(), s.URL+"/", nil); !errors.Is(err, ErrIssuerMismatch) {
		t.Errorf("Discover(issuer + /) error = %v; want ErrIssuerMismatch", err)
	}
	n := len(s.asked())
	if _, err := Discover(t.Context(), s.Client(), "http://idp.example", nil); !errors.Is(err, ErrInsecureURL) {
		t.Errorf("Discover(http://idp.example) error = %v; want ErrInsecureURL", err)
	}
	if got := len(s.asked()); got != n {
		t.Errorf("Discover() of an insecure issuer made %d requests; want none", got-n)
	}
	doc["jwks_uri"] = "http://idp.example/jwks"
	if _, err := Discover(t.Context(), s.Client(), s.URL, nil); !errors.Is(err, ErrInsecureURL) {
		t.Errorf("Discover() with jwks_uri on http error = %v; want ErrInsecureURL", err)
	}
}
