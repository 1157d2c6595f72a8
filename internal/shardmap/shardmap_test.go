package shardmap

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
)

var seed = maphash.MakeSeed()

// hash is how the module's users hash string keys: never 0.
func hash(k string) uint64 { return maphash.String(seed, k) | 1<<63 }

type val struct{ n int }

// BenchmarkMap compares, for a hot key among 100,000, the lookup of a Map
// (copy-on-write shards) with the two usual alternatives: sync.Map, and a map
// sharded behind sync.RWMutexes, whose read lock is a shared write.
func BenchmarkMap(b *testing.B) {
	const n = 100_000
	key := func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
	var km Map[string, val]
	var sm sync.Map
	type rwShard struct {
		mu sync.RWMutex
		m  map[string]*val
	}
	rw := make([]rwShard, Shards)
	for i := range rw {
		rw[i].m = map[string]*val{}
	}
	for i := range n {
		k, s := key(i), &val{}
		km.LoadOrStore(hash(k), k, s)
		sm.Store(k, s)
		rw[hash(k)%Shards].m[k] = s
	}
	hot := key(n / 2)
	b.Run("shardmap", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := km.Load(hash(hot), hot); !ok {
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
				sh := &rw[hash(hot)%Shards]
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

// count returns how many entries m holds.
func count[K comparable, V any](m *Map[K, V]) int {
	n := 0
	m.Range(func(Entry[K, V]) bool { n++; return true })
	return n
}

func TestMap(t *testing.T) {
	var km Map[string, val]
	a, b := &val{1}, &val{2}
	h := hash("k")
	if got, loaded := km.LoadOrStore(h, "k", a); got != a || loaded {
		t.Fatalf("LoadOrStore() = %p, %v; want a, false", got, loaded)
	}
	if got, loaded := km.LoadOrStore(h, "k", b); got != a || !loaded {
		t.Fatalf("LoadOrStore() again = %p, %v; want a, true", got, loaded)
	}
	if km.Delete(h, "k", b) {
		t.Errorf("Delete() of another value = true; want false")
	}
	if got := km.DeleteAll([]Entry[string, val]{{h, "k", a}, {hash("absent"), "absent", a}}); len(got) != 1 || got[0] != a {
		t.Errorf("DeleteAll() deleted %d values; want a alone", len(got))
	}
	if _, ok := km.Load(h, "k"); ok || count(&km) != 0 {
		t.Errorf("key still present after DeleteAll")
	}
	km.Store(h, "k", a)
	km.Store(h, "k", b)
	if got, ok := km.Load(h, "k"); !ok || got != b || count(&km) != 1 {
		t.Errorf("Load() after two Stores = %p, %v with %d entries; want b, true with 1", got, ok, count(&km))
	}
}

// TestMap_Random runs random inserts, replacements and deletes against a
// reference map, across enough keys to grow tables and wrap probes.
func TestMap_Random(t *testing.T) {
	var km Map[string, val]
	ref := map[string]*val{}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		k := "k" + strconv.Itoa(rng.IntN(3000))
		switch rng.IntN(8) {
		case 0, 1:
			if s, ok := ref[k]; ok {
				if !km.Delete(hash(k), k, s) {
					t.Fatalf("step %d: Delete(%q) = false; want true", i, k)
				}
				delete(ref, k)
			}
		case 2:
			s := &val{i}
			km.Store(hash(k), k, s)
			ref[k] = s
		default:
			s := &val{i}
			got, loaded := km.LoadOrStore(hash(k), k, s)
			if want, ok := ref[k]; ok != loaded || (ok && got != want) {
				t.Fatalf("step %d: LoadOrStore(%q) = %p, %v; want %p, %v", i, k, got, loaded, want, ok)
			}
			if !loaded {
				ref[k] = s
			}
		}
	}
	for k, want := range ref {
		if got, ok := km.Load(hash(k), k); !ok || got != want {
			t.Fatalf("Load(%q) = %p, %v; want %p", k, got, ok, want)
		}
	}
	if got := count(&km); got != len(ref) {
		t.Errorf("Range visits %d keys; want %d", got, len(ref))
	}
}

// TestMap_RangeFrom: from any hash, RangeFrom visits every entry once,
// starting in that hash's shard, and stops when told.
func TestMap_RangeFrom(t *testing.T) {
	var km Map[string, val]
	rangeFrom := func(h uint64) []Entry[string, val] {
		var got []Entry[string, val]
		km.RangeFrom(h, func(e Entry[string, val]) bool { got = append(got, e); return true })
		return got
	}
	if got := rangeFrom(hash("x")); len(got) != 0 {
		t.Fatalf("RangeFrom() of an empty Map visits %d entries; want 0", len(got))
	}
	want := map[string]bool{}
	for i := range 3000 {
		k := "k" + strconv.Itoa(i)
		km.LoadOrStore(hash(k), k, &val{i})
		want[k] = true
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		h := rng.Uint64()
		got := rangeFrom(h)
		seen := map[string]bool{}
		for _, e := range got {
			if seen[e.Key] {
				t.Fatalf("RangeFrom(%#x) visits %q twice", h, e.Key)
			}
			seen[e.Key] = true
		}
		if len(seen) != len(want) {
			t.Fatalf("RangeFrom(%#x) visits %d keys; want %d", h, len(seen), len(want))
		}
		// 3000 keys in 256 shards leave none empty.
		if got[0].Hash%Shards != h%Shards {
			t.Errorf("RangeFrom(%#x) starts in shard %d; want %d", h, got[0].Hash%Shards, h%Shards)
		}
	}
	n := 0
	km.RangeFrom(rng.Uint64(), func(Entry[string, val]) bool { n++; return n < 5 })
	if n != 5 {
		t.Errorf("RangeFrom() with fn false at the 5th entry visits %d; want 5", n)
	}
	// The starting entries of many random hashes are many different ones.
	firsts := map[string]bool{}
	for range 100 {
		km.RangeFrom(rng.Uint64(), func(e Entry[string, val]) bool { firsts[e.Key] = true; return false })
	}
	if len(firsts) < 50 {
		t.Errorf("100 RangeFrom() from random hashes start at %d entries; want most of them different", len(firsts))
	}
}

// TestMap_Concurrent has readers look up keys that are never deleted while
// writers insert and delete others; run it with -race.
func TestMap_Concurrent(t *testing.T) {
	var km Map[string, val]
	stable := map[string]*val{}
	for i := range 500 {
		k := "stable" + strconv.Itoa(i)
		stable[k] = &val{}
		km.LoadOrStore(hash(k), k, stable[k])
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
				s, _ := km.LoadOrStore(hash(k), k, &val{})
				km.Delete(hash(k), k, s)
			}
		})
	}
	for range 4 {
		readers.Go(func() {
			for range 20 {
				for k, want := range stable {
					if got, ok := km.Load(hash(k), k); !ok || got != want {
						t.Errorf("Load(%q) = %p, %v; want %p", k, got, ok, want)
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
