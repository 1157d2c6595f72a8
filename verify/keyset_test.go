package verify_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestKeySet_Key(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1", "k2")}
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk)
	ctx := context.Background()
	for _, kid := range []string{"k1", "k2", "k1"} {
		k, err := s.Key(ctx, kid)
		if err != nil {
			t.Fatalf("Key(%q) error = %v", kid, err)
		}
		if got := k.KeyID(); got != kid {
			t.Errorf("Key(%q).KeyID() = %q; want %q", kid, got, kid)
		}
	}
	if got, want := src.requests.Load(), int64(1); got != want {
		t.Errorf("requests = %d; want %d", got, want)
	}
	st := s.Stats()
	if st.Requests != 3 || st.Hits != 3 || st.Misses != 0 || st.Refreshes != 1 || st.Keys != 2 {
		t.Errorf("Stats() = %+v; want 3 requests, 3 hits, 0 misses, 1 refresh, 2 keys", st)
	}
	if got, want := st.LastRefresh, clk.Now(); !got.Equal(want) {
		t.Errorf("Stats().LastRefresh = %v; want %v", got, want)
	}
}

func TestKeySet_MaxAgeClamp(t *testing.T) {
	clk := ksNewClock()
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", nil, 5 * time.Minute},
		{"max-age below MinTTL", http.Header{"Cache-Control": {"public, max-age=60"}}, 5 * time.Minute},
		{"max-age", http.Header{"Cache-Control": {"max-age=600"}}, 10 * time.Minute},
		{"max-age less Age", http.Header{"Cache-Control": {"max-age=900"}, "Age": {"300"}}, 10 * time.Minute},
		{"max-age above MaxTTL", http.Header{"Cache-Control": {"max-age=999999999999"}}, 24 * time.Hour},
		{"no-store", http.Header{"Cache-Control": {"no-store"}}, 5 * time.Minute},
		{"no-cache wins over max-age", http.Header{"Cache-Control": {"max-age=3600, no-cache"}}, 5 * time.Minute},
		{"invalid max-age", http.Header{"Cache-Control": {"max-age=soon"}}, 5 * time.Minute},
		// The server sends a Date of its own clock's; the test's is the fake.
		{"Expires", http.Header{
			"Date":    {clk.Now().Format(http.TimeFormat)},
			"Expires": {clk.Now().Add(2 * time.Hour).Format(http.TimeFormat)},
		}, 2 * time.Hour},
		{"Expires less Date", http.Header{
			"Date":    {clk.Now().Add(-time.Hour).Format(http.TimeFormat)},
			"Expires": {clk.Now().Add(2 * time.Hour).Format(http.TimeFormat)},
		}, 3 * time.Hour},
		{"max-age wins over Expires", http.Header{
			"Cache-Control": {"max-age=1200"},
			"Expires":       {clk.Now().Add(2 * time.Hour).Format(http.TimeFormat)},
		}, 20 * time.Minute},
		{"invalid Expires", http.Header{"Expires": {"0"}}, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &ksSource{body: ksDoc(t, "k1"), header: tt.header}
			s := ksNew(t, ksServe(t, src), clk)
			if _, err := s.Key(context.Background(), "k1"); err != nil {
				t.Fatalf("Key() error = %v", err)
			}
			st := s.Stats()
			if got := st.Expiry.Sub(st.LastRefresh); got != tt.want {
				t.Errorf("TTL = %v; want %v", got, tt.want)
			}
		})
	}
}

// ksConditional serves a key set with a validator, answering 304 to a
// request that presents it, and counts those requests.
type ksConditional struct {
	ksSource
	etag, lastModified string
	conditional        int // guarded by ksSource.mu
}

func (c *ksConditional) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	match := (c.etag != "" && r.Header.Get("If-None-Match") == c.etag) ||
		(c.lastModified != "" && r.Header.Get("If-Modified-Since") == c.lastModified)
	if match {
		c.conditional++
	}
	c.mu.Unlock()
	w.Header().Set("Cache-Control", "max-age=300")
	if c.etag != "" {
		w.Header().Set("ETag", c.etag)
	}
	if c.lastModified != "" {
		w.Header().Set("Last-Modified", c.lastModified)
	}
	if match {
		c.requests.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	c.ksSource.ServeHTTP(w, r)
}

