package jwtcache

import (
	"fmt"
	"math/rand/v2"
	"strconv"
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
	if n := len(km.deleteAll([]candidate{{key: "k", s: b}})); n != 0 {
		t.Errorf("deleteAll() of a replaced slot = %d; want 0", n)
	}
	if got := km.deleteAll([]candidate{{key: "k", s: a}, {key: "absent", s: a}}); len(got) != 1 || got[0] != a {
		n := len(got)
		t.Errorf("deleteAll() deleted %d slots; want a alone", n)
	}
	if _, ok := km.load("k"); ok || len(km.all(0)) != 0 {
		t.Errorf("key still present after deleteAll")
	}
}

// TestKeyMap_Random runs random inserts and deletes against a reference map,
// across enough keys to grow tables and wrap probes.
func TestKeyMap_Random(t *testing.T) {
	var km keyMap
	ref := map[string]*slot{}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		k := "k" + strconv.Itoa(rng.IntN(3000))
		switch {
		case rng.IntN(4) == 0:
			if s, ok := ref[k]; ok {
				if n := len(km.deleteAll([]candidate{{key: k, s: s}})); n != 1 {
					t.Fatalf("step %d: deleteAll(%q) = %d; want 1", i, k, n)
				}
				delete(ref, k)
			}
		default:
			s := &slot{}
			got, loaded := km.loadOrStore(k, s)
			if want, ok := ref[k]; ok != loaded || (ok && got != want) {
				t.Fatalf("step %d: loadOrStore(%q) = %p, %v; want %p, %v", i, k, got, loaded, want, ok)
			}
			if !loaded {
				ref[k] = s
			}
		}
	}
	for k, want := range ref {
		if got, ok := km.load(k); !ok || got != want {
			t.Fatalf("load(%q) = %p, %v; want %p", k, got, ok, want)
		}
	}
	if got := len(km.all(0)); got != len(ref) {
		t.Errorf("all() has %d keys; want %d", got, len(ref))
	}
}

// TestKeyMap_Concurrent has readers look up keys that are never deleted while
// writers insert and delete others; run it with -race.
func TestKeyMap_Concurrent(t *testing.T) {
	var km keyMap
	stable := map[string]*slot{}
	for i := range 500 {
		k := "stable" + strconv.Itoa(i)
		stable[k] = &slot{}
		km.loadOrStore(k, stable[k])
	}
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("churn%d-%d", w, i%300)
				s, _ := km.loadOrStore(k, &slot{})
				km.deleteAll([]candidate{{key: k, s: s}})
			}
		})
	}
	for range 4 {
		readers.Go(func() {
			for range 20 {
				for k, want := range stable {
					if got, ok := km.load(k); !ok || got != want {
						t.Errorf("load(%q) = %p, %v; want %p", k, got, ok, want)
						return
					}
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
}
