package jwtoauth2_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtoauth2"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// idp is a real OAuth2 server, oauth2-mock-server from npm, run by node on
// 127.0.0.1 (testdata/idp/server.mjs).
type idp struct {
	url    string
	issued atomic.Int64
	proc   *testkit.Process
	events chan string // STOPPED, STARTED
}

// startIDP starts the server with tokens that live for lifetime. Without node
// or the npm packages (`make test` installs them), the test is skipped, unless
// CI is set: there it must run. The server exits when the test ends (its
// stdin closes); its output is logged if the test failed.
func startIDP(t *testing.T, lifetime time.Duration) *idp {
	t.Helper()
	dir := filepath.Join("testdata", "idp")
	s := &idp{events: make(chan string, 4)}
	s.proc = testkit.Start(t, testkit.Command{
		Name:      "oauth2-mock-server",
		Path:      testkit.Node(t, dir, "oauth2-mock-server"),
		Args:      []string{"server.mjs"},
		Dir:       dir,
		Env:       []string{fmt.Sprintf("TOKEN_LIFETIME=%d", int(lifetime.Seconds()))},
		ReadyLine: "READY", // READY <issuer URL>
		OnLine: func(line string) {
			switch line {
			case "ISSUED":
				s.issued.Add(1)
			case "STOPPED", "STARTED":
				s.events <- line
			}
		},
		Stdin: true,
	})
	s.url = s.proc.Ready()
	return s
}

// issuedSoon returns the tokens issued, once the server's report of them
// has arrived: it prints ISSUED as it signs, which reaches the test a moment
// after the token reaches the client.
func (s *idp) issuedSoon(atLeast int64) int64 {
	deadline := time.Now().Add(5 * time.Second)
	for s.issued.Load() < atLeast && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return s.issued.Load()
}

// command sends stop or start and waits for the server to confirm it.
func (s *idp) command(t *testing.T, cmd, want string) {
	t.Helper()
	if err := s.proc.Send(cmd); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-s.events:
		if got != want {
			t.Fatalf("server answered %q to %q", got, cmd)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("server did not answer %q", cmd)
	}
}

func (s *idp) config() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: "billing-service", ClientSecret: "s3cret", TokenURL: s.url + "/token"}
}

