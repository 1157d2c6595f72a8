package jwtcache

import (
	"fmt"
	"sync"
	"testing"
)

// BenchmarkKeyMap compares, for a hot key among 100,000, the lookup CacheMap
// uses (keyMap: copy-on-write shards) with the two usual alternatives: sync.Map,
// and a map sharded behind sync.RWMutexes, whose read lock is a shared write.
func BenchmarkKeyMap(b *testing.B) {
	const n = 100_000
	key := func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
	var km keyMap
	var sm sync.Map
	type rwShard struct {
		mu sync.RWMutex
		m  map[string]*slot
	}
	rw := make([]rwShard, keyShards)
	for i := range rw {
		rw[i].m = map[string]*slot{}
	}
	for i := range n {
		k, s := key(i), &slot{}
		km.loadOrStore(k, s)
		sm.Store(k, s)
		rw[hashKey(k)%keyShards].m[k] = s
	}
	hot := key(n / 2)
	b.Run("keyMap", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := km.load(hot); !ok {
					b.Fatal("missing")
				}
			}
		})
	})
	b.Run("sync.Map", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := sm.Load(hot); !ok {
					b.Fatal("missing")
				}
			}
		})
	})
	b.Run("RWMutex-shards", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sh := &rw[hashKey(hot)%keyShards]
				sh.mu.RLock()
				_, ok := sh.m[hot]
				sh.mu.RUnlock()
				if !ok {
					b.Fatal("missing")
				}
			}
		})
	})
}

func TestKeyMap(t *testing.T) {
	var km keyMap
	a, b := &slot{}, &slot{}
	if got, loaded := km.loadOrStore("k", a); got != a || loaded {
		t.Fatalf("loadOrStore() = %p, %v; want a, false", got, loaded)
	}
	if got, loaded := km.loadOrStore("k", b); got != a || !loaded {
		t.Fatalf("loadOrStore() again = %p, %v; want a, true", got, loaded)
	}
	if n := km.deleteAll([]candidate{{key: "k", s: b}}); n != 0 {
		t.Errorf("deleteAll() of a replaced slot = %d; want 0", n)
	}
	if n := km.deleteAll([]candidate{{key: "k", s: a}, {key: "absent", s: a}}); n != 1 {
		t.Errorf("deleteAll() = %d; want 1", n)
	}
	if _, ok := km.load("k"); ok || len(km.all()) != 0 {
		t.Errorf("key still present after deleteAll")
	}
}
