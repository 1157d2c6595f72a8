package provider_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// idp is a fake identity provider on 127.0.0.1: a discovery document at
// /.well-known/openid-configuration and a token endpoint at /token, which
// records every request it gets and answers with the handler the test sets.
type idp struct {
	srv         *httptest.Server
	handler     http.Handler // serves the provider, on srv
	hc          *http.Client // if set, the HTTP client of its Clients, instead of srv's
	discoveries atomic.Int32

	mu sync.Mutex // guards the fields below
	// doc is the discovery document.
	doc      map[string]any
	token    http.HandlerFunc
	requests []tokenRequest
	// wrap, if set, serves every request instead, with the provider's own
	// handler as next.
	wrap func(w http.ResponseWriter, r *http.Request, next http.Handler)
}

// tokenRequest is what the token endpoint received.
type tokenRequest struct {
	form   url.Values
	header http.Header
	path   string
	peer   *x509.Certificate // the client certificate presented, if any
}

// newIDP starts a fake provider, on TLS if tls, whose token endpoint issues
// "token-1", "token-2", ... that live an hour.
func newIDP(t testing.TB, tls bool) *idp {
	t.Helper()
	if tls {
		return newIDPOn(t, httptest.NewTLSServer)
	}
	return newIDPOn(t, httptest.NewServer)
}

// newIDPOn is newIDP on the server that start starts for the provider's
// handler, which p.handler keeps, so that a second server can serve it too.
func newIDPOn(t testing.TB, start func(http.Handler) *httptest.Server) *idp {
	t.Helper()
	p := &idp{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoveries.Add(1)
		p.mu.Lock()
		data, err := json.Marshal(p.doc)
		p.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(data)
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got := tokenRequest{form: r.PostForm, header: r.Header.Clone(), path: r.URL.Path}
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			got.peer = r.TLS.PeerCertificates[0]
		}
		p.mu.Lock()
		p.requests = append(p.requests, got)
		h, n := p.token, len(p.requests)
		p.mu.Unlock()
		if h == nil {
			writeJSON(w, http.StatusOK, map[string]any{
				"access_token": "token-" + strconv.Itoa(n), "token_type": "Bearer", "expires_in": 3600,
			})
			return
		}
		h(w, r)
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		wrap := p.wrap
		p.mu.Unlock()
		if wrap != nil {
			wrap(w, r, mux)
			return
		}
		mux.ServeHTTP(w, r)
	})
	p.handler = h
	p.srv = start(h)
	t.Cleanup(p.srv.Close)
	p.doc = map[string]any{
		"issuer":         p.srv.URL,
		"token_endpoint": p.srv.URL + "/token",
		"jwks_uri":       p.srv.URL + "/jwks",
	}
	return p
}

// set sets the discovery document's field key; a nil value removes it.
func (p *idp) set(key string, value any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if value == nil {
		delete(p.doc, key)
		return
	}
	p.doc[key] = value
}

// answer makes the token endpoint answer with h.
func (p *idp) answer(h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.token = h
}

// intercept has wrap serve every request, with the provider's handler as
// next.
func (p *idp) intercept(wrap func(w http.ResponseWriter, r *http.Request, next http.Handler)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wrap = wrap
}

// got returns the token requests received so far.
func (p *idp) got() []tokenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]tokenRequest(nil), p.requests...)
}

// last returns the last token request received; it fails t if there is none.
func (p *idp) last(t *testing.T) tokenRequest {
	t.Helper()
	reqs := p.got()
	if len(reqs) == 0 {
		t.Fatal("the token endpoint received no request")
	}
	return reqs[len(reqs)-1]
}

// client returns a Client of p made by New, on p's HTTP client (which trusts
// its TLS certificate).
func (p *idp) client(t testing.TB, auth provider.ClientAuth, opts ...provider.Option) *provider.Client {
	t.Helper()
	hc := p.hc
	if hc == nil {
		hc = p.srv.Client()
	}
	c, err := provider.New(t.Context(), p.srv.URL, auth, append([]provider.Option{provider.HTTPClient(hc)}, opts...)...)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return c
}

// respond returns a handler that answers with status and body, as JSON.
func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// writeJSON writes v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// newClock returns the tests' clock, at a fixed start.
func newClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
}

// Test keys, made once: RSA key generation is slow under the race detector.
var (
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	})
	p256Key = sync.OnceValue(func() *ecdsa.PrivateKey { return ecKey(elliptic.P256()) })
	p384Key = sync.OnceValue(func() *ecdsa.PrivateKey { return ecKey(elliptic.P384()) })
	edKey   = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
)

func ecKey(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// kmsKey is a crypto.Signer that is none of the standard library's key types,
// as a key in a KMS or an HSM is: it only has Public and Sign, and counts the
// calls of Sign.
type kmsKey struct {
	inner crypto.Signer
	signs atomic.Int32
}

func (k *kmsKey) Public() crypto.PublicKey { return k.inner.Public() }

func (k *kmsKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.signs.Add(1)
	return k.inner.Sign(rand, digest, opts)
}

// countingTransport is an http.RoundTripper that answers every request with
// the JSON body its function returns for it, without a network, and counts
// the requests.
type countingTransport struct {
	calls  atomic.Int32
	answer func(*http.Request) (status int, body string)
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.calls.Add(1)
	status, body := http.StatusNotFound, ""
	if c.answer != nil {
		status, body = c.answer(r)
	}
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
	}, nil
}
