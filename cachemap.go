package jwtcache

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MapTokenFunc fetches a new token for key. It has the contract of
// [TokenFunc], per key: calls for different keys may run at the same time.
type MapTokenFunc func(ctx context.Context, key string) (string, error)

// CacheMap is a [Cache] per key, for multi-tenant services: a key is a tenant
// id, or a tenant and an audience written as one string. A key's Cache is
// created on its first use with [NewCache] and the map's [Option]s, and behaves
// as a lone Cache does; keys share nothing, so a slow or failing tenant never
// delays another.
//
// A hit for a known key is a lock-free map lookup and a Cache hit, with no
// allocation. The map is bounded: past [MaxKeys] the least recently used keys
// go, and a key not asked for during the [IdleTimeout] is dropped. Dropping a
// key never disturbs a fetch in flight: its callers still get their token, and
// the key's next caller fetches again. The map starts no goroutine and needs
// no Close: it does its housekeeping on its callers' goroutines, a little at a
// time.
type CacheMap struct {
	slots keyMap
	n     atomic.Int64 // how many keys slots holds

	lastSweep atomic.Int64 // time since epoch of the last idle sweep
	sweeping  atomic.Bool  // an eviction pass runs

	// cfg is written once by NewCacheMap and only read after.
	cfg mapConfig
}

// slot is a key's entry in a CacheMap.
type slot struct {
	cache *Cache
	// seen is the time since the map's epoch of a recent call for the key,
	// at most stampEvery older than the last one. It is written at most
	// once per stampEvery, so hits on a hot key rarely write shared memory.
	seen atomic.Int64
}

// stampEvery is how stale a slot's stamp may get before a hit renews it.
const stampEvery = time.Second

// mapConfig is the validated configuration of a CacheMap.
type mapConfig struct {
	name        string
	tokenFunc   MapTokenFunc
	maxKeys     int
	idleTimeout time.Duration
	cacheOpts   []Option
	epoch       time.Time // shared by every key's Cache
}

// MapOption configures a [CacheMap]. Every [Option] is a MapOption too, and
// applies to each key's Cache.
type MapOption interface {
	applyMap(*mapConfig)
}

// mapOptionFunc adapts a function to [MapOption].
type mapOptionFunc func(*mapConfig)

func (f mapOptionFunc) applyMap(m *mapConfig) { f(m) }

// Defaults of the map options.
const (
	defaultMaxKeys     = 10_000
	defaultIdleTimeout = time.Hour
)

// MapName names the map in log records; every key's Cache takes this name,
// whatever [Name] says. The default is "default".
func MapName(name string) MapOption {
	return mapOptionFunc(func(m *mapConfig) { m.name = name })
}

// MapTokenFunction sets the function that fetches a new token for a key; it
// replaces any [TokenFunction] given to the map. A map without one returns
// [ErrNoTokenFunction] from every call. The default is none.
func MapTokenFunction(f MapTokenFunc) MapOption {
	return mapOptionFunc(func(m *mapConfig) { m.tokenFunc = f })
}

// MaxKeys bounds how many keys the map holds. When a new key takes it past n,
// the least recently used tenth of the keys is dropped (by a last-use stamp
// kept to the second, not an exact LRU list); under concurrent inserts the map
// may briefly hold a few more than n. Zero or less means no bound, for callers
// whose keys are few and known. The default is 10,000.
func MaxKeys(n int) MapOption {
	return mapOptionFunc(func(m *mapConfig) { m.maxKeys = n })
}

// IdleTimeout drops a key not asked for during d, with its token. The map
// sweeps its keys on its callers' goroutines, at most every d/4, so a key goes
// between d and about 1.25·d after its last use (later if the map is not
// called at all). Zero or less keeps idle keys until MaxKeys evicts them. The
// default is an hour.
func IdleTimeout(d time.Duration) MapOption {
	return mapOptionFunc(func(m *mapConfig) { m.idleTimeout = d })
}

// NewCacheMap returns a map configured by opts. Options that are [Option]s
// configure each key's Cache; their order among themselves is kept.
func NewCacheMap(opts ...MapOption) *CacheMap {
	cfg := mapConfig{name: defaultName, maxKeys: defaultMaxKeys, idleTimeout: defaultIdleTimeout}
	for _, o := range opts {
		if o != nil {
			o.applyMap(&cfg)
		}
	}
	// Every key's Cache measures time from the map's epoch, so that the
	// time a hit reads also stamps the key's slot.
	cfg.epoch = time.Now()
	if clock := newConfig(cfg.cacheOpts).clock; clock != nil {
		cfg.epoch = clock()
	}
	return &CacheMap{cfg: cfg}
}

