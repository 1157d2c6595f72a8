package verify

import (
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// KeySetStats is what a [KeySet] did since it was made, and the state of its
// set. The counters only grow; export them as counters, not gauges.
type KeySetStats struct {
	// Requests counts calls of [KeySet.Key]: Hits, Misses, and calls that
	// failed without a usable set.
	Requests uint64
	// Hits counts calls that found their kid in the cached set, stale serves
	// included. With the real clock, hits in a fresh set are counted by
	// sampling one in 256, so that the hit path writes no shared memory:
	// Hits (and Requests) are estimates, within a few percent once they pass
	// a few thousand. With [KeySetClock], every hit is counted.
	Hits uint64
	// Misses counts calls whose kid the cached set lacked, whether or not
	// the refresh that followed found it.
	Misses uint64
	// Refreshes counts the fetches begun.
	Refreshes uint64
	// RefreshErrors counts the fetches that failed, Refused included.
	RefreshErrors uint64
	// Refused counts the fetches whose response or set was refused (see
	// [ErrKeySetRefused]).
	Refused uint64
	// StaleServes counts hits in a set past its expiry, served because
	// fetching its successor failed (see [StaleWindow]).
	StaleServes uint64
	// NotModified counts fetches answered 304 Not Modified, which renewed
	// the set.
	NotModified uint64
	// SnapshotLoads counts the sets started from a snapshot in the store of
	// [Snapshots], instead of a fetch.
	SnapshotLoads uint64
	// SnapshotRejects counts the snapshots found in the store and ignored:
	// with a bad MAC (another secret, another key set's, or tampered with),
	// unparsable, failing the checks of a fetched set, or too old.
	SnapshotRejects uint64
	// StoreErrors counts the calls of the [Snapshots] store that failed
	// (finding nothing is no failure); the key set went on without it.
	StoreErrors uint64
	// Keys is the number of keys in the set; zero before the first.
	Keys int
	// LastRefresh is when the set was last fetched or revalidated
	// successfully; zero before the first.
	LastRefresh time.Time
	// Expiry is when the set expires: from then, callers wait for a fetch,
	// and are served the set only if it fails, for the [StaleWindow]. Zero
	// before the first set.
	Expiry time.Time
	// SnapshotAge is how long ago the set was fetched whole (a 304 renews
	// the set but not its age), by this KeySet or, for a set started from a
	// snapshot, by the replica that saved it; zero before the first.
	SnapshotAge time.Duration
	// Err is the error of the last fetch if it failed; nil after a success.
	Err error
}

// keySetCounters are a KeySet's statistics. Only hits are counted on the hit
// path, and only one in 256 of them (see engine.Hits), behind its padding.
type keySetCounters struct {
	hits          engine.Hits   // sampled on the hit path, exact off it
	slow          atomic.Uint64 // calls that took the slow path
	misses        atomic.Uint64
	refreshes     atomic.Uint64
	refreshErrors atomic.Uint64
	refused       atomic.Uint64
	staleServes   atomic.Uint64
	notModified   atomic.Uint64
	// snapshotLoads, snapshotRejects and storeErrors count what
	// [Snapshots] did.
	snapshotLoads   atomic.Uint64
	snapshotRejects atomic.Uint64
	storeErrors     atomic.Uint64
}

// countHit counts a hit in a fresh set that read now. With a test clock, it
// counts it as a slow call too, so that Requests is exact.
func (s *KeySet) countHit(now time.Duration) {
	s.stats.hits.Hit(now, s.clock.Test())
	if s.clock.Test() {
		s.stats.slow.Add(1)
	}
}

// Stats returns the key set's counters and state. It is safe to call at any
// time, and costs a few atomic loads.
func (s *KeySet) Stats() KeySetStats {
	hits := s.stats.hits.Load()
	st := KeySetStats{
		// A hit counted exactly took the slow path (or was counted as one);
		// a sampled one did not.
		Requests:      s.stats.slow.Load() + hits - s.stats.hits.Exact(),
		Hits:          hits,
		Misses:        s.stats.misses.Load(),
		Refreshes:     s.stats.refreshes.Load(),
		RefreshErrors: s.stats.refreshErrors.Load(),
		Refused:       s.stats.refused.Load(),
		StaleServes:   s.stats.staleServes.Load(),
		NotModified:   s.stats.notModified.Load(),

		SnapshotLoads:   s.stats.snapshotLoads.Load(),
		SnapshotRejects: s.stats.snapshotRejects.Load(),
		StoreErrors:     s.stats.storeErrors.Load(),
	}
	p := s.snap.Load()
	st.Err = p.Err
	if p.keys != nil {
		st.Keys = len(p.keys)
		st.LastRefresh = p.confirmed.Round(0)
		st.Expiry = p.expiry.Round(0)
		st.SnapshotAge = s.now().Sub(p.fetched)
	}
	return st
}