// testRevalidation checks that a key set revalidates with src's validator,
// and that the 304 renews the set.
func testRevalidation(t *testing.T, src *ksConditional) {
	clk := ksNewClock()
	srv := ksServe(t, src)
	s := ksNew(t, srv, clk)
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() error = %v", err)
	}
	clk.Advance(301 * time.Second) // expired: the next call waits for a fetch
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() after expiry error = %v", err)
	}
	src.mu.Lock()
	conditional := src.conditional
	src.mu.Unlock()
	if got, want := conditional, 1; got != want {
		t.Errorf("conditional requests = %d; want %d", got, want)
	}
	st := s.Stats()
	if st.NotModified != 1 || st.Refreshes != 2 || st.StaleServes != 0 {
		t.Errorf("Stats() = %+v; want 1 not modified, 2 refreshes, 0 stale serves", st)
	}
	if got, want := st.Expiry, clk.Now().Add(300*time.Second); !got.Equal(want) {
		t.Errorf("Stats().Expiry = %v; want %v (renewed by the 304)", got, want)
	}
	if got, want := st.SnapshotAge, 301*time.Second; got != want {
		t.Errorf("Stats().SnapshotAge = %v; want %v (a 304 renews, it does not refetch)", got, want)
	}
	clk.Advance(301 * time.Second) // and the validator is kept for the next
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() after the second expiry error = %v", err)
	}
	if got, want := s.Stats().NotModified, uint64(2); got != want {
		t.Errorf("Stats().NotModified = %d; want %d", got, want)
	}
}

func TestKeySet_ETag(t *testing.T) {
	src := &ksConditional{etag: `"v1"`}
	src.body = ksDoc(t, "k1")
	testRevalidation(t, src)
}

func TestKeySet_LastModified(t *testing.T) {
	src := &ksConditional{lastModified: "Wed, 01 Jan 2025 00:00:00 GMT"}
	src.body = ksDoc(t, "k1")
	testRevalidation(t, src)
}

// ksGate is a key set server whose answers after the first wait for release.
type ksGate struct {
	ksSource
	arrived chan struct{} // receives once per gated request
	release chan struct{} // closed to let gated requests go on
}

func (g *ksGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.requests.Load() > 0 {
		g.arrived <- struct{}{}
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	g.ksSource.ServeHTTP(w, r)
}

func TestKeySet_RefreshAhead(t *testing.T) {
	src := &ksGate{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	src.set(ksDoc(t, "k1"), http.Header{"Cache-Control": {"max-age=1000"}})
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk)
	// The guard only turns a regression into a failure instead of a hang.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() error = %v", err)
	}

	clk.Advance(810 * time.Second) // in the refresh window: from 750-800s
	src.set(ksDoc(t, "k1", "k2"), http.Header{"Cache-Control": {"max-age=1000"}})
	for range 3 {
		// The server holds the refresh until release: a caller that waited
		// for it would not return.
		if _, err := s.Key(ctx, "k1"); err != nil {
			t.Fatalf("Key() in the refresh window error = %v; want the cached key at once", err)
		}
	}
	<-src.arrived // the refresh is in flight
	if got, want := s.Stats().Refreshes, uint64(2); got != want {
		t.Errorf("Stats().Refreshes = %d; want %d (one background refresh)", got, want)
	}
	close(src.release)
	// k2 is new: the call joins the refresh in flight or finds its set.
	if _, err := s.Key(ctx, "k2"); err != nil {
		t.Fatalf("Key(k2) after the refresh error = %v", err)
	}
	if got, want := src.requests.Load(), int64(2); got != want {
		t.Errorf("requests = %d; want %d", got, want)
	}
	if got, want := s.Stats().Expiry, clk.Now().Add(1000*time.Second); !got.Equal(want) {
		t.Errorf("Stats().Expiry = %v; want %v", got, want)
	}
}

