package jwtcache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

func TestCache_Stats(t *testing.T) {
	c, p, clk := newTestCache(100*time.Second, jwtcache.Backoff(time.Second, time.Second))
	ctx := context.Background()
	if got := c.Stats(); got != (jwtcache.Stats{}) {
		t.Fatalf("Stats() of a new cache = %+v; want zero", got)
	}
	first := mustToken(t, c) // a miss and a fetch
	for range 9 {
		mustToken(t, c) // hits
	}
	want := jwtcache.Stats{Hits: 9, Misses: 1, Fetches: 1}
	got := c.Stats()
	if want.Expiry = got.Expiry; got != want || got.Expiry.IsZero() {
		t.Errorf("Stats() after 10 calls = %+v; want %+v and an expiry", got, want)
	}

	// The refresh window: a hit that starts one background refresh, which
	// fails; the next call is served the still-valid token during backoff.
	p.setFail(errors.New("idp down"))
	clk.Advance(80 * time.Second)
	mustToken(t, c)
	eventually(t, "the refresh to fail", func() bool { return c.Stats().FetchErrors == 1 })
	if got := mustToken(t, c); got != first {
		t.Fatalf("EnsureToken() during backoff = new token")
	}
	got = c.Stats()
	want = jwtcache.Stats{Hits: 11, Misses: 1, Fetches: 2, FetchErrors: 1, RefreshesAhead: 1, ServedDuringFailure: 1, Expiry: got.Expiry}
	if got != want {
		t.Errorf("Stats() after a failed refresh = %+v; want %+v", got, want)
	}

	// Expired, provider still down: a miss, and an error.
	clk.Advance(30 * time.Second)
	if _, err := c.EnsureToken(ctx); err == nil {
		t.Fatal("EnsureToken() = nil error after expiry with the provider down")
	}
	if got := c.Stats(); got.Misses != 2 || got.FetchErrors != 2 {
		t.Errorf("Stats() after expiry = %+v; want 2 misses, 2 fetch errors", got)
	}
}

func TestCacheMap_Stats(t *testing.T) {
	m, _, _ := newTestMap(time.Hour)
	for _, key := range []string{"a", "b", "a", "a"} {
		mustMapToken(t, m, key)
	}
	got := m.Stats()
	if got.Keys != 2 || got.Hits != 2 || got.Misses != 2 || got.Fetches != 2 || got.Expiry.IsZero() {
		t.Errorf("Stats() = %+v; want 2 keys, 2 hits, 2 misses, 2 fetches, an expiry", got)
	}
	perKey := map[string]uint64{}
	m.Range(func(key string, s jwtcache.Stats) bool {
		perKey[key] = s.Hits
		return true
	})
	if perKey["a"] != 2 || perKey["b"] != 0 || len(perKey) != 2 {
		t.Errorf("Range() hits per key = %v; want a:2 b:0", perKey)
	}
}

// TestCache_HitsSampled checks the estimate of hits counted with the real
// clock, where one hit in 256 is counted.
func TestCache_HitsSampled(t *testing.T) {
	c, _ := countingCache(t)
	mustToken(t, c)
	const calls = 1 << 18
	for range calls {
		c.EnsureToken(context.Background())
	}
	if got := float64(c.Stats().Hits); got < 0.8*calls || got > 1.2*calls {
		t.Errorf("Stats().Hits = %.0f after %d hits; want within 20%%", got, calls)
	}
}
