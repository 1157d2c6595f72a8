package jwtcache_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// challengeServer answers requests through a fake base transport: the first
// answer as given, every later one 200 OK; it records what each request
// carried.
type challengeServer struct {
	status int
	header http.Header
	mu     sync.Mutex
	auth   []string // guarded by mu
}

func (s *challengeServer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, req.Header.Get("Authorization"))
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: req}
	if len(s.auth) == 1 {
		resp.StatusCode, resp.Header = s.status, s.header.Clone()
	}
	return resp, nil
}

func (s *challengeServer) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

func TestChallenge_Transport(t *testing.T) {
	const claimsJSON = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	const claimsB64 = "eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwidmFsdWUiOiIxNzAwMDAwMDAwIn19fQ=="
	tests := []struct {
		name      string
		status    int
		challenge string
		// want: requests sent, tokens fetched, the status the caller gets
		// (0: an error), the error it gets, the claims of the second fetch.
		sent, fetched int
		status2       int
		err           error
		claims        string
		scope         string
	}{
		{name: "200", status: 200, sent: 1, fetched: 1, status2: 200},
		{name: "401 without a challenge", status: 401, sent: 2, fetched: 2, status2: 200},
		{name: "401 invalid_token", status: 401, challenge: `Bearer error="invalid_token"`, sent: 2, fetched: 2, status2: 200},
		{name: "401 of another scheme", status: 401, challenge: `Basic realm="x"`, sent: 2, fetched: 2, status2: 200},
		{name: "401 insufficient_claims, base64", status: 401, challenge: `Bearer realm="", error="insufficient_claims", claims="` + claimsB64 + `"`,
			sent: 2, fetched: 2, status2: 200, claims: claimsJSON},
		{name: "401 insufficient_claims, JSON", status: 401, challenge: `Bearer error="insufficient_claims", claims="` + strings.ReplaceAll(claimsJSON, `"`, `\"`) + `"`,
			sent: 2, fetched: 2, status2: 200, claims: claimsJSON},
		{name: "401 insufficient_claims without claims", status: 401, challenge: `Bearer error="insufficient_claims"`, sent: 1, fetched: 1, status2: 401},
		{name: "401 insufficient_claims, claims not JSON", status: 401, challenge: `Bearer error="insufficient_claims", claims="bm90IGpzb24="`, sent: 1, fetched: 1, status2: 401},
		{name: "403 insufficient_scope", status: 403, challenge: `Bearer error="insufficient_scope", scope="orders:write"`,
			sent: 1, fetched: 1, err: jwtcache.ErrInsufficientScope, scope: "orders:write"},
		{name: "401 insufficient_scope", status: 401, challenge: `Bearer error="insufficient_scope", scope="orders:write"`,
			sent: 1, fetched: 1, err: jwtcache.ErrInsufficientScope, scope: "orders:write"},
		{name: "401 insufficient_user_authentication", status: 401, challenge: `Bearer error="insufficient_user_authentication", acr_values="phr"`,
			sent: 1, fetched: 1, err: jwtcache.ErrInsufficientUserAuthentication},
		{name: "401 use_dpop_nonce to a bearer scheme", status: 401, challenge: `DPoP error="use_dpop_nonce"`, sent: 1, fetched: 1, status2: 401},
		{name: "403 without a challenge", status: 403, sent: 1, fetched: 1, status2: 403},
		{name: "403 invalid_token", status: 403, challenge: `Bearer error="invalid_token"`, sent: 1, fetched: 1, status2: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fetches atomic.Int64
			var mu sync.Mutex
			var claims []string
			now := time.Now()
			c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(ctx context.Context) (string, error) {
				cl, _ := jwtcache.ClaimsChallenge(ctx)
				mu.Lock()
				claims = append(claims, cl)
				mu.Unlock()
				fetches.Add(1)
				return minter.Mint(now, time.Hour, nil), nil
			}))
			srv := &challengeServer{status: tt.status, header: http.Header{}}
			if tt.challenge != "" {
				srv.header.Set("WWW-Authenticate", tt.challenge)
			}
			req, _ := http.NewRequest(http.MethodPost, "https://api.example/orders", strings.NewReader("body"))
			resp, err := jwtcache.NewTransport(c, srv).RoundTrip(req)
			sent := srv.sent()
			if len(sent) != tt.sent || fetches.Load() != int64(tt.fetched) {
				t.Errorf("sent %d requests, fetched %d tokens; want %d and %d", len(sent), fetches.Load(), tt.sent, tt.fetched)
			}
			if len(sent) == 2 && sent[0] == sent[1] {
				t.Errorf("the retry carried the rejected token")
			}
			if tt.err != nil {
				var ce *jwtcache.ChallengeError
				if !errors.Is(err, tt.err) || !errors.As(err, &ce) || resp != nil {
					t.Fatalf("RoundTrip() = %v, %v; want a *ChallengeError matching %v", resp, err, tt.err)
				}
				if ce.StatusCode != tt.status || ce.Scope != tt.scope || (tt.scope != "" && !strings.Contains(err.Error(), tt.scope)) {
					t.Errorf("error %+v (%q); want status %d and scope %q named", ce, err, tt.status, tt.scope)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip() error = %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status2 {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.status2)
			}
			if tt.fetched == 2 {
				if claims[1] != tt.claims {
					t.Errorf("second fetch had claims %q; want %q", claims[1], tt.claims)
				}
			}
		})
	}
}

