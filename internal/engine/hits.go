package engine

import (
	"sync/atomic"
	"time"
)

// SampleShift sets the sampling rate of [Hits]: one hit in 1<<SampleShift is
// counted, and stands for 1<<SampleShift.
const SampleShift = 8

// Hits counts the hits of a lock-free instance without making most of them
// write shared memory: with the real clock, one hit in 256 is counted, chosen
// by [Sampled] from the clock reading each hit makes anyway; with a test
// clock, every hit, so that tests see exact figures. Hits are also counted
// exactly off the hit path ([Hits.Add]). Put it behind padding, off the cache
// lines that hits read. The zero Hits is ready to use.
type Hits struct {
	_       [64]byte
	samples atomic.Uint64 // sampled hits, each standing for 1<<SampleShift
	exact   atomic.Uint64 // hits counted one by one
}

// Hit counts a hit that read now, a time since the instance's epoch; exact
// says the clock is a test's.
func (h *Hits) Hit(now time.Duration, exact bool) {
	if exact {
		h.exact.Add(1)
		return
	}
	if Sampled(now) {
		h.samples.Add(1)
	}
}

// Add counts n hits exactly: the slow path's.
func (h *Hits) Add(n uint64) { h.exact.Add(n) }

// Load returns the count: exact, plus an estimate of the sampled hits,
// within a few percent once it passes a few thousand.
func (h *Hits) Load() uint64 { return h.exact.Load() + h.samples.Load()<<SampleShift }

// Sampled reports whether the hit that read now (a monotonic time since some
// epoch) is one of the counted ones: one in 1<<SampleShift.
//
// The hash is one multiplication (Fibonacci hashing) after a shift-xor: the
// multiplication spreads the reading's bits into the top ones, which decide,
// so that a coarse clock (readings in steps of 100 ns, say) is sampled as
// evenly as a fine one; the shift-xor makes the low bits depend on the high
// ones, so that the readings of a busy loop, nearly an arithmetic sequence,
// do not map to a rotation whose visits to the counted range come in runs.
// MurmurHash3's finalizer, used before, is no more even on this module's
// tests (TestSampled_Even, TestCache_HitsSampled) nor on recorded busy-loop
// readings (a median error of 2% in 2¹⁸ hits for both), and costs two
// multiplications and three shift-xors on every hit.
func Sampled(now time.Duration) bool {
	x := uint64(now)
	x ^= x >> 7
	return x*0x9e3779b97f4a7c15>>(64-SampleShift) == 0
}

// Exact returns the hits counted one by one, without the sampled ones.
func (h *Hits) Exact() uint64 { return h.exact.Load() }