// EnsureToken returns a valid token for key, as [Cache.EnsureToken] does. An
// empty key is an error wrapping [ErrEmptyKey].
func (m *CacheMap) EnsureToken(ctx context.Context, key string) (string, error) {
	if s, ok := m.slots.load(key); ok {
		tok, now, ok := s.cache.hit()
		m.touch(s, now)
		if ok {
			return tok, nil
		}
		t, err := s.cache.get(ctx)
		return t.Value, err
	}
	t, err := m.miss(ctx, key)
	return t.Value, err
}

// Token is [CacheMap.EnsureToken] for callers that also need the token's
// expiry.
func (m *CacheMap) Token(ctx context.Context, key string) (Token, error) {
	if s, ok := m.slots.load(key); ok {
		_, now, _ := s.cache.hit()
		m.touch(s, now)
		return s.cache.Token(ctx)
	}
	return m.miss(ctx, key)
}

// Invalidate drops key's cached token, as [Cache.Invalidate] does. The key
// stays in the map.
func (m *CacheMap) Invalidate(key string) {
	if s, ok := m.slots.load(key); ok {
		s.cache.Invalidate()
	}
}

// InvalidateToken drops key's cached token only if it is token, and reports
// whether it did, as [Cache.InvalidateToken] does.
func (m *CacheMap) InvalidateToken(key, token string) bool {
	if s, ok := m.slots.load(key); ok {
		return s.cache.InvalidateToken(token)
	}
	return false
}

// Delete drops key and its token from the map. A fetch in flight for it still
// serves its callers.
func (m *CacheMap) Delete(key string) {
	if s, ok := m.slots.load(key); ok {
		m.drop([]candidate{{key: key, s: s}})
	}
}

// Len returns the number of keys the map holds.
func (m *CacheMap) Len() int {
	return int(m.n.Load())
}

// miss serves a key the map does not hold: it adds the key, then serves it
// as its Cache does. No lock is held: building a Cache fetches nothing, and
// two callers that add the key at once agree on one Cache.
func (m *CacheMap) miss(ctx context.Context, key string) (Token, error) {
	if key == "" {
		return Token{}, ErrEmptyKey
	}
	s := &slot{cache: m.newCache(key)}
	now := s.cache.elapsed()
	s.seen.Store(int64(now))
	if got, loaded := m.slots.loadOrStore(key, s); loaded {
		s = got
	} else if n := m.n.Add(1); m.cfg.maxKeys > 0 && n > int64(m.cfg.maxKeys) {
		m.evictOldest()
	}
	m.touch(s, now)
	return s.cache.Token(ctx)
}

// touch renews s's stamp if it is stampEvery old, and then sweeps idle keys
// if a sweep is due.
func (m *CacheMap) touch(s *slot, now time.Duration) {
	if int64(now)-s.seen.Load() < int64(stampEvery) {
		return
	}
	s.seen.Store(int64(now))
	if m.cfg.idleTimeout <= 0 {
		return
	}
	last := m.lastSweep.Load()
	if int64(now)-last < int64(m.cfg.idleTimeout/4) || !m.lastSweep.CompareAndSwap(last, int64(now)) {
		return
	}
	cutoff := int64(now - m.cfg.idleTimeout)
	m.evict(func(all []candidate) []candidate {
		return slices.DeleteFunc(all, func(c candidate) bool { return c.seen >= cutoff })
	})
}

// newCache builds key's Cache: the map's options first, then the map's name,
// key and token function, which win over any in the options.
func (m *CacheMap) newCache(key string) *Cache {
	opts := append(slices.Clip(m.cfg.cacheOpts),
		Name(m.cfg.name),
		optionFunc(func(c *config) {
			c.key = key
			c.epoch = m.cfg.epoch
			if tf := m.cfg.tokenFunc; tf != nil {
				c.tokenFunc = func(ctx context.Context) (string, error) { return tf(ctx, key) }
			} else {
				c.tokenFunc = nil
			}
		}))
	return NewCache(opts...)
}

// candidate is a key considered for eviction, with its stamp when read.
type candidate struct {
	key  string
	s    *slot
	seen int64
}

// evictOldest drops the least recently used tenth of the keys, or as many as
// it takes to get back to MaxKeys if that is more.
func (m *CacheMap) evictOldest() {
	m.evict(func(all []candidate) []candidate {
		drop := min(max(len(all)-m.cfg.maxKeys, m.cfg.maxKeys/10, 1), len(all))
		slices.SortFunc(all, func(a, b candidate) int { return cmp.Compare(a.seen, b.seen) })
		return all[:drop]
	})
}

// evict drops the keys that pick chooses from all of them. One pass runs at a
// time; a caller that finds one running leaves the work to it. A key used
// while the pass runs is kept.
func (m *CacheMap) evict(pick func(all []candidate) []candidate) {
	if !m.sweeping.CompareAndSwap(false, true) {
		return
	}
	defer m.sweeping.Store(false)
	picked := pick(m.slots.all())
	m.drop(slices.DeleteFunc(picked, func(c candidate) bool { return c.s.seen.Load() != c.seen }))
}

