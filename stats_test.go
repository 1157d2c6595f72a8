package jwtcache_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
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
	testkit.Eventually(t, "the refresh to fail", func() bool { return c.Stats().FetchErrors == 1 })
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

// TestCacheMap_StatsCountEachCallOnce counts every call of EnsureToken and
// Token once: one hit path serves both.
func TestCacheMap_StatsCountEachCallOnce(t *testing.T) {
	m, _, _ := newTestMap(time.Hour)
	for i := range 10 {
		var err error
		if i%2 == 0 {
			_, err = m.Token(context.Background(), "acme")
		} else {
			_, err = m.EnsureToken(context.Background(), "acme")
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Stats(); got.Hits != 9 || got.Misses != 1 {
		t.Errorf("Stats() after 10 calls = %d hits, %d misses; want 9, 1", got.Hits, got.Misses)
	}
}

// TestCacheMap_StatsKeepDroppedKeys checks that the map's counters only grow:
// a key dropped by MaxKeys or Delete keeps its counts in the totals.
func TestCacheMap_StatsKeepDroppedKeys(t *testing.T) {
	m, _, _ := newTestMap(time.Hour, jwtcache.MaxKeys(4))
	var last uint64
	for i := range 40 {
		key := "tenant-" + strconv.FormatInt(int64(i), 10)
		mustMapToken(t, m, key)
		mustMapToken(t, m, key)
		if i == 39 {
			m.Delete(key)
		}
		got := m.Stats()
		if got.Fetches < last {
			t.Fatalf("Stats().Fetches went from %d to %d", last, got.Fetches)
		}
		last = got.Fetches
	}
	if got := m.Stats(); got.Fetches != 40 || got.Misses != 40 || got.Hits != 40 || got.Keys > 5 {
		t.Errorf("Stats() = %d fetches, %d misses, %d hits, %d keys; want 40, 40, 40, at most 5",
			got.Fetches, got.Misses, got.Hits, got.Keys)
	}
}

// TestCache_StatsRefreshesAhead counts the refreshes that started, not the
// callers that found the token due.
func TestCache_StatsRefreshesAhead(t *testing.T) {
	c, p, clk := newTestCache(100 * time.Second)
	first := mustToken(t, c)
	gate := make(chan struct{})
	p.setGate(gate)
	clk.Advance(80 * time.Second) // the refresh window
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if got, err := c.EnsureToken(context.Background()); err != nil || got != first {
				t.Errorf("EnsureToken() in the refresh window = %v; want the current token", err)
			}
		})
	}
	wg.Wait()
	close(gate)
	testkit.Eventually(t, "the refreshed token", func() bool { return mustToken(t, c) != first })
	if got := c.Stats(); got.RefreshesAhead != 1 || got.Fetches != 2 {
		t.Errorf("Stats() after 50 callers in the refresh window = %d refreshes ahead, %d fetches; want 1, 2",
			got.RefreshesAhead, got.Fetches)
	}
}

// TestCacheMap_StatsNeverDecrease reads a map's counters while keys are used
// and deleted: they must only grow.
func TestCacheMap_StatsNeverDecrease(t *testing.T) {
	m, _, _ := newTestMap(time.Hour)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := "k" + strconv.FormatInt(int64(g*1000+i%50), 10)
				m.EnsureToken(context.Background(), key)
				m.Delete(key)
			}
		})
	}
	var last uint64
	for range 5000 {
		got := m.Stats().Fetches
		if got < last {
			t.Errorf("Stats().Fetches went from %d to %d", last, got)
			break
		}
		last = got
	}
	close(stop)
	wg.Wait()
}
