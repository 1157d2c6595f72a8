package jwtcache

import (
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// Stats counts what a cache did since it was made. The counters only grow;
// export them as counters (see package otelmetrics), not gauges.
type Stats struct {
	// Hits counts calls served a cached token without waiting, refresh
	// window included. With the real clock, hits are counted by sampling
	// one in 256 (so that the hit path writes no shared memory): Hits is an
	// estimate, within a few percent once it passes a few thousand.
	Hits uint64
	// Misses counts calls that had to wait for a fetch, or got an error
	// without one.
	Misses uint64
	// Fetches counts the fetches begun: each calls the token function, or
	// with a shared store adopts a saved token or waits for another
	// replica's.
	Fetches uint64
	// FetchErrors counts fetches that failed.
	FetchErrors uint64
	// RefreshesAhead counts fetches that started while callers were still
	// served the cached token: in its refresh window, or in its headroom
	// while the provider was failing. Each is one fetch, however many
	// callers found the token due.
	RefreshesAhead uint64
	// ServedDuringFailure counts calls served a still-valid token while the
	// provider was failing: during a backoff, or after a failed fetch in
	// the headroom.
	ServedDuringFailure uint64
	// StoreErrors counts failed calls of a shared store.
	StoreErrors uint64
	// Expiry is when the cached token expires; zero when there is none.
	// For a CacheMap, it is the earliest among its keys.
	Expiry time.Time
	// Keys is the number of keys of a CacheMap; zero for a Cache.
	Keys int
}

// counters are a Cache's statistics. Only hits are counted on the hit path,
// and only one in 256 of them (see engine.Hits), behind its padding.
type counters struct {
	hits                engine.Hits
	misses              atomic.Uint64
	fetches             atomic.Uint64
	fetchErrors         atomic.Uint64
	refreshesAhead      atomic.Uint64
	servedDuringFailure atomic.Uint64
}

// Stats returns the cache's counters. It is safe to call at any time, and
// costs a few atomic loads.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits:                c.stats.hits.Load(),
		Misses:              c.stats.misses.Load(),
		Fetches:             c.stats.fetches.Load(),
		FetchErrors:         c.stats.fetchErrors.Load(),
		RefreshesAhead:      c.stats.refreshesAhead.Load(),
		ServedDuringFailure: c.stats.servedDuringFailure.Load(),
		StoreErrors:         c.src.storeErrors(),
	}
	if e := c.entry.Load(); e != nil && e.token != "" {
		s.Expiry = e.expiry.Round(0)
	}
	return s
}

// Stats returns the sum of its keys' counters, the keys it has dropped
// included, with Keys the number of keys and Expiry the earliest of their
// tokens'. It visits every key. (A call still running on a key when the key
// is dropped may go uncounted.)
func (m *CacheMap) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	sum := m.gone
	m.Range(func(_ string, s Stats) bool {
		sum.add(s)
		if !s.Expiry.IsZero() && (sum.Expiry.IsZero() || s.Expiry.Before(sum.Expiry)) {
			sum.Expiry = s.Expiry
		}
		sum.Keys++
		return true
	})
	return sum
}

// add adds o's counters to s's.
func (s *Stats) add(o Stats) {
	s.Hits += o.Hits
	s.Misses += o.Misses
	s.Fetches += o.Fetches
	s.FetchErrors += o.FetchErrors
	s.RefreshesAhead += o.RefreshesAhead
	s.ServedDuringFailure += o.ServedDuringFailure
	s.StoreErrors += o.StoreErrors
}

// Range calls fn with each key the map holds and its counters, until fn
// returns false. Keys added or dropped meanwhile may or may not be visited.
// Key names can be sensitive (tenant ids): export them with care.
func (m *CacheMap) Range(fn func(key string, s Stats) bool) {
	for _, c := range m.all(int(m.n.Load())) {
		if !fn(c.key, c.s.cache.Stats()) {
			return
		}
	}
}
