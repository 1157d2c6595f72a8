package verify_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// ksNewClock returns the key set tests' clock, at a fixed start.
func ksNewClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
}

// ksPrivate returns a new P-256 private JWK with kid.
func ksPrivate(t testing.TB, kid string) jwk.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	if kid != "" {
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// ksPublic returns a new P-256 public JWK with kid ("" for none).
func ksPublic(t testing.TB, kid string) jwk.Key {
	t.Helper()
	k, err := ksPrivate(t, kid).PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// ksDocOf returns the JWK Set document of keys.
func ksDocOf(t testing.TB, keys ...any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ksDoc returns a JWK Set document of new public keys with kids.
func ksDoc(t testing.TB, kids ...string) []byte {
	t.Helper()
	var keys []any
	for _, kid := range kids {
		keys = append(keys, ksPublic(t, kid))
	}
	return ksDocOf(t, keys...)
}

// ksSource is a key set server's state: what it answers, and what it was
// asked.
type ksSource struct {
	mu          sync.Mutex
	body        []byte
	contentType string      // "": application/json; "none": none
	header      http.Header // added to every response
	status      int         // 0: 200
	requests    atomic.Int64
}

func (s *ksSource) set(body []byte, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.header = body, header
}

func (s *ksSource) fail(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

func (s *ksSource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	body, header, status, ct := s.body, s.header, s.status, s.contentType
	s.mu.Unlock()
	for k, v := range header {
		w.Header()[k] = v
	}
	if status != 0 && status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	switch ct {
	case "":
		w.Header().Set("Content-Type", "application/json")
	case "none":
		w.Header()["Content-Type"] = nil // and no sniffing
	default:
		w.Header().Set("Content-Type", ct)
	}
	_, _ = w.Write(body)
}

// ksServe starts a key set server on 127.0.0.1 that answers body, and
// returns its URL.
func ksServe(t testing.TB, src http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(src)
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks"
}

// ksNew returns a key set on url with the clock and opts.
func ksNew(t testing.TB, url string, clk *testkit.Clock, opts ...verify.KeySetOption) *verify.KeySet {
	t.Helper()
	if clk != nil {
		opts = append([]verify.KeySetOption{verify.Clock(clk.Now)}, opts...)
	}
	s, err := verify.NewKeySet(url, opts...)
	if err != nil {
		t.Fatalf("NewKeySet(%q) error = %v", url, err)
	}
	return s
}

// ksTransport answers every request with body, as JSON, with no network.
type ksTransport struct {
	body     []byte
	requests atomic.Int64
}

func (t *ksTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.requests.Add(1)
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(t.body)),
		Request:    r,
	}, nil
}
