package verify_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// issuerServer is an OpenID provider's discovery document and key set on
// 127.0.0.1; while down, it answers 503 to both.
type issuerServer struct {
	srv  *httptest.Server
	down atomic.Bool
	hits atomic.Int32 // requests of either
	jwks []byte
	mu   sync.Mutex // guards jwks
}

func newIssuerServer(t *testing.T, jwks []byte) *issuerServer {
	s := &issuerServer{jwks: jwks}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"issuer": s.srv.URL, "jwks_uri": s.srv.URL + "/jwks"})
		case "/jwks":
			s.mu.Lock()
			defer s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write(s.jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// TestVerifierFromIssuer: one call from an issuer's URL and an audience to a
// Verifier, its key set discovered from the issuer's metadata.
func TestVerifierFromIssuer(t *testing.T) {
	priv := ksPrivate(t, "k1")
	pub, _ := priv.PublicKey()
	is := newIssuerServer(t, ksDocOf(t, pub))
	v, err := verify.NewFromIssuer(is.srv.URL, "https://api.example", verify.Logger(nil), verify.MinTTL(time.Minute))
	if err != nil {
		t.Fatalf("NewFromIssuer() error = %v", err)
	}
	if n := is.hits.Load(); n != 0 {
		t.Fatalf("NewFromIssuer made %d requests; want none", n)
	}
	var raw any
	if err := priv.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := sign(t, "ES256", "k1", raw, nil, map[string]any{"iss": is.srv.URL, "aud": "https://api.example", "sub": "svc", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	c, err := v.Verify(t.Context(), good)
	if err != nil || c.Subject() != "svc" {
		t.Fatalf("Verify() = %v, %v; want the claims of svc", c, err)
	}
	other := sign(t, "ES256", "k1", raw, nil, map[string]any{"iss": is.srv.URL, "aud": "https://other.example", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if _, err := v.Verify(t.Context(), other); !errors.Is(err, verify.ErrAudience) {
		t.Errorf("Verify() of a token for another audience error = %v; want ErrAudience", err)
	}
	if _, err := verify.NewFromIssuer("http://idp.example", "a"); err == nil {
		t.Error("NewFromIssuer(http://idp.example) error = nil; want one: not https")
	}
	if _, err := verify.New(newKeys(t), verify.Issuer("i"), verify.Audience("a"), verify.MinTTL(time.Minute)); err == nil {
		t.Error("New() with a KeySetOption error = nil; want one: the key set is the caller's")
	}
}

// TestVerifierFromIssuer_StartWithoutProvider: a server starts while its
// provider is down; its middleware answers 503 with Retry-After (so that
// clients keep their tokens) until the keys can be had, and 200 after.
func TestVerifierFromIssuer_StartWithoutProvider(t *testing.T) {
	priv := ksPrivate(t, "k1")
	pub, _ := priv.PublicKey()
	is := newIssuerServer(t, ksDocOf(t, pub))
	is.down.Store(true)
	clk := ksNewClock()
	v, err := verify.NewFromIssuer(is.srv.URL, "https://api.example", verify.Logger(nil), verify.Clock(clk.Now))
	if err != nil {
		t.Fatalf("NewFromIssuer() error = %v", err)
	}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	var raw any
	if err := priv.Raw(&raw); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	tok := sign(t, "ES256", "k1", raw, nil, map[string]any{"iss": is.srv.URL, "aud": "https://api.example", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	call := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for i := range 5 {
		if rec := call(); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("call %d with the provider down: %d, Retry-After %q; want 503 with Retry-After", i, rec.Code, rec.Header().Get("Retry-After"))
		}
	}
	if n := is.hits.Load(); n > 2 {
		t.Errorf("requests to the provider while down = %d; want at most 2 (then the backoff)", n)
	}
	is.down.Store(false)
	clk.Advance(3 * time.Second) // past the backoffs
	if rec := call(); rec.Code != http.StatusOK {
		t.Fatalf("call once the provider is up: %d; want 200", rec.Code)
	}
}

// TestMiddlewareLogs: by default the middleware's refusals reach
// slog.Default, with the reason and never the token, at Warn, at most once a
// second per kind.
func TestMiddlewareLogs(t *testing.T) {
	var buf testkit.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	keys := newKeys(t)
	clk := testkit.NewClock(t0)
	v, err := verify.New(keys, verify.Issuer(testIssuer), verify.Audience(testAudience), verify.Clock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	h := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	bad := sign(t, "RS256", "rsa", testKeys().rsa, nil, claims(map[string]any{"aud": "https://elsewhere.example"}))
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/orders", nil)
		req.Header.Set("Authorization", "Bearer "+bad)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status = %d; want 401", rec.Code)
		}
	}
	out := buf.String()
	if n := strings.Count(out, "request refused"); n != 1 {
		t.Errorf("refusals logged = %d; want 1 (three in one second):\n%s", n, out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "audience") || !strings.Contains(out, "path=/orders") {
		t.Errorf("log lacks the level, the reason or the path:\n%s", out)
	}
	if strings.Contains(out, bad) || strings.Contains(out, strings.Split(bad, ".")[2]) {
		t.Errorf("log holds the token:\n%s", out)
	}
	clk.Advance(2 * time.Second)
	req := httptest.NewRequest(http.MethodGet, "/orders", nil)
	req.Header.Set("Authorization", "Bearer "+bad)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if n := strings.Count(buf.String(), "request refused"); n != 2 {
		t.Errorf("refusals logged after a second = %d; want 2", n)
	}
}

// TestClaimsDecode: custom claims decode into the caller's struct.
func TestClaimsDecode(t *testing.T) {
	v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
	tok := sign(t, "RS256", "rsa", testKeys().rsa, nil, claims(map[string]any{
		"tenant": "acme", "roles": []string{"reader", "writer"}, "limits": map[string]any{"rps": 50},
	}))
	c, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	var custom struct {
		Subject string   `json:"sub"`
		Tenant  string   `json:"tenant"`
		Roles   []string `json:"roles"`
		Limits  struct {
			RPS int `json:"rps"`
		} `json:"limits"`
	}
	if err := c.Decode(&custom); err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	if custom.Subject != "client-1" || custom.Tenant != "acme" || len(custom.Roles) != 2 || custom.Limits.RPS != 50 {
		t.Errorf("Decode() = %+v; want the token's claims", custom)
	}
	var wrong struct {
		Tenant int `json:"tenant"`
	}
	if err := c.Decode(&wrong); err == nil || !strings.HasPrefix(err.Error(), "verify: decode claims:") {
		t.Errorf("Decode() into a mismatched type error = %v; want verify: decode claims: ...", err)
	}
}

// TestVerify_NonUTF8: claims that are not UTF-8 (RFC 7519, section 7.2) are
// refused, even with a good signature: "user-\xff" and "user-\xfe" must not
// become one subject once re-encoded.
func TestVerify_NonUTF8(t *testing.T) {
	v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
	good := sign(t, "RS256", "rsa", testKeys().rsa, nil, claims(map[string]any{"sub": "user-AAAA"}))
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(payload, []byte("user-AAAA"), []byte("user-\xff\xfeAA"), 1)
	input := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bad)
	tok := input + "." + base64.RawURLEncoding.EncodeToString(rawSign(t, "RS256", testKeys().rsa, input))
	if _, err := v.Verify(t.Context(), tok); !errors.Is(err, verify.ErrMalformed) || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Verify() of claims with invalid UTF-8 error = %v; want ErrMalformed naming UTF-8", err)
	}
}

// TestKeySet_FirstErrorNamesCause: the error of the call whose fetch failed
// names the fetch's cause, not the backoff that fetch started; the calls
// during the backoff say so.
func TestKeySet_FirstErrorNamesCause(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>log in</html>"))
	}))
	defer srv.Close()
	s, err := verify.NewKeySet(srv.URL+"/jwks", verify.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Key(t.Context(), "k1")
	if !errors.Is(err, verify.ErrKeySetStale) || !errors.Is(err, verify.ErrKeySetRefused) || strings.Contains(err.Error(), "backing off") || !strings.Contains(err.Error(), `"text/html"`) {
		t.Errorf("first Key() error = %v; want ErrKeySetStale naming the HTML, not a backoff", err)
	}
	if _, err := s.Key(t.Context(), "k1"); !strings.Contains(fmt.Sprint(err), "backing off") {
		t.Errorf("second Key() error = %v; want it to say the key set backs off", err)
	}
}
