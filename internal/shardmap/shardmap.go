// Package shardmap is the lock-free read map of this module: the keys of a
// CacheMap, and the verified tokens of a verify.Verifier. Its reads take no
// lock and write nothing, so parallel reads of one hot key share cache lines
// without contending for them.
package shardmap

import (
	"sync"
	"sync/atomic"
)

// Shards is how many shards a Map has.
const Shards = 256

// Map maps keys to values, each value a pointer. Each shard publishes an
// immutable hash table through an atomic pointer, and a write copies its
// shard's table under the shard's lock. So a read costs a short probe,
// whatever the number of keys, and a write costs a copy of one shard, a 256th
// of the keys: about 25 µs at 100,000 keys.
//
// The caller hashes: every method takes the key's hash h, which must never
// be 0 (set a bit) and must be the same for equal keys; its low byte picks
// the shard, the rest the table entry. Hashing outside keeps the read free
// of an indirect call. The zero Map is empty and ready to use; a Map must
// not be copied.
type Map[K comparable, V any] struct {
	shards [Shards]shard[K, V]
}

// shard is one shard of a Map, padded to a cache line of its own so that a
// writer of one shard does not slow the readers of its neighbours.
type shard[K comparable, V any] struct {
	mu sync.Mutex // serializes the writers of t
	// t is never modified after it is published; nil means empty.
	t atomic.Pointer[table[K, V]]
	_ [64 - 16]byte
}

// table is an open-addressing hash table with linear probing. Its length is
// a power of two, and it is at most half full, so probes are short and every
// probe ends at an empty entry.
type table[K comparable, V any] struct {
	entries []Entry[K, V]
	n       int // entries in use
}

// Entry is a key, its hash and its value.
type Entry[K comparable, V any] struct {
	Hash  uint64 // 0 marks an empty entry of a table
	Key   K
	Value *V
}

// Load returns key's value.
func (m *Map[K, V]) Load(h uint64, key K) (*V, bool) {
	return m.shards[h%Shards].t.Load().find(h, key)
}

// find returns key's value in t, which may be nil.
func (t *table[K, V]) find(h uint64, key K) (*V, bool) {
	if t == nil {
		return nil, false
	}
	mask := uint64(len(t.entries) - 1)
	for i := h >> 8 & mask; ; i = (i + 1) & mask {
		e := &t.entries[i]
		if e.Hash == h && e.Key == key {
			return e.Value, true
		}
		if e.Hash == 0 {
			return nil, false
		}
	}
}

// LoadOrStore returns key's value if it has one, or stores v as its value.
func (m *Map[K, V]) LoadOrStore(h uint64, key K, v *V) (actual *V, loaded bool) {
	sh := &m.shards[h%Shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.t.Load()
	if got, ok := cur.find(h, key); ok {
		return got, true
	}
	next := rebuild(cur, cur.len()+1, nil)
	next.put(Entry[K, V]{Hash: h, Key: key, Value: v})
	sh.t.Store(next)
	return v, false
}

// Store makes v key's value, replacing any other.
func (m *Map[K, V]) Store(h uint64, key K, v *V) {
	sh := &m.shards[h%Shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.t.Load()
	next := rebuild(cur, cur.len()+1, func(e *Entry[K, V]) bool { return e.Hash == h && e.Key == key })
	next.put(Entry[K, V]{Hash: h, Key: key, Value: v})
	sh.t.Store(next)
}

// Delete deletes key's entry if its value is v, and reports whether it did.
func (m *Map[K, V]) Delete(h uint64, key K, v *V) bool {
	return len(m.DeleteAll([]Entry[K, V]{{Hash: h, Key: key, Value: v}})) == 1
}

// DeleteAll deletes each entry of es whose key still has the entry's value,
// copying each shard once, and returns the values it deleted.
func (m *Map[K, V]) DeleteAll(es []Entry[K, V]) []*V {
	type match struct {
		h   uint64
		key K
	}
	byShard := map[*shard[K, V]]map[match]*V{}
	for _, e := range es {
		sh := &m.shards[e.Hash%Shards]
		if byShard[sh] == nil {
			byShard[sh] = map[match]*V{}
		}
		byShard[sh][match{e.Hash, e.Key}] = e.Value
	}
	var deleted []*V
	for sh, drop := range byShard {
		sh.mu.Lock()
		cur := sh.t.Load()
		if cur.len() > 0 {
			next := rebuild(cur, cur.len(), func(e *Entry[K, V]) bool {
				if v, ok := drop[match{e.Hash, e.Key}]; !ok || v != e.Value {
					return false
				}
				deleted = append(deleted, e.Value)
				return true
			})
			sh.t.Store(next)
		}
		sh.mu.Unlock()
	}
	return deleted
}

// Range calls fn with each entry, shard by shard, until fn returns false.
// Entries added or deleted meanwhile may or may not be visited. fn runs with
// no lock held.
func (m *Map[K, V]) Range(fn func(e Entry[K, V]) bool) {
	for i := range m.shards {
		if t := m.shards[i].t.Load(); t != nil {
			for _, e := range t.entries {
				if e.Hash != 0 && !fn(e) {
					return
				}
			}
		}
	}
}

// RangeFrom is [Map.Range] from where the key of hash h would be: from h's
// shard, wrapping around past the last, and in each shard from h's slot,
// wrapping around its table. A caller that passes a random h visits the
// entries from a random one, and so can sample them by stopping early (the
// order past the start is not random: an entry's successor is its
// neighbour). fn runs with no lock held.
func (m *Map[K, V]) RangeFrom(h uint64, fn func(e Entry[K, V]) bool) {
	for i := range uint64(Shards) {
		t := m.shards[(h+i)%Shards].t.Load()
		if t == nil {
			continue
		}
		mask := uint64(len(t.entries) - 1)
		for j := range uint64(len(t.entries)) {
			if e := t.entries[(h>>8+j)&mask]; e.Hash != 0 && !fn(e) {
				return
			}
		}
	}
}

// rebuild returns a new table sized for n entries holding t's entries but
// those skip reports (skip may be nil).
func rebuild[K comparable, V any](t *table[K, V], n int, skip func(*Entry[K, V]) bool) *table[K, V] {
	size := 8
	for size < n*2 {
		size *= 2
	}
	next := &table[K, V]{entries: make([]Entry[K, V], size)}
	if t != nil {
		for i := range t.entries {
			if e := &t.entries[i]; e.Hash != 0 && (skip == nil || !skip(e)) {
				next.put(*e)
			}
		}
	}
	return next
}

// put adds e to a table being built, which has room for it.
func (t *table[K, V]) put(e Entry[K, V]) {
	mask := uint64(len(t.entries) - 1)
	i := e.Hash >> 8 & mask
	for t.entries[i].Hash != 0 {
		i = (i + 1) & mask
	}
	t.entries[i] = e
	t.n++
}

// len returns how many entries t holds; t may be nil.
func (t *table[K, V]) len() int {
	if t == nil {
		return 0
	}
	return t.n
}
