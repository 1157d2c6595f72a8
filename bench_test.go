package jwtcache_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// floorEntry stands in for the cache's snapshot in BenchmarkFloor.
type floorEntry struct {
	token    string
	deadline time.Time
}

// BenchmarkFloor is the least a lock-free hit can cost: one atomic.Pointer
// load and one monotonic-only clock read. BenchmarkEnsureTokenHit is measured
// against it.
func BenchmarkFloor(b *testing.B) {
	var p atomic.Pointer[floorEntry]
	p.Store(&floorEntry{token: "t", deadline: time.Now().Add(time.Hour)})
	b.ReportAllocs()
	for b.Loop() {
		if e := p.Load(); time.Until(e.deadline) <= 0 {
			b.Fatal("deadline passed")
		}
	}
}

// BenchmarkFloorParallel is BenchmarkFloor from GOMAXPROCS goroutines, the
// floor of BenchmarkEnsureTokenHitParallel.
func BenchmarkFloorParallel(b *testing.B) {
	var p atomic.Pointer[floorEntry]
	p.Store(&floorEntry{token: "t", deadline: time.Now().Add(time.Hour)})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if e := p.Load(); time.Until(e.deadline) <= 0 {
				b.Fatal("deadline passed")
			}
		}
	})
}

// BenchmarkEnsureTokenHit measures a hit on a warm cache from one goroutine.
func BenchmarkEnsureTokenHit(b *testing.B) {
	c := warmCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.EnsureToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnsureTokenHitParallel measures hits on a warm cache from
// GOMAXPROCS goroutines (run it with -cpu 1,2,8).
func BenchmarkEnsureTokenHitParallel(b *testing.B) {
	c := warmCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.EnsureToken(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// warmCache returns a cache holding a token that lives for an hour.
func warmCache(b *testing.B) *jwtcache.Cache {
	b.Helper()
	tok := mint(b, time.Now(), time.Hour)
	c := jwtcache.NewCache(jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
	if _, err := c.EnsureToken(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkTimeNow is what a hit would cost if it read the wall clock:
// time.Now reads both the wall and the monotonic clock.
func BenchmarkTimeNow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = time.Now()
	}
}