// drop removes the candidates' slots, each only if it is still the key's.
func (m *CacheMap) drop(cs []candidate) {
	m.n.Add(-int64(m.slots.deleteAll(cs)))
}

// keyMap maps keys to slots. Its reads take no lock and write nothing: each
// shard publishes an immutable hash table through an atomic pointer, and a
// write copies its shard's table under the shard's lock. So a read costs one
// hash and a probe or two, whatever the number of keys, and parallel reads of
// one hot key share cache lines without contending for them; a write costs a
// copy of one shard, a 256th of the keys. BenchmarkKeyMap compares it with
// sync.Map and with Go maps sharded behind sync.RWMutexes, whose read lock is a
// shared write.
type keyMap struct {
	shards [keyShards]keyShard
}

// keyShard is one shard of a keyMap.
type keyShard struct {
	mu sync.Mutex // serializes the writers of t
	// t is never modified after it is published; nil means empty.
	t atomic.Pointer[keyTable]
}

// keyTable is an open-addressing hash table with linear probing. Its length
// is a power of two, and it is at most three quarters full, so every probe
// ends at an empty entry.
type keyTable struct {
	entries []keyEntry
	n       int // entries in use
}

// keyEntry is an entry of a keyTable; hash 0 marks it empty.
type keyEntry struct {
	hash uint64
	key  string
	slot *slot
}

// keyShards is how many shards a keyMap has.
const keyShards = 256

// keySeed seeds the hash of every keyMap.
var keySeed = maphash.MakeSeed()

// hashKey returns key's hash: its low byte picks the shard, the rest the
// table entry. It is never 0.
func hashKey(key string) uint64 {
	return maphash.String(keySeed, key) | 1<<63
}

// load returns key's slot.
func (km *keyMap) load(key string) (*slot, bool) {
	h := hashKey(key)
	t := km.shards[h%keyShards].t.Load()
	if t == nil {
		return nil, false
	}
	mask := uint64(len(t.entries) - 1)
	for i := h >> 8 & mask; ; i = (i + 1) & mask {
		e := &t.entries[i]
		if e.hash == h && e.key == key {
			return e.slot, true
		}
		if e.hash == 0 {
			return nil, false
		}
	}
}

// loadOrStore returns key's slot if it has one, or stores s as its slot.
func (km *keyMap) loadOrStore(key string, s *slot) (actual *slot, loaded bool) {
	h := hashKey(key)
	sh := &km.shards[h%keyShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur := sh.t.Load()
	if cur != nil {
		if got, ok := km.load(key); ok {
			return got, true
		}
	}
	next := rebuild(cur, cur.len()+1, nil)
	next.put(keyEntry{hash: h, key: key, slot: s})
	sh.t.Store(next)
	return s, false
}

// deleteAll deletes each candidate's key whose slot is still the candidate's,
// copying each shard once, and returns how many it deleted.
func (km *keyMap) deleteAll(cs []candidate) int {
	byShard := map[*keyShard]map[string]*slot{}
	for _, c := range cs {
		sh := &km.shards[hashKey(c.key)%keyShards]
		if byShard[sh] == nil {
			byShard[sh] = map[string]*slot{}
		}
		byShard[sh][c.key] = c.s
	}
	deleted := 0
	for sh, drop := range byShard {
		sh.mu.Lock()
		cur := sh.t.Load()
		next := rebuild(cur, cur.len(), func(e *keyEntry) bool { return drop[e.key] == e.slot })
		deleted += cur.len() - next.n
		sh.t.Store(next)
		sh.mu.Unlock()
	}
	return deleted
}

// all returns every key with its slot and its slot's stamp.
func (km *keyMap) all() []candidate {
	var all []candidate
	for i := range km.shards {
		if t := km.shards[i].t.Load(); t != nil {
			for _, e := range t.entries {
				if e.hash != 0 {
					all = append(all, candidate{key: e.key, s: e.slot, seen: e.slot.seen.Load()})
				}
			}
		}
	}
	return all
}

// rebuild returns a new table sized for n entries holding t's entries but
// those skip reports (skip may be nil).
func rebuild(t *keyTable, n int, skip func(*keyEntry) bool) *keyTable {
	size := 8
	for size*3 < n*4 {
		size *= 2
	}
	next := &keyTable{entries: make([]keyEntry, size)}
	if t != nil {
		for i := range t.entries {
			if e := &t.entries[i]; e.hash != 0 && (skip == nil || !skip(e)) {
				next.put(*e)
			}
		}
	}
	return next
}

// put adds e to a table being built, which has room for it.
func (t *keyTable) put(e keyEntry) {
	mask := uint64(len(t.entries) - 1)
	i := e.hash >> 8 & mask
	for t.entries[i].hash != 0 {
		i = (i + 1) & mask
	}
	t.entries[i] = e
	t.n++
}

// len returns how many entries t holds; t may be nil.
func (t *keyTable) len() int {
	if t == nil {
		return 0
	}
	return t.n
}
