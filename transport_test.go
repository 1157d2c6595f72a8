package jwtcache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// recorder is a test server that records the Authorization header of every
// request, and answers 401 to tokens in its revoked set.
type recorder struct {
	*httptest.Server
	mu sync.Mutex
	// guards auth, revoked and bodies
	auth    []string
	revoked map[string]bool
	bodies  []string
}

func newRecorder(t *testing.T, handler http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{revoked: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		h := req.Header.Get("Authorization")
		r.mu.Lock()
		r.auth = append(r.auth, h)
		r.bodies = append(r.bodies, string(body))
		revoked := r.revoked[strings.TrimPrefix(h, "Bearer ")]
		r.mu.Unlock()
		if revoked {
			http.Error(w, "token revoked", http.StatusUnauthorized)
			return
		}
		if handler != nil {
			handler(w, req)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

func (r *recorder) revoke(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[tok] = true
}

// countingCache returns a cache of real hour-long tokens and its fetch count.
func countingCache(t *testing.T) (*jwtcache.Cache, *atomic.Int64) {
	var calls atomic.Int64
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(context.Context) (string, error) {
		calls.Add(1)
		return minter.Mint(time.Now(), time.Hour, nil), nil
	}))
	return c, &calls
}

func get(t *testing.T, client *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestTransport_InjectsBearerOnAClone(t *testing.T) {
	srv := newRecorder(t, nil)
	c, _ := countingCache(t)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tok, _ := c.EnsureToken(context.Background())
	if got := srv.seen(); len(got) != 1 || got[0] != "Bearer "+tok {
		t.Errorf("server saw Authorization %q; want the cached token", got)
	}
	if got := req.Header.Get("Authorization"); got != "" {
		t.Errorf("caller's request was modified: Authorization = %q", got)
	}
}

func TestTransport_KeepsCallersAuthorization(t *testing.T) {
	srv := newRecorder(t, nil)
	c, calls := countingCache(t)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := srv.seen(); len(got) != 1 || got[0] != "Basic dXNlcjpwYXNz" || calls.Load() != 0 {
		t.Errorf("server saw %q, fetches %d; want the caller's header and no fetch", got, calls.Load())
	}
}

// trackedBody records whether it was closed.
type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func TestTransport_TokenErrorSendsNothing(t *testing.T) {
	srv := newRecorder(t, nil)
	idpDown := errors.New("idp down")
	c := jwtcache.NewCache(jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(context.Context) (string, error) { return "", idpDown }))
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	body := &trackedBody{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
	_, err := client.Do(req)
	if !errors.Is(err, idpDown) {
		t.Errorf("Do() error = %v; want the token function's error", err)
	}
	if got := srv.seen(); len(got) != 0 {
		t.Errorf("server received %d requests; want none", len(got))
	}
	if !body.closed.Load() {
		t.Errorf("request body not closed")
	}
}

func TestTransport_Hosts(t *testing.T) {
	api := newRecorder(t, nil)
	other := newRecorder(t, nil)
	c, _ := countingCache(t)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil, jwtcache.Hosts(strings.TrimPrefix(api.URL, "http://")))}
	get(t, client, api.URL)
	get(t, client, other.URL)
	if got := api.seen(); len(got) != 1 || !strings.HasPrefix(got[0], "Bearer ") {
		t.Errorf("listed host got Authorization %q; want a bearer token", got)
	}
	if got := other.seen(); len(got) != 1 || got[0] != "" {
		t.Errorf("unlisted host got Authorization %q; want none", got)
	}
}

func TestTransport_Redirects(t *testing.T) {
	elsewhere := newRecorder(t, nil)
	var api *recorder
	api = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, elsewhere.URL+"/landing", http.StatusFound)
		case "/here":
			http.Redirect(w, r, api.URL+"/landing", http.StatusFound)
		default:
			io.WriteString(w, "ok")
		}
	})
	c, _ := countingCache(t)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}

	get(t, client, api.URL+"/away")
	if got := elsewhere.seen(); len(got) != 1 || got[0] != "" {
		t.Errorf("redirect target on another host got Authorization %q; want none", got)
	}
	get(t, client, api.URL+"/here")
	if got := api.seen(); len(got) != 3 || !strings.HasPrefix(got[2], "Bearer ") {
		t.Errorf("redirect on the same host: Authorization %q; want the token kept", got)
	}
}

