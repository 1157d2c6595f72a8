package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestKeySetRegistry_Bounds(t *testing.T) {
	url := ksServe(t, &ksSource{body: ksDoc(t, "k1")})
	r := verify.NewRegistry(2, verify.Clock(ksNewClock().Now))
	steps := []struct {
		op, name, url string
		wantErr       bool
		wantIs        error // if not nil, what the error wraps
		wantLen       int
	}{
		{"register", "a", url, false, nil, 1},
		{"register", "b", url, false, nil, 2},
		{"register", "c", url, true, verify.ErrRegistryFull, 2},
		{"register", "a", url, true, nil, 2}, // already registered
		{"unregister", "a", "", false, nil, 1},
		{"unregister", "a", "", false, nil, 1},
		{"register", "c", "http://example.com/jwks", true, verify.ErrKeySetRefused, 1},
		{"register", "", url, true, nil, 1},
		{"register", "c", url, false, nil, 2},
	}
	for _, st := range steps {
		var err error
		switch st.op {
		case "register":
			err = r.Register(st.name, st.url)
		case "unregister":
			r.Unregister(st.name)
		}
		switch {
		case !st.wantErr && err != nil:
			t.Errorf("%s(%q) error = %v; want nil", st.op, st.name, err)
		case st.wantErr && err == nil:
			t.Errorf("%s(%q) error = nil; want an error", st.op, st.name)
		case st.wantIs != nil && !errors.Is(err, st.wantIs):
			t.Errorf("%s(%q) error = %v; want %v", st.op, st.name, err, st.wantIs)
		}
		if got := r.Len(); got != st.wantLen {
			t.Errorf("after %s(%q): Len() = %d; want %d", st.op, st.name, got, st.wantLen)
		}
	}
	if _, ok := r.Get("a"); ok {
		t.Errorf(`Get("a") ok = true; want false (unregistered)`)
	}
	s, ok := r.Get("c")
	if !ok {
		t.Fatalf(`Get("c") ok = false; want true`)
	}
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Fatalf(`Get("c").Key() error = %v`, err)
	}
	st, ok := r.Status("c")
	if !ok || st.Hits != 1 || st.Keys != 1 {
		t.Errorf(`Status("c") = %+v, %v; want 1 hit, 1 key, true`, st, ok)
	}
	if _, ok := r.Status("a"); ok {
		t.Errorf(`Status("a") ok = true; want false`)
	}
	if st, _ := r.Status("b"); st.Refreshes != 0 {
		t.Errorf(`Status("b").Refreshes = %d; want 0 (nothing fetched before a call)`, st.Refreshes)
	}
}

// ksIssuer is an OpenID provider on 127.0.0.1 that serves its discovery
// document (with what doc returns, given its base URL) and its key set.
type ksIssuer struct {
	srv         *httptest.Server
	discoveries atomic.Int64
}

