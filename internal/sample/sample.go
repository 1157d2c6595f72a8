// Package sample chooses the hits that the lock-free caches of this module
// count: one in 256, by a hash of the clock reading each hit makes anyway, so
// that parallel hits do not all write one shared counter.
package sample

import "time"

// Shift sets the rate: one hit in 1<<Shift is counted, and each counted hit
// stands for 1<<Shift.
const Shift = 8

// Hit reports whether the hit that read now (a monotonic time since some
// epoch) is one of the counted ones.
//
// The hash is MurmurHash3's 64-bit finalizer. The readings of a busy loop are
// nearly regular, and with the single multiplication (Fibonacci hashing) used
// before, the counted share wandered: the root package's TestCache_HitsSampled
// found its estimate 24% to 42% off in 2 runs of 12; with the finalizer, in
// none of 25.
func Hit(now time.Duration) bool {
	x := uint64(now)
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x>>(64-Shift) == 0
}