func TestTransport_RetriesOnceOn401(t *testing.T) {
	srv := newRecorder(t, nil)
	c, calls := countingCache(t)
	first, _ := c.EnsureToken(context.Background())
	srv.revoke(first)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}

	resp, err := client.Post(srv.URL, "text/plain", bytes.NewReader([]byte("payload")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d; want 200 after a retry with a fresh token", resp.StatusCode)
	}
	seen := srv.seen()
	if len(seen) != 2 || seen[0] != "Bearer "+first || seen[1] == seen[0] {
		t.Errorf("server saw %q; want the revoked token, then a fresh one", seen)
	}
	if len(srv.bodies) != 2 || srv.bodies[1] != "payload" {
		t.Errorf("bodies = %q; want the retried one replayed", srv.bodies)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("fetches = %d; want 2", got)
	}
}

func TestTransport_BurstOf401sCausesOneFetch(t *testing.T) {
	srv := newRecorder(t, nil)
	c, calls := countingCache(t)
	first, _ := c.EnsureToken(context.Background())
	srv.revoke(first)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	// Every request is sent with the first token before any 401 comes back.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if resp := get(t, client, srv.URL); resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d; want 200", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if got := calls.Load(); got != 2 {
		t.Errorf("fetches = %d; want 2 (the first token, and one replacement)", got)
	}
}

func TestTransport_NoRetry(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "never", http.StatusUnauthorized)
	})
	c, calls := countingCache(t)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}

	// A server that rejects every token: one retry, never a loop. The
	// retry's token is the second in a row that the server rejected just
	// after it arrived: the cache backs off instead of fetching one per
	// request, and the next request is sent once with it.
	if resp := get(t, client, srv.URL); resp.StatusCode != http.StatusUnauthorized || len(srv.seen()) != 2 || calls.Load() != 2 {
		t.Errorf("status %d after %d requests, %d fetches; want 401 after 2 and 2", resp.StatusCode, len(srv.seen()), calls.Load())
	}
	if resp := get(t, client, srv.URL); resp.StatusCode != http.StatusUnauthorized || len(srv.seen()) != 3 || calls.Load() != 2 {
		t.Errorf("next request: status %d, %d sent, %d fetches; want 401, 3, 2", resp.StatusCode, len(srv.seen()), calls.Load())
	}

	// A body that cannot be replayed: no retry, but the token is dropped.
	c, calls = countingCache(t)
	client = &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	sent := len(srv.seen())
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("once")))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := len(srv.seen()) - sent; got != 1 || calls.Load() != 1 {
		t.Errorf("requests = %d, fetches %d; want 1 and 1 (no retry of an unreplayable body)", got, calls.Load())
	}
	if _, err := c.EnsureToken(context.Background()); err != nil || calls.Load() != 2 {
		t.Errorf("EnsureToken() after the 401 = %v, %d fetches; want the rejected token dropped, a second fetch", err, calls.Load())
	}
}

// recordingBase is a base transport that records whether each request it
// sends carries a token.
type recordingBase struct{ auth []string }

func (b *recordingBase) RoundTrip(r *http.Request) (*http.Response, error) {
	b.auth = append(b.auth, r.Header.Get("Authorization"))
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
}

// TestTransport_Origins checks where the token may go, with redirect chains
// built as the client builds them.
func TestTransport_Origins(t *testing.T) {
	c, _ := countingCache(t)
	hop := func(url string, prev *http.Request) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, url, nil)
		if prev != nil {
			r.Response = &http.Response{StatusCode: http.StatusFound, Request: prev}
		}
		return r
	}
	a := hop("https://api.example.com/x", nil)
	tests := []struct {
		name  string
		req   *http.Request
		hosts []string // nil: no Hosts option
		want  bool
	}{
		{"plain", hop("https://api.example.com/x", nil), nil, true},
		{"same origin redirect", hop("https://api.example.com:443/y", a), nil, true},
		{"redirect to another host", hop("https://evil.example/steal", a), nil, false},
		{"back to the origin through another host", hop("https://api.example.com/delete", hop("https://evil.example/", a)), nil, false},
		{"https to http on the same host", hop("http://api.example.com:443/y", a), nil, false},
		{"redirect whose previous request is unknown", func() *http.Request {
			r := hop("https://api.example.com/y", nil)
			r.Response = &http.Response{StatusCode: http.StatusFound}
			return r
		}(), nil, false},
		{"listed host", hop("https://API.example.com./x", nil), []string{"api.example.com"}, true},
		{"listed host and port", hop("http://[::1]:8443/x", nil), []string{"[::1]:8443"}, true},
		{"listed host, other port", hop("http://[::1]:9000/x", nil), []string{"[::1]:8443"}, false},
		{"unlisted host", hop("https://other.example/x", nil), []string{"api.example.com"}, false},
		{"empty host list", hop("https://api.example.com/x", nil), []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := &recordingBase{}
			var opts []jwtcache.TransportOption
			if tt.hosts != nil {
				opts = append(opts, jwtcache.Hosts(tt.hosts...))
			}
			resp, err := jwtcache.NewTransport(c, base, opts...).RoundTrip(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := len(base.auth) == 1 && base.auth[0] != ""; got != tt.want {
				t.Errorf("token sent = %v; want %v", got, tt.want)
			}
		})
	}
}

