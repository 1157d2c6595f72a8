package verify_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestKeySet_HostileSets(t *testing.T) {
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := jwk.FromRaw(rsaPriv)
	if err != nil {
		t.Fatal(err)
	}
	_ = rsaKey.Set(jwk.KeyIDKey, "k2")
	good := ksPublic(t, "k1")
	tests := []struct {
		name        string
		body        string
		contentType string
	}{
		{"huge", `{"keys":[` + strings.Repeat(" ", 1<<20) + `]}`, ""},
		{"EC private key", string(ksDocOf(t, good, ksPrivate(t, "k2"))), ""},
		{"RSA private key", string(ksDocOf(t, good, rsaKey)), ""},
		{"oct key", `{"keys":[{"kty":"oct","kid":"k2","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`, ""},
		{"duplicate kids", string(ksDocOf(t, good, ksPublic(t, "k2"), ksPublic(t, "k2"))), ""},
		{"missing kid", string(ksDocOf(t, good, ksPublic(t, ""))), ""},
		{"wrong content type", string(ksDocOf(t, good, ksPublic(t, "k2"))), "text/html"},
		{"no content type", string(ksDocOf(t, good, ksPublic(t, "k2"))), "none"},
		{"garbage", "<html>hello</html>", ""},
		{"truncated", `{"keys":[{"kty":"EC"`, ""},
		{"trailing data", string(ksDocOf(t, good, ksPublic(t, "k2"))) + "{}", ""},
		{"no keys", `{"keys":[]}`, ""},
		{"not a set", `[1,2,3]`, ""},
		{"invalid EC key", `{"keys":[{"kty":"EC","kid":"k2","crv":"P-256","x":"AA","y":"AA"}]}`, ""},
		{"numeric kid", `{"keys":[{"kty":"EC","kid":2,"crv":"P-256","x":"AA","y":"AA"}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &ksSource{body: ksDocOf(t, good)}
			clk := ksNewClock()
			s := ksNew(t, ksServe(t, src), clk)
			ctx := context.Background()
			if _, err := s.Key(ctx, "k1"); err != nil {
				t.Fatalf("Key(k1) error = %v", err)
			}
			src.mu.Lock()
			src.body, src.contentType = []byte(tt.body), tt.contentType
			src.mu.Unlock()

			clk.Advance(10 * time.Second) // the unknown kid refreshes
			_, err := s.Key(ctx, "k2")
			if !errors.Is(err, verify.ErrKeySetUnknownKID) || !errors.Is(err, verify.ErrKeySetRefused) {
				t.Errorf("Key(k2) error = %v; want ErrKeySetUnknownKID and ErrKeySetRefused", err)
			}
			if k, err := s.Key(ctx, "k1"); err != nil || k.KeyID() != "k1" {
				t.Errorf("Key(k1) after the refusal = %v, %v; want the old set's key", k, err)
			}
			st := s.Stats()
			if st.Refused != 1 || st.RefreshErrors != 1 || st.Keys != 1 {
				t.Errorf("Stats() = %+v; want 1 refused, 1 refresh error, 1 key", st)
			}
			if err != nil && strings.Contains(err.Error(), `"d"`) || (tt.name == "EC private key" && strings.Contains(err.Error(), "{")) {
				t.Errorf("Key(k2) error = %v; want no key material", err)
			}
		})
	}
}

func TestKeySet_SkipsUnknownKeyTypes(t *testing.T) {
	doc := strings.Replace(string(ksDoc(t, "k1")), `"keys":[`, `"keys":[{"kty":"PQ","kid":"future"},`, 1)
	s := ksNew(t, ksServe(t, &ksSource{body: []byte(doc)}), ksNewClock())
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("Key(k1) error = %v", err)
	}
	if got, want := s.Stats().Keys, 1; got != want {
		t.Errorf("Stats().Keys = %d; want %d", got, want)
	}
}

func TestKeySet_HTTPSRequired(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://example.com/jwks", false},
		{"http://10.0.0.1/jwks", false},
		{"http://localhost.example.com/jwks", false},
		{"http://[::ffff:10.0.0.1]/jwks", false},
		{"ftp://example.com/jwks", false},
		{"file:///etc/jwks", false},
		{"https:///jwks", false},
		{"https://example.com/jwks", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://127.1.2.3/jwks", true},
		{"http://[::1]/jwks", true},
		{"http://localhost/jwks", true},
		{"http://LOCALHOST./jwks", true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			tr := &ksTransport{}
			_, err := verify.NewKeySet(tt.url, verify.HTTPClient(&http.Client{Transport: tr}))
			if tt.ok && err != nil {
				t.Errorf("NewKeySet() error = %v; want nil", err)
			}
			if !tt.ok && !errors.Is(err, verify.ErrKeySetRefused) {
				t.Errorf("NewKeySet() error = %v; want ErrKeySetRefused", err)
			}
			if got := tr.requests.Load(); got != 0 {
				t.Errorf("requests = %d; want 0", got)
			}
		})
	}
}

func TestKeySet_AllowedHosts(t *testing.T) {
	if _, err := verify.NewKeySet("https://evil.example/jwks", verify.AllowedHosts("idp.example")); !errors.Is(err, verify.ErrKeySetRefused) {
		t.Errorf("NewKeySet() on a host not allowed error = %v; want ErrKeySetRefused", err)
	}
	if _, err := verify.NewKeySet("https://IdP.example/jwks", verify.AllowedHosts("idp.example")); err != nil {
		t.Errorf("NewKeySet() on an allowed host error = %v; want nil", err)
	}
}

// ksRedirect redirects every request to to.
func ksRedirect(t *testing.T, to string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks"
}

func TestKeySet_Redirects(t *testing.T) {
	target := &ksSource{body: ksDoc(t, "k1")}
	targetURL := ksServe(t, target)
	byName := strings.Replace(targetURL, "127.0.0.1", "localhost", 1)
	tests := []struct {
		name string
		url  string
		ok   bool
	}{
		{"to an allowed host", ksRedirect(t, targetURL), true},
		{"to a disallowed host", ksRedirect(t, byName), false},
		{"to plain http elsewhere", ksRedirect(t, "http://example.com/jwks"), false},
		{"three redirects", ksRedirect(t, ksRedirect(t, ksRedirect(t, targetURL))), true},
		{"four redirects", ksRedirect(t, ksRedirect(t, ksRedirect(t, ksRedirect(t, targetURL)))), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := target.requests.Load()
			s := ksNew(t, tt.url, ksNewClock(), verify.AllowedHosts("127.0.0.1"))
			_, err := s.Key(context.Background(), "k1")
			if tt.ok && err != nil {
				t.Errorf("Key() error = %v; want nil", err)
			}
			if !tt.ok {
				if !errors.Is(err, verify.ErrKeySetRefused) || !errors.Is(err, verify.ErrKeySetStale) {
					t.Errorf("Key() error = %v; want ErrKeySetStale and ErrKeySetRefused", err)
				}
				if got := target.requests.Load() - before; got != 0 {
					t.Errorf("requests to the target = %d; want 0", got)
				}
				if got := s.Stats().Refused; got != 1 {
					t.Errorf("Stats().Refused = %d; want 1", got)
				}
			}
		})
	}
}

func TestKeySet_PinSPKI(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")}
	var requests atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		src.ServeHTTP(w, r)
	}))
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().RawSubjectPublicKeyInfo)
	pin := base64.StdEncoding.EncodeToString(sum[:])
	other := base64.StdEncoding.EncodeToString(make([]byte, sha256.Size))
	tests := []struct {
		name string
		pins []string
		ok   bool
	}{
		{"match", []string{pin}, true},
		{"one of several", []string{other, pin}, true},
		{"mismatch", []string{other}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := requests.Load()
			s := ksNew(t, srv.URL, ksNewClock(), verify.HTTPClient(srv.Client()), verify.PinSPKI(tt.pins...))
			_, err := s.Key(context.Background(), "k1")
			if tt.ok && err != nil {
				t.Errorf("Key() error = %v; want nil", err)
			}
			if !tt.ok {
				if !errors.Is(err, verify.ErrKeySetRefused) {
					t.Errorf("Key() error = %v; want ErrKeySetRefused", err)
				}
				if got := requests.Load() - before; got != 0 {
					t.Errorf("requests = %d; want 0 (refused in the handshake)", got)
				}
			}
		})
	}
	srv.Client().CloseIdleConnections()
}

func TestKeySet_PinSPKIInvalid(t *testing.T) {
	tests := []struct {
		name, url, pin string
	}{
		{"not base64", "https://idp.example/jwks", "not base64!"},
		{"not 32 bytes", "https://idp.example/jwks", base64.StdEncoding.EncodeToString([]byte("short"))},
		{"plain http", "http://127.0.0.1/jwks", base64.StdEncoding.EncodeToString(make([]byte, 32))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := verify.NewKeySet(tt.url, verify.PinSPKI(tt.pin)); err == nil {
				t.Errorf("NewKeySet(%q, PinSPKI(%q)) error = nil; want an error", tt.url, tt.pin)
			}
		})
	}
}
