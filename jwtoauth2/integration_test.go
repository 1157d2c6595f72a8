package jwtoauth2_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
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
	"github.com/seed7aeb0c6e/jwtcache/jwtoauth2"
)

// idp is a real OAuth2 server, oauth2-mock-server from npm, run by node on
// 127.0.0.1 (testdata/idp/server.mjs).
type idp struct {
	url    string
	issued atomic.Int64
	stdin  io.WriteCloser
	events chan string   // STOPPED, STARTED
	exited chan struct{} // closed when the server's output ends
}

// startIDP starts the server with tokens that live for lifetime. Without node
// or the npm packages (`make test` installs them), the test is skipped, unless
// CI is set: there it must run.
func startIDP(t *testing.T, lifetime time.Duration) *idp {
	t.Helper()
	dir := filepath.Join("testdata", "idp")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "oauth2-mock-server"))
	}
	if err != nil {
		msg := fmt.Sprintf("integration test needs node and `npm ci` in %s (make test does it): %v", dir, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("TOKEN_LIFETIME=%d", int(lifetime.Seconds())))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &idp{stdin: stdin, events: make(chan string, 4), exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(s.exited) // stdout closes when the server exits
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			switch line := lines.Text(); {
			case strings.HasPrefix(line, "READY "):
				ready <- strings.TrimPrefix(line, "READY ")
			case line == "ISSUED":
				s.issued.Add(1)
			case line == "STOPPED" || line == "STARTED":
				s.events <- line
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close() // the server exits when its stdin closes
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	select {
	case s.url = <-ready:
	case <-s.exited:
		t.Fatal("oauth2-mock-server exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("oauth2-mock-server did not start within 30s")
	}
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
	if _, err := io.WriteString(s.stdin, cmd+"\n"); err != nil {
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
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	verify, err := jwtcache.JWKS(ctx, s.url+"/jwks", nil, jwa.RS256)
	if err != nil {
		t.Fatal(err)
	}
	base := []jwtcache.Option{
		jwtcache.Name("integration"), jwtcache.Logger(nil),
		jwtcache.TokenFunction(jwtoauth2.ClientCredentials(s.config())),
		jwtcache.ParseOptions(verify),
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

// TestIntegration_ProviderOutage stops the server while a token is valid:
// callers keep it until it expires; once the server is back, they get a new
// one.
func TestIntegration_ProviderOutage(t *testing.T) {
	const lifetime = 4 * time.Second
	s := startIDP(t, lifetime)
	c := s.verifiedCache(t, jwtcache.Headroom(500*time.Millisecond), jwtcache.Backoff(100*time.Millisecond, 200*time.Millisecond))
	first, err := c.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.command(t, "stop", "STOPPED")

	// While the token lives, every call gets it, with no error.
	for time.Until(first.Expiry) > 100*time.Millisecond {
		tok, err := c.Token(context.Background())
		if err != nil && time.Until(first.Expiry) > 50*time.Millisecond {
			t.Fatalf("Token() during the outage, %v before expiry: %v", time.Until(first.Expiry), err)
		}
		if err == nil && tok.Value != first.Value {
			t.Fatalf("Token() during the outage returned a new token")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Once it has expired, the outage shows.
	for time.Now().Before(first.Expiry) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.EnsureToken(context.Background()); err == nil {
		t.Fatalf("EnsureToken() after expiry with the server down = nil error")
	}

	s.command(t, "start", "STARTED")
	var tok string
	deadline := time.Now().Add(10 * time.Second)
	for tok, err = c.EnsureToken(context.Background()); err != nil; tok, err = c.EnsureToken(context.Background()) {
		if time.Now().After(deadline) || !errors.Is(err, jwtcache.ErrBackoff) && !strings.Contains(err.Error(), "fetch token") {
			t.Fatalf("EnsureToken() after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tok == first.Value {
		t.Errorf("EnsureToken() after restart = the expired token")
	}
}