// verifiedCache returns a cache that fetches client-credentials tokens from
// the server and verifies them against its JWKS.
func (s *idp) verifiedCache(t *testing.T, opts ...jwtcache.Option) *jwtcache.Cache {
	t.Helper()
	keys, err := verify.NewKeySet(s.url + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	verified, err := verify.ParseOption(keys, jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	base := []jwtcache.Option{
		jwtcache.Name("integration"), jwtcache.Logger(nil),
		jwtcache.TokenFunction(jwtoauth2.ClientCredentials(s.config())),
		jwtcache.ParseOptions(verified),
	}
	return jwtcache.NewCache(append(base, opts...)...)
}

// resourceServer is an API on 127.0.0.1 that accepts only bearer tokens
// signed by the server's keys and not expired, as a real resource server does.
func resourceServer(t *testing.T, s *idp) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	keys, err := jwk.Fetch(context.Background(), s.url+"/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var rejected atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, err := jwt.ParseString(raw, jwt.WithKeySet(keys), jwt.WithIssuer(s.url)); !ok || err != nil {
			rejected.Add(1)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(api.Close)
	return api, &rejected
}

func TestIntegration_ClientCredentialsVerified(t *testing.T) {
	s := startIDP(t, time.Hour)
	c := s.verifiedCache(t, jwtcache.RejectUnparsable(true))
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	if d := time.Until(tok.Expiry); d < 58*time.Minute || d > time.Hour {
		t.Errorf("token expires in %v; want about an hour", d)
	}
	for range 100 {
		if got, err := c.EnsureToken(context.Background()); err != nil || got != tok.Value {
			t.Fatalf("EnsureToken() = new token or error %v; want the cached one", err)
		}
	}
	if got := s.issuedSoon(1); got != 1 {
		t.Errorf("tokens issued = %d; want 1", got)
	}
}

// TestIntegration_ServiceToService has many goroutines call a resource server
// through the transport for several token lifetimes: every request must be
// authorized, and the tokens issued bounded by the lifetimes elapsed.
func TestIntegration_ServiceToService(t *testing.T) {
	const lifetime = 5 * time.Second
	s := startIDP(t, lifetime)
	api, rejected := resourceServer(t, s)
	c := s.verifiedCache(t) // on defaults: they must suit a 5s token
	client := &http.Client{Transport: jwtcache.NewTransport(c, nil,
		jwtcache.Hosts(strings.TrimPrefix(api.URL, "http://")))}

	start := time.Now()
	deadline := start.Add(11 * time.Second)
	var calls, failed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				resp, err := client.Get(api.URL + "/invoices")
				calls.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() != 0 || rejected.Load() != 0 {
		t.Errorf("%d of %d requests failed, %d tokens rejected; want none", failed.Load(), calls.Load(), rejected.Load())
	}
	// A token's local life is its lifetime less a second (iat's
	// truncation), 4s, and it is refreshed no earlier than 0.75 of that:
	// at most one token per 3s, plus the first, plus one for slack.
	if got, max := s.issuedSoon(2), int64(elapsed/(3*time.Second))+2; got > max || got < 2 {
		t.Errorf("tokens issued = %d in %v; want 2..%d", got, elapsed.Round(time.Second), max)
	}
	t.Logf("%d requests in %v, %d tokens issued", calls.Load(), elapsed.Round(time.Millisecond), s.issued.Load())
}

// TestIntegration_ProviderOutage stops the server while a token is valid and
// keeps it down past the token's expiry, with callers calling throughout, on
// the cache's defaults: callers keep the token until it expires, are never
// handed an expired one, and once the server is back, the first of them is
// served a new token within the retry policy's 2 seconds (and a little for
// the server's own start).
func TestIntegration_ProviderOutage(t *testing.T) {
	const lifetime = 5 * time.Second
	s := startIDP(t, lifetime)
	c := s.verifiedCache(t)
	first, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var failedLive, expired int // calls that failed while first lived; expired tokens handed out
	var servedNew time.Time     // when a caller first got a token other than first
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := c.Token(context.Background())
				now := time.Now()
				mu.Lock()
				switch {
				case err != nil && now.Before(first.Expiry.Add(-50*time.Millisecond)):
					failedLive++
				case err == nil && !now.Before(tok.Expiry):
					expired++
				case err == nil && tok.Value != first.Value && servedNew.IsZero():
					servedNew = now
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	s.command(t, "stop", "STOPPED")
	downAt := time.Now()
	// Down until two seconds past the token's expiry: callers are dry.
	time.Sleep(time.Until(first.Expiry.Add(2 * time.Second)))
	s.command(t, "start", "STARTED")
	upAt := time.Now()
	deadline := upAt.Add(10 * time.Second)
	for {
		mu.Lock()
		done := !servedNew.IsZero()
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close

	mu.Lock()
	defer mu.Unlock()
	if failedLive != 0 || expired != 0 {
		t.Errorf("%d calls failed while the token lived, %d expired tokens handed out; want none", failedLive, expired)
	}
	if servedNew.IsZero() {
		t.Fatalf("no caller served a new token within 10s of the server's restart")
	}
	recovery := servedNew.Sub(upAt)
	if recovery > 2500*time.Millisecond {
		t.Errorf("first new token reached a caller %v after the server answered again; want within 2s (+0.5s slack)", recovery)
	}
	t.Logf("server down %v (token expired %v into it); first new token reached a caller %v after restart",
		upAt.Sub(downAt).Round(time.Millisecond), first.Expiry.Sub(downAt).Round(time.Millisecond), recovery.Round(time.Millisecond))
}

// TestIntegration_CacheMapShortTokens has two tenants of a CacheMap, on the
// defaults, fetch 5-second tokens from the server for several lifetimes while
// goroutines call both: each tenant is refreshed no earlier than 0.75 of a
// token's 4-second local life.
func TestIntegration_CacheMapShortTokens(t *testing.T) {
	s := startIDP(t, 5*time.Second)
	var mu sync.Mutex
	perTenant := map[string]int{}
	m := jwtcache.NewCacheMap(jwtcache.MapName("tenants"), jwtcache.Logger(nil),
		jwtcache.MapTokenFunction(func(ctx context.Context, tenant string) (string, error) {
			mu.Lock()
			perTenant[tenant]++
			mu.Unlock()
			cfg := s.config()
			cfg.Scopes = []string{tenant}
			return jwtoauth2.ClientCredentials(cfg)(ctx)
		}))
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		tenant := []string{"acme", "globex"}[i%2]
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := m.EnsureToken(context.Background(), tenant); err != nil {
					failed.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if failed.Load() != 0 {
		t.Errorf("%d calls failed; want none", failed.Load())
	}
	max := int(elapsed/(3*time.Second)) + 2
	for _, tenant := range []string{"acme", "globex"} {
		if got := perTenant[tenant]; got > max || got < 2 {
			t.Errorf("tokens fetched for %s = %d in %v; want 2..%d", tenant, got, elapsed.Round(time.Second), max)
		}
	}
	t.Logf("tokens fetched in %v: %v (server issued %d)", elapsed.Round(time.Millisecond), perTenant, s.issuedSoon(2))
}