type tenantKey struct{}

func TestMapTransport(t *testing.T) {
	srv := newRecorder(t, nil)
	m, p, _ := newTestMap(time.Hour)
	key := func(r *http.Request) (string, error) {
		if k, ok := r.Context().Value(tenantKey{}).(string); ok {
			return k, nil
		}
		return "", errors.New("no tenant in context")
	}
	client := &http.Client{Transport: jwtcache.NewMapTransport(m, key, nil)}
	for _, tenant := range []string{"acme", "globex", "acme"} {
		ctx := context.WithValue(context.Background(), tenantKey{}, tenant)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		seen := srv.seen()
		if got := testkit.Claims(t, strings.TrimPrefix(seen[len(seen)-1], "Bearer ")).Subject(); got != tenant {
			t.Errorf("request for %q carried %q's token", tenant, got)
		}
	}
	if p.count("acme") != 1 || p.count("globex") != 1 {
		t.Errorf("fetches: acme %d, globex %d; want 1 each", p.count("acme"), p.count("globex"))
	}
	if _, err := client.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "no tenant") {
		t.Errorf("request without a tenant: error = %v; want the key function's", err)
	}
	if got := len(srv.seen()); got != 3 {
		t.Errorf("requests = %d; want 3 (none without a tenant)", got)
	}
}

// scriptedBase answers the requests sent through it with its answers, in
// order (a status and a WWW-Authenticate value), then 200 OK.
type scriptedBase struct {
	answers [][2]string
	sent    atomic.Int64
}

func (b *scriptedBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: req}
	if i := int(b.sent.Add(1)) - 1; i < len(b.answers) {
		resp.StatusCode = map[string]int{"401": 401, "403": 403}[b.answers[i][0]]
		if v := b.answers[i][1]; v != "" {
			resp.Header.Set("WWW-Authenticate", v)
		}
	}
	return resp, nil
}

// TestMapTransport_KeyOncePerRequest: the key function runs once per
// request, whatever the server answers and the transport does about it.
func TestMapTransport_KeyOncePerRequest(t *testing.T) {
	const claims = `Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ=="`
	tests := []struct {
		name      string
		answers   [][2]string
		sent      int
		fetched   int64
		wantError bool
	}{
		{"200", nil, 1, 1, false},
		{"401, retried", [][2]string{{"401", `Bearer error="invalid_token"`}}, 2, 2, false},
		{"401 to the retry too", [][2]string{{"401", ""}, {"401", ""}}, 2, 2, false},
		{"claims challenge, renewed", [][2]string{{"401", claims}}, 2, 2, false},
		{"insufficient_scope", [][2]string{{"403", `Bearer error="insufficient_scope"`}}, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fetches, keys atomic.Int64
			m := jwtcache.NewCacheMap(jwtcache.Logger(nil), jwtcache.MapIssueFunction(func(_ context.Context, key string) (jwtcache.Issued, error) {
				return jwtcache.Issued{Token: key + "-" + strconv.FormatInt(fetches.Add(1), 10), ExpiresIn: time.Hour}, nil
			}))
			key := func(*http.Request) (string, error) {
				keys.Add(1)
				return "acme", nil
			}
			base := &scriptedBase{answers: tt.answers}
			req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
			resp, err := jwtcache.NewMapTransport(m, key, base).RoundTrip(req)
			if (err != nil) != tt.wantError {
				t.Fatalf("RoundTrip() error = %v; want an error: %v", err, tt.wantError)
			}
			if resp != nil {
				resp.Body.Close()
			}
			if got := keys.Load(); got != 1 {
				t.Errorf("key function called %d times; want 1", got)
			}
			if got := base.sent.Load(); got != int64(tt.sent) || fetches.Load() != tt.fetched {
				t.Errorf("sent %d requests, fetched %d tokens; want %d and %d", got, fetches.Load(), tt.sent, tt.fetched)
			}
		})
	}
}

