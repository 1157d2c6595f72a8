package sample

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestHit_Rate checks the rate on readings like a busy loop's: steps of a few
// tens of nanoseconds, mostly one of two values (30 and 40 ns on the machine
// that found the problem), from several starts; 2^18 readings each must count
// within 20% of one in 256. (These synthetic readings do not reproduce the
// clustering that real ones showed with a single multiplication; the root
// package's TestCache_HitsSampled runs on real ones.)
func TestHit_Rate(t *testing.T) {
	const n = 1 << 18
	rng := rand.New(rand.NewPCG(1, 2))
	for _, steps := range [][]time.Duration{{30, 40}, {30, 40, 31, 41}, {24, 25}, {22}, {12, 13, 14}, {96, 104}} {
		for _, start := range []time.Duration{0, 12345, time.Hour, 17 * time.Hour} {
			hits := 0
			now := start
			for range n {
				now += steps[rng.IntN(len(steps))]
				if Hit(now) {
					hits++
				}
			}
			if want := n >> Shift; hits < want*8/10 || hits > want*12/10 {
				t.Errorf("steps %v from %v: %d of %d counted; want about %d", steps, start, hits, n, want)
			}
		}
	}
}