func TestChallenge_ErrorRedactsTheToken(t *testing.T) {
	now := time.Now()
	tok := minter.Mint(now, time.Hour, nil)
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
	srv := &challengeServer{status: 403, header: http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", error_description="token ` + tok + "\x00" + `"`}}}
	req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	_, err := jwtcache.NewTransport(c, srv).RoundTrip(req)
	if err == nil || strings.Contains(err.Error(), tok) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("error = %v; want the echoed token redacted", err)
	}
}

// TestChallenge_NoReplayWithoutGetBody: a body that cannot be sent again is
// never retried, though the rejected token is dropped.
func TestChallenge_NoReplayWithoutGetBody(t *testing.T) {
	c, fetches := countingCache(t)
	srv := &challengeServer{status: 401, header: http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}}
	req, _ := http.NewRequest(http.MethodPost, "https://api.example/", io.NopCloser(strings.NewReader("once")))
	req.GetBody = nil
	resp, err := jwtcache.NewTransport(c, srv).RoundTrip(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("RoundTrip() = %v, %v; want the 401", resp, err)
	}
	resp.Body.Close()
	if n := len(srv.sent()); n != 1 {
		t.Errorf("sent %d requests; want 1", n)
	}
	if _, err := c.EnsureToken(context.Background()); err != nil || fetches.Load() != 2 {
		t.Errorf("after the 401: %d fetches (err %v); want the rejected token dropped and a second fetch", fetches.Load(), err)
	}
}

func TestChallenge_PlainHTTPRefused(t *testing.T) {
	tests := []struct {
		url   string
		allow bool
		sent  bool
	}{
		{"https://api.example/", false, true},
		{"http://127.0.0.1:8080/", false, true},
		{"http://127.9.9.9/", false, true},
		{"http://[::1]:8080/", false, true},
		{"http://LocalHost:8080/", false, true},
		{"http://api.example/", false, false},
		{"http://10.0.0.1/", false, false},
		{"ws://api.example/", false, false},
		{"http://api.example/", true, true},
	}
	for _, tt := range tests {
		c, fetches := countingCache(t)
		srv := &challengeServer{status: 200}
		var opts []jwtcache.TransportOption
		if tt.allow {
			opts = append(opts, jwtcache.InsecureAllowPlainHTTP())
		}
		req, _ := http.NewRequest(http.MethodGet, tt.url, nil)
		resp, err := jwtcache.NewTransport(c, srv, opts...).RoundTrip(req)
		if tt.sent {
			if err != nil || len(srv.sent()) != 1 {
				t.Errorf("%s (allowed %v): %v, %d sent; want it sent with the token", tt.url, tt.allow, err, len(srv.sent()))
				continue
			}
			resp.Body.Close()
			continue
		}
		if !errors.Is(err, jwtcache.ErrInsecureRequest) || len(srv.sent()) != 0 || fetches.Load() != 0 {
			t.Errorf("%s: err %v, %d sent, %d fetched; want ErrInsecureRequest, nothing sent or fetched", tt.url, err, len(srv.sent()), fetches.Load())
		}
	}
}