// TestTransport_RetriesOn401WithAStore has two replicas share a store while
// the server revokes their token: each recovers on its 401 retry, and the
// second adopts the first's replacement instead of fetching its own.
func TestTransport_RetriesOn401WithAStore(t *testing.T) {
	srv := newRecorder(t, nil)
	f := newSeam()
	a, b := f.replica("billing"), f.replica("billing")
	first := mustToken(t, a)
	if mustToken(t, b) != first {
		t.Fatal("replicas do not share")
	}
	srv.revoke(first)
	for _, c := range []*jwtcache.Cache{a, b} {
		client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
		if resp := get(t, client, srv.URL); resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d; want 200 after a retry with the replacement token", resp.StatusCode)
		}
	}
	if f.issued() != 2 {
		t.Errorf("tokens issued = %d; want 2 (the first, and one replacement for both replicas)", f.issued())
	}
	seen := srv.seen()
	if len(seen) != 4 || seen[1] != seen[3] || seen[1] == "Bearer "+first {
		t.Errorf("server saw %d requests; want revoked, replacement, revoked, the same replacement", len(seen))
	}
}

// TestTransport_OneBadEndpoint: an endpoint that refuses every token (a
// misconfigured route, a pod with the wrong audience) costs its own requests
// their 401s, and the provider a fetch per backoff; requests to the endpoints
// that take the token go on being served.
func TestTransport_OneBadEndpoint(t *testing.T) {
	srv := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	})
	c, calls := countingCache(t)
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil)}
	start := time.Now()
	for range 200 {
		if resp := get(t, client, srv.URL+"/bad"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET /bad = %d; want 401", resp.StatusCode)
		}
		if resp := get(t, client, srv.URL+"/good"); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /good = %d; want 200: one endpoint's refusals must not starve the others", resp.StatusCode)
		}
	}
	// Two tokens before the backoff, then at most one per backoff (at
	// least 1s) while the test runs.
	if n, most := calls.Load(), 3+int64(time.Since(start)/time.Second); n > most {
		t.Errorf("%d fetches for 200 refusals; want at most %d, one per backoff", n, most)
	}
}

// TestTransport_HostsMismatchLogged: a request for a host outside Hosts goes
// out without the token, and the transport says so, naming the host and the
// reason, once a minute per host; never the token.
func TestTransport_HostsMismatchLogged(t *testing.T) {
	logger, logs := testkit.NewLogger()
	c := jwtcache.NewCache(jwtcache.Logger(logger), jwtcache.TokenFunction(func(context.Context) (string, error) {
		return "opaque-secret-token", nil
	}))
	var sent []string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent = append(sent, r.Header.Get("Authorization"))
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	})
	tr := jwtcache.NewTransport(c, base, jwtcache.Hosts("api.example.com"))
	for _, u := range []string{"https://other.example/a", "https://other.example/b", "https://third.example/", "https://api.example.com/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("RoundTrip(%s) error = %v", u, err)
		}
		resp.Body.Close()
	}
	if want := []string{"", "", "", "Bearer opaque-secret-token"}; !slices.Equal(sent, want) {
		t.Errorf("Authorization headers sent = %q; want %q", sent, want)
	}
	out := logs.String()
	if got := logs.Count("request sent without its token"); got != 2 {
		t.Errorf("warnings = %d; want 2 (one per host, once a minute):\n%s", got, out)
	}
	for _, want := range []string{"host=other.example", "host=third.example", "not among the transport's Hosts"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "opaque-secret-token") {
		t.Errorf("log holds the token:\n%s", out)
	}
}

// TestTransport_Misuse: a transport given nil where a cache, a map or a key
// function belongs says so at construction, and fails every request with an
// error naming the argument, unsent; it never panics in a request.
func TestTransport_Misuse(t *testing.T) {
	m := jwtcache.NewCacheMap(jwtcache.Logger(nil))
	tests := []struct {
		name string
		tr   func() *jwtcache.Transport
		want string
	}{
		{"nil cache", func() *jwtcache.Transport { return jwtcache.NewTransport(nil, nil) }, "nil *Cache"},
		{"nil map", func() *jwtcache.Transport { return jwtcache.NewMapTransport(nil, nil, nil) }, "nil *CacheMap"},
		{"nil key function", func() *jwtcache.Transport { return jwtcache.NewMapTransport(m, nil, nil) }, "nil key function"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, logs := testkit.NewLogger()
			defer swapDefaultLogger(logger)()
			tr := tt.tr()
			if !strings.Contains(logs.String(), tt.want) {
				t.Errorf("construction logged %q; want it to name %q", logs.String(), tt.want)
			}
			req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
			_, err := tr.RoundTrip(req)
			if !errors.Is(err, jwtcache.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RoundTrip() error = %v; want ErrInvalid naming %q", err, tt.want)
			}
		})
	}
}

// swapDefaultLogger makes l slog's default until the returned func is called.
func swapDefaultLogger(l *slog.Logger) func() {
	old := slog.Default()
	slog.SetDefault(l)
	return func() { slog.SetDefault(old) }
}