func ksNewIssuer(t *testing.T, doc func(base string) map[string]any) *ksIssuer {
	t.Helper()
	p := &ksIssuer{}
	keys := &ksSource{body: ksDoc(t, "k1")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoveries.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc(p.srv.URL))
	})
	mux.Handle("GET /jwks", keys)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func TestKeySetRegistry_RegisterIssuer(t *testing.T) {
	good := func(base string) map[string]any { return map[string]any{"issuer": base, "jwks_uri": base + "/jwks"} }
	tests := []struct {
		name     string
		doc      func(base string) map[string]any
		issuer   func(base string) string // the issuer registered; the default is base
		opts     []verify.KeySetOption
		wantIs   error // nil: registered
		wantErr  bool
		requests int64 // discovery requests made
	}{
		{name: "registered", doc: good, requests: 1},
		{name: "issuer mismatch", doc: good, issuer: func(b string) string { return b + "/" }, wantIs: provider.ErrIssuerMismatch, requests: 1},
		{name: "document names another issuer", doc: func(b string) map[string]any {
			return map[string]any{"issuer": "https://idp.example", "jwks_uri": b + "/jwks"}
		}, wantIs: provider.ErrIssuerMismatch, requests: 1},
		{name: "no jwks_uri", doc: func(b string) map[string]any { return map[string]any{"issuer": b} }, wantErr: true, requests: 1},
		{name: "jwks_uri on http", doc: func(b string) map[string]any {
			return map[string]any{"issuer": b, "jwks_uri": "http://idp.example/jwks"}
		}, wantIs: provider.ErrInsecureURL, requests: 1},
		{name: "jwks_uri not on the allowed hosts", doc: func(b string) map[string]any {
			return map[string]any{"issuer": b, "jwks_uri": strings.Replace(b, "127.0.0.1", "localhost", 1) + "/jwks"}
		}, opts: []verify.KeySetOption{verify.AllowedHosts("127.0.0.1")}, wantIs: verify.ErrKeySetRefused, requests: 1},
		{name: "issuer not on the allowed hosts", doc: good, opts: []verify.KeySetOption{verify.AllowedHosts("idp.example")},
			wantIs: verify.ErrKeySetRefused, requests: 0},
		{name: "issuer on http", doc: good, issuer: func(string) string { return "http://idp.example" }, wantIs: verify.ErrKeySetRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ksNewIssuer(t, tt.doc)
			issuer := p.srv.URL
			if tt.issuer != nil {
				issuer = tt.issuer(issuer)
			}
			r := verify.NewRegistry(2, append([]verify.KeySetOption{verify.Clock(ksNewClock().Now)}, tt.opts...)...)
			err := r.RegisterIssuer(context.Background(), "acme", issuer)
			switch {
			case tt.wantIs == nil && !tt.wantErr && err != nil:
				t.Fatalf("RegisterIssuer() error = %v", err)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("RegisterIssuer() error = %v; want %v", err, tt.wantIs)
			case tt.wantErr && err == nil:
				t.Errorf("RegisterIssuer() error = nil; want an error")
			}
			if got := p.discoveries.Load(); got != tt.requests {
				t.Errorf("discovery requests = %d; want %d", got, tt.requests)
			}
			s, ok := r.Get("acme")
			if ok != (err == nil) {
				t.Fatalf("Get(acme) ok = %v after RegisterIssuer() error %v", ok, err)
			}
			if !ok {
				return
			}
			if got, want := s.URL(), p.srv.URL+"/jwks"; got != want {
				t.Errorf("URL() = %q; want %q", got, want)
			}
			if st, _ := r.Status("acme"); st.Refreshes != 0 {
				t.Errorf("Status().Refreshes = %d; want 0 (the key set is fetched when first needed)", st.Refreshes)
			}
			if _, err := s.Key(context.Background(), "k1"); err != nil {
				t.Errorf("Key() error = %v", err)
			}
			if st, _ := r.Status("acme"); st.LastRefresh.IsZero() || st.Expiry.IsZero() || st.Err != nil || st.Keys != 1 {
				t.Errorf("Status() = %+v; want a last refresh, an expiry, 1 key, no error", st)
			}
		})
	}
}

// TestKeySetRegistry_RegisterIssuerBounds: a name registered or a full
// registry fails before any request is made.
func TestKeySetRegistry_RegisterIssuerBounds(t *testing.T) {
	p := ksNewIssuer(t, func(b string) map[string]any { return map[string]any{"issuer": b, "jwks_uri": b + "/jwks"} })
	r := verify.NewRegistry(1)
	ctx := context.Background()
	if err := r.RegisterIssuer(ctx, "a", p.srv.URL); err != nil {
		t.Fatalf("RegisterIssuer(a) error = %v", err)
	}
	if err := r.RegisterIssuer(ctx, "a", p.srv.URL); err == nil {
		t.Errorf("RegisterIssuer(a) again error = nil; want already registered")
	}
	if err := r.RegisterIssuer(ctx, "b", p.srv.URL); !errors.Is(err, verify.ErrRegistryFull) {
		t.Errorf("RegisterIssuer(b) error = %v; want ErrRegistryFull", err)
	}
	if err := r.RegisterIssuer(ctx, "", p.srv.URL); err == nil {
		t.Errorf("RegisterIssuer(\"\") error = nil; want an error")
	}
	if got := p.discoveries.Load(); got != 1 {
		t.Errorf("discovery requests = %d; want 1", got)
	}
	// A discovery that hangs is bounded by the FetchTimeout.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	r = verify.NewRegistry(1, verify.FetchTimeout(50*time.Millisecond))
	if err := r.RegisterIssuer(ctx, "a", hang.URL); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RegisterIssuer(a hanging provider) error = %v; want context.DeadlineExceeded", err)
	}
}