// TestChallenge_ClaimsFetchFails: a claims challenge whose token cannot be
// had (claims no client-credentials token can carry) leaves the token cached:
// the challenged request gets its 401, and other requests go on with the
// token.
func TestChallenge_ClaimsFetchFails(t *testing.T) {
	now := time.Now()
	var fetches atomic.Int64
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(ctx context.Context) (string, error) {
		fetches.Add(1)
		if _, ok := jwtcache.ClaimsChallenge(ctx); ok {
			return "", errors.New("interaction_required")
		}
		return minter.Mint(now, time.Hour, nil), nil
	}))
	srv := &challengeServer{status: 401, header: http.Header{"Www-Authenticate": {`Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"`}}}
	tr := jwtcache.NewTransport(c, srv)
	req, _ := http.NewRequest(http.MethodGet, "https://api.example/needs-mfa", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("RoundTrip() = %v, %v; want the 401", resp, err)
	}
	resp.Body.Close()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, "https://api.example/other", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("another request after the failed claims fetch: %v, %v; want 200", resp, err)
		}
		resp.Body.Close()
	}
	sent := srv.sent()
	if len(sent) != 4 || sent[0] != sent[3] {
		t.Errorf("sent %d requests; want 4, all with the first token", len(sent))
	}
	if fetches.Load() != 2 {
		t.Errorf("%d fetches; want 2 (the token, the failed one with the claims)", fetches.Load())
	}
}

// closeTracker is a response body that records whether it was closed.
type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (b *closeTracker) Close() error { b.closed.Store(true); return nil }

// refusingBase answers every request with a 403 insufficient_scope whose
// body it tracks.
type refusingBase struct{ body *closeTracker }

func (b *refusingBase) RoundTrip(req *http.Request) (*http.Response, error) {
	h := http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="admin"`}}
	return &http.Response{StatusCode: 403, Header: h, Body: b.body, Request: req}, nil
}

func TestChallenge_RefusalClosesTheBody(t *testing.T) {
	c, _ := countingCache(t)
	base := &refusingBase{body: &closeTracker{Reader: strings.NewReader("forbidden")}}
	req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	if _, err := jwtcache.NewTransport(c, base).RoundTrip(req); !errors.Is(err, jwtcache.ErrInsufficientScope) {
		t.Fatalf("RoundTrip() error = %v; want ErrInsufficientScope", err)
	}
	if !base.body.closed.Load() {
		t.Error("the refused response's body was not closed")
	}
}

// claimsServer answers 401 with a claims challenge to a request whose token
// was not fetched with claims (it lacks the "+claims" mark), 200 otherwise.
type claimsServer struct{ sent atomic.Int64 }

func (s *claimsServer) RoundTrip(req *http.Request) (*http.Response, error) {
	s.sent.Add(1)
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: req}
	if !strings.HasSuffix(req.Header.Get("Authorization"), "+claims") {
		resp.StatusCode = http.StatusUnauthorized
		resp.Header.Set("WWW-Authenticate", `Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ=="`)
	}
	return resp, nil
}

// claimsIssuer issues opaque tokens marked "+claims" when the fetch carries
// a claims challenge.
func claimsIssuer(n *atomic.Int64) jwtcache.IssueFunc {
	return func(ctx context.Context) (jwtcache.Issued, error) {
		tok := "tok-" + strconv.FormatInt(n.Add(1), 10)
		if _, ok := jwtcache.ClaimsChallenge(ctx); ok {
			tok += "+claims"
		}
		return jwtcache.Issued{Token: tok, ExpiresIn: time.Hour}, nil
	}
}

// TestChallenge_ClaimsUnderLoad: while other goroutines use the cache, each
// claims challenge is met with a token fetched with the claims.
func TestChallenge_ClaimsUnderLoad(t *testing.T) {
	var n atomic.Int64
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.IssueFunction(claimsIssuer(&n)))
	tr := jwtcache.NewTransport(c, &claimsServer{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					c.EnsureToken(context.Background())
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	for i := range 50 {
		c.Invalidate() // an ordinary token again, which the server challenges
		req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("round %d: %v, %v; want 200 with a token fetched with the claims", i, resp, err)
		}
		resp.Body.Close()
	}
}

