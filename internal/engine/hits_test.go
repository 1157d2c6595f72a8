package engine

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSampled_Even checks the sampler on the readings that hits make: nearly
// regular steps (a busy loop), steps of a coarse clock (multiples of 32 ns,
// 100 ns, 1 µs), and steps with jitter. For each, the sampled share of 2¹⁸
// hits must be within 15% of one in 256, so that Stats().Hits is within that
// of the truth: a sampler whose decisions cluster on regular input (as
// Fibonacci hashing does) fails it.
func TestSampled_Even(t *testing.T) {
	const n = 1 << 18
	want := float64(n >> SampleShift)
	rng := rand.New(rand.NewPCG(1, 2))
	type steps struct {
		name string
		step func() time.Duration
	}
	var cases []steps
	for _, d := range []time.Duration{1, 7, 17, 23, 25, 27, 29, 30, 31, 32, 33, 35, 38, 40, 45, 50, 64, 100, 128, 256, 1000, 1024, 4096} {
		cases = append(cases, steps{name: "regular " + d.String(), step: func() time.Duration { return d }})
	}
	for _, q := range []time.Duration{32, 100, time.Microsecond} {
		cases = append(cases, steps{name: "quantized " + q.String(), step: func() time.Duration { return q * time.Duration(1+rng.IntN(2)) }})
	}
	cases = append(cases, steps{name: "jittered 30±3", step: func() time.Duration { return time.Duration(27 + rng.IntN(7)) }})
	for _, tc := range cases {
		for start := range 4 {
			now := time.Duration(rng.Int64N(int64(time.Hour))) + time.Duration(start)
			got := 0
			for range n {
				now += tc.step()
				if Sampled(now) {
					got++
				}
			}
			if r := float64(got) / want; r < 0.85 || r > 1.15 {
				t.Errorf("%s, start %d: %d sampled of %d; want about %.0f (%.2fx)", tc.name, start, got, n, want, r)
			}
		}
	}
}

func BenchmarkSampled(b *testing.B) {
	var n int
	now := time.Duration(12345)
	for b.Loop() {
		now += 31
		if Sampled(now) {
			n++
		}
	}
	_ = n
}