// TestKeySet_UnknownKID: the first kid the set lacks after a due fetch
// fetches the set at once (a key published just after it); the next only
// MinRefreshInterval after, and meanwhile the lookup is put off
// (ErrKeySetStale, the middleware's 503), not refused.
func TestKeySet_UnknownKID(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")}
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk)
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key(k1) error = %v", err)
	}
	src.set(ksDoc(t, "k1", "k2"), nil) // the issuer rotates, just after the fetch

	clk.Advance(time.Second)
	k, err := s.Key(ctx, "k2")
	if err != nil {
		t.Fatalf("Key(k2) 1s after a due fetch error = %v; want the new key, fetched at once", err)
	}
	if got, want := k.KeyID(), "k2"; got != want {
		t.Errorf("Key(k2).KeyID() = %q; want %q", got, want)
	}
	if got, want := src.requests.Load(), int64(2); got != want {
		t.Errorf("requests = %d; want %d (one refresh)", got, want)
	}

	src.set(ksDoc(t, "k1", "k2", "k3"), nil) // and again, 9s later
	clk.Advance(9 * time.Second)
	_, err = s.Key(ctx, "k3")
	if !errors.Is(err, verify.ErrKeySetUnknownKID) || !errors.Is(err, verify.ErrKeySetStale) {
		t.Fatalf("Key(k3) 9s after a refresh for a kid error = %v; want ErrKeySetUnknownKID and ErrKeySetStale (put off)", err)
	}
	if got, want := src.requests.Load(), int64(2); got != want {
		t.Errorf("requests = %d; want %d (rate-limited)", got, want)
	}
	clk.Advance(time.Second)
	if _, err := s.Key(ctx, "k3"); err != nil {
		t.Fatalf("Key(k3) 10s after error = %v", err)
	}
	if _, err := s.Key(ctx, "k4"); !errors.Is(err, verify.ErrKeySetUnknownKID) || !errors.Is(err, verify.ErrKeySetStale) {
		t.Errorf("Key(k4) error = %v; want ErrKeySetUnknownKID, put off", err)
	}
	clk.Advance(10 * time.Second)
	if _, err := s.Key(ctx, "k4"); !errors.Is(err, verify.ErrKeySetUnknownKID) || errors.Is(err, verify.ErrKeySetStale) {
		t.Errorf("Key(k4) after a refresh that lacks it too: error = %v; want ErrKeySetUnknownKID alone (refused)", err)
	}
	if got, want := src.requests.Load(), int64(4); got != want {
		t.Errorf("requests = %d; want %d", got, want)
	}
	if got, want := s.Stats().Misses, uint64(5); got != want {
		t.Errorf("Stats().Misses = %d; want %d", got, want)
	}
}