// TestChallenge_ClaimsPerKeyAndStore: the claims reach a CacheMap's token
// function through NewMapTransport, and a claims fetch adopts no token that
// another replica saved.
func TestChallenge_ClaimsPerKeyAndStore(t *testing.T) {
	clk := newClock()
	store := newMemStore(clk)
	var n atomic.Int64
	issue := claimsIssuer(&n)
	m := jwtcache.NewCacheMap(jwtcache.Name("apis"), jwtcache.SharedStore(store), jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.MapIssueFunction(func(ctx context.Context, key string) (jwtcache.Issued, error) { return issue(ctx) }))
	key := func(r *http.Request) (string, error) { return r.Header.Get("X-Tenant"), nil }
	tr := jwtcache.NewMapTransport(m, key, &claimsServer{})
	if _, err := m.EnsureToken(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	// Another replica's token, without the claims, saved meanwhile.
	if err := store.Save(context.Background(), "apis:acme", "other-replica", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	req.Header.Set("X-Tenant", "acme")
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("RoundTrip() = %v, %v; want 200 with acme's token fetched with the claims", resp, err)
	}
	resp.Body.Close()
	if tok, _ := m.EnsureToken(context.Background(), "acme"); !strings.HasSuffix(tok, "+claims") {
		t.Errorf("acme's token is %q; want the one fetched with the claims", tok)
	}
}

// TestChallenge_ClaimsDuringRefresh: a claims challenge that comes while a
// refresh without the claims is under way, or just after such a refresh
// replaced the challenged token, is met with a token fetched with the claims
// (issue 18: it got the refresh's token, and its 401). A burst of such
// challenges makes one fetch with the claims.
func TestChallenge_ClaimsDuringRefresh(t *testing.T) {
	for _, tt := range []struct {
		name      string
		endsFirst bool // the refresh ends before the challenges come back
	}{{"refresh under way", false}, {"refresh just ended", true}} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			var n, withClaims atomic.Int64
			gate := make(chan struct{})
			started := make(chan struct{}, 1)
			issue := claimsIssuer(&n)
			c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.Clock(clk.Now), jwtcache.IssueFunction(func(ctx context.Context) (jwtcache.Issued, error) {
				if _, ok := jwtcache.ClaimsChallenge(ctx); ok {
					withClaims.Add(1)
				} else if n.Load() > 0 {
					started <- struct{}{}
					<-gate // the refresh, held until the test lets it end
				}
				return issue(ctx)
			}))
			first, err := c.EnsureToken(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(50 * time.Minute) // the refresh window: the next call starts a refresh
			if _, err := c.EnsureToken(context.Background()); err != nil {
				t.Fatal(err)
			}
			<-started
			const burst = 5
			var sent atomic.Int64
			var once sync.Once
			srv := roundTripFunc(func(req *http.Request) (*http.Response, error) {
				if sent.Add(1) == burst && tt.endsFirst {
					// The refresh ends and replaces the challenged token
					// before the challenges come back.
					once.Do(func() { close(gate) })
					for tok, _ := c.EnsureToken(context.Background()); tok == first; tok, _ = c.EnsureToken(context.Background()) {
						runtime.Gosched()
					}
				}
				return (&claimsServer{}).RoundTrip(req)
			})
			tr := jwtcache.NewTransport(c, srv)
			errs := make(chan error, burst)
			for range burst {
				go func() {
					req, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
					resp, err := tr.RoundTrip(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = errors.New("status " + strconv.Itoa(resp.StatusCode))
						}
					}
					errs <- err
				}()
			}
			if !tt.endsFirst {
				for sent.Load() < burst { // every request challenged, the refresh still held
					runtime.Gosched()
				}
				once.Do(func() { close(gate) })
			}
			for range burst {
				if err := <-errs; err != nil {
					t.Errorf("RoundTrip(): %v; want 200 with a token fetched with the claims", err)
				}
			}
			if got := withClaims.Load(); got != 1 {
				t.Errorf("fetches with the claims = %d; want 1 for the burst", got)
			}
		})
	}
}

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
