package provider_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// down makes p refuse every request while it is set, as a provider that is
// down (its load balancer answering 503) does, and counts those it refused.
func down(p *idp) (set func(bool), refused *atomic.Int32) {
	var isDown atomic.Bool
	refused = &atomic.Int32{}
	p.intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if isDown.Load() {
			refused.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
	return isDown.Store, refused
}

// TestIssuer_StartWithoutProvider: a service starts while its provider is
// down (NewIssuer and Client make no request), its cache's calls fail and
// back off (the provider sees one discovery per delay, not one per call), and
// it gets its first token once the provider answers. New, the fail-fast way,
// fails at once.
func TestIssuer_StartWithoutProvider(t *testing.T) {
	p := newIDP(t, false)
	setDown, refused := down(p)
	setDown(true)
	clk := newClock()
	hc := provider.HTTPClient(p.srv.Client())

	if _, err := provider.New(t.Context(), p.srv.URL, basic, hc); err == nil {
		t.Fatal("New() with the provider down: error = nil; want the discovery's")
	}
	before := refused.Load()

	iss, err := provider.NewIssuer(p.srv.URL, hc, provider.Clock(clk.Now))
	if err != nil {
		t.Fatalf("NewIssuer() error = %v", err)
	}
	c, err := iss.Client(basic)
	if err != nil {
		t.Fatalf("Client() error = %v", err)
	}
	if n := refused.Load() - before; n != 0 {
		t.Fatalf("NewIssuer and Client made %d requests; want none", n)
	}
	cache := jwtcache.NewCache(jwtcache.IssueFunction(c.Issue), jwtcache.Clock(clk.Now), jwtcache.Logger(nil))
	ctx := context.Background()
	if _, err := cache.EnsureToken(ctx); err == nil {
		t.Fatalf("EnsureToken() with the provider down: error = %v; want one", err)
	}
	for range 20 { // the cache backs off: no request
		if _, err := cache.EnsureToken(ctx); !errors.Is(err, jwtcache.ErrBackoff) {
			t.Fatalf("EnsureToken() during the backoff: error = %v; want ErrBackoff", err)
		}
	}
	if n := refused.Load() - before; n != 1 {
		t.Errorf("discoveries while down = %d; want 1 (then the backoff)", n)
	}
	// Past the cache's backoff, the Issuer's may still hold: the token
	// request fails at once with ErrDiscoveryBackoff, or asks once more.
	clk.Advance(2 * time.Second)
	_, err = cache.EnsureToken(ctx)
	if n := refused.Load() - before; err == nil || n > 2 {
		t.Errorf("EnsureToken() 2s on, still down: error = %v after %d discoveries; want an error, at most 2", err, n)
	}

	setDown(false)
	clk.Advance(5 * time.Second) // past both backoffs
	tok, err := cache.EnsureToken(ctx)
	if err != nil || tok == "" {
		t.Fatalf("EnsureToken() once the provider is up: %q, %v; want a token", tok, err)
	}
	if got := c.Metadata().TokenEndpoint; got != p.srv.URL+"/token" {
		t.Errorf("Metadata().TokenEndpoint = %q; want the discovered one", got)
	}
}

// TestIssuer_SharedMetadata: the clients of one Issuer (a tenant each)
// share its metadata: discovered once for all, refreshed once for all.
func TestIssuer_SharedMetadata(t *testing.T) {
	p := newIDP(t, false)
	clk := newClock()
	iss, err := provider.NewIssuer(p.srv.URL, provider.HTTPClient(p.srv.Client()), provider.Clock(clk.Now), provider.MetadataTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var clients []*provider.Client
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		c, err := iss.Client(provider.ClientSecretBasic(id, "s3cret-"+id))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	issueAll := func() {
		t.Helper()
		for _, c := range clients {
			if _, err := c.Issue(t.Context()); err != nil {
				t.Fatalf("Issue() error = %v", err)
			}
		}
	}
	issueAll()
	issueAll()
	if n := p.discoveries.Load(); n != 1 {
		t.Errorf("discoveries for 3 clients = %d; want 1", n)
	}
	p.set("token_endpoint", p.srv.URL+"/token2")
	clk.Advance(61 * time.Minute)
	issueAll() // starts one refresh, in the background
	for deadline := time.Now().Add(10 * time.Second); p.discoveries.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); clients[2].Metadata().TokenEndpoint != p.srv.URL+"/token2"; {
		if time.Now().After(deadline) {
			t.Fatalf("client c never saw the refreshed metadata")
		}
		issueAll()
	}
	if n := p.discoveries.Load(); n != 2 {
		t.Errorf("discoveries after one TTL = %d; want 2 (one refresh for all)", n)
	}
	m, err := iss.Metadata(t.Context())
	if err != nil || m.TokenEndpoint != p.srv.URL+"/token2" {
		t.Errorf("Issuer.Metadata() = %+v, %v; want the refreshed document", m, err)
	}
}