func TestKeySet_KIDSpraying(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")}
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk, verify.MinRefreshInterval(30*time.Second))
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key(k1) error = %v", err)
	}
	const kids, workers = 10000, 8
	spray := func() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range kids / workers {
					kid := fmt.Sprintf("%d-%d-%x", w, i, rand.Uint64())
					if _, err := s.Key(ctx, kid); !errors.Is(err, verify.ErrKeySetUnknownKID) {
						t.Errorf("Key(%q) error = %v; want ErrKeySetUnknownKID", kid, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	tests := []struct {
		advance time.Duration
		want    int64 // requests after the spray
	}{
		{0, 2},                // the first unknown kid after a due fetch: one fetch
		{29 * time.Second, 2}, // within the interval of that fetch
		{time.Second, 3},      // one interval on: one fetch
		{10 * time.Second, 3},
		{20 * time.Second, 4},
	}
	for _, tt := range tests {
		clk.Advance(tt.advance)
		spray()
		if got := src.requests.Load(); got != tt.want {
			t.Fatalf("after %d random kids at %v: requests = %d; want %d", kids, clk.Now().Format(time.TimeOnly), got, tt.want)
		}
	}
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Errorf("Key(k1) after spraying error = %v", err)
	}
}

func TestKeySet_StaleWhileError(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1"), header: http.Header{"Cache-Control": {"max-age=300"}}}
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk, verify.StaleWindow(time.Hour))
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() error = %v", err)
	}
	src.fail(http.StatusServiceUnavailable)

	clk.Advance(301 * time.Second) // expired; the fetch fails
	for i := range 2 {             // then backing off: no fetch
		if _, err := s.Key(ctx, "k1"); err != nil {
			t.Fatalf("Key() %d in the stale window error = %v; want the stale key", i, err)
		}
	}
	st := s.Stats()
	if st.StaleServes != 2 || st.Refreshes != 2 || st.RefreshErrors != 1 || st.Err == nil {
		t.Errorf("Stats() = %+v; want 2 stale serves, 2 refreshes, 1 refresh error, an Err", st)
	}

	clk.Advance(time.Hour) // past the stale window: fail closed
	_, err := s.Key(ctx, "k1")
	if !errors.Is(err, verify.ErrKeySetStale) {
		t.Fatalf("Key() past the stale window error = %v; want ErrKeySetStale", err)
	}
	if _, err := s.Key(ctx, "k1"); !errors.Is(err, verify.ErrKeySetStale) {
		t.Fatalf("Key() past the stale window, backing off, error = %v; want ErrKeySetStale", err)
	}

	src.fail(0) // the server recovers
	clk.Advance(5 * time.Minute)
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() after recovery error = %v", err)
	}
	if got := s.Stats().Err; got != nil {
		t.Errorf("Stats().Err = %v; want nil", got)
	}
}

func TestKeySet_StaleWhileErrorWaitsForHealthyServer(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")}
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk)
	ctx := context.Background()
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() error = %v", err)
	}
	src.set(ksDoc(t, "k2"), nil) // k1 is withdrawn
	clk.Advance(6 * time.Minute)
	if _, err := s.Key(ctx, "k1"); !errors.Is(err, verify.ErrKeySetUnknownKID) {
		t.Errorf("Key(k1) after expiry error = %v; want ErrKeySetUnknownKID (the new set, not the stale one)", err)
	}
	if got := s.Stats().StaleServes; got != 0 {
		t.Errorf("Stats().StaleServes = %d; want 0", got)
	}
}

func TestKeySet_NoSetYet(t *testing.T) {
	src := &ksSource{}
	src.fail(http.StatusInternalServerError)
	clk := ksNewClock()
	s := ksNew(t, ksServe(t, src), clk)
	ctx := context.Background()
	for i := range 3 { // the first fails, the others back off
		if _, err := s.Key(ctx, "k1"); !errors.Is(err, verify.ErrKeySetStale) {
			t.Fatalf("Key() %d error = %v; want ErrKeySetStale", i, err)
		}
	}
	if got, want := src.requests.Load(), int64(1); got != want {
		t.Errorf("requests = %d; want %d (backing off)", got, want)
	}
	src.fail(0)
	src.set(ksDoc(t, "k1"), nil)
	clk.Advance(2 * time.Second) // without a set, each backoff is 1-2s (engine.RetryDelay, as a Cache's)
	if _, err := s.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() after the backoff error = %v", err)
	}
}

func TestKeySet_ContextCanceled(t *testing.T) {
	src := &ksGate{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	src.requests.Store(1) // gate the first request too
	src.set(ksDoc(t, "k1"), nil)
	s := ksNew(t, ksServe(t, src), ksNewClock())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Key(ctx, "k1")
		done <- err
	}()
	<-src.arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Key() error = %v; want context.Canceled", err)
	}
	// The fetch goes on for the others.
	close(src.release)
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Errorf("Key() after the cancelled caller error = %v", err)
	}
}

func TestKeySet_FetchTimeout(t *testing.T) {
	hang := &ksGate{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	hang.requests.Store(1)
	defer close(hang.release)
	s := ksNew(t, ksServe(t, hang), nil, verify.FetchTimeout(50*time.Millisecond))
	_, err := s.Key(context.Background(), "k1")
	if !errors.Is(err, verify.ErrKeySetStale) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Key() error = %v; want ErrKeySetStale and context.DeadlineExceeded", err)
	}
}
