package jwtcache

import (
	"cmp"
	"context"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
	"github.com/seed7aeb0c6e/jwtcache/internal/shardmap"
)

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
// no Close: it does its housekeeping on its callers' goroutines. Eviction
// passes walk every key, so the caller that runs one (at most every quarter
// of the idle timeout, or on an insert past MaxKeys) pays for them.
type CacheMap struct {
	// slots maps keys to their slots; its reads take no lock and write
	// nothing (see package shardmap).
	slots shardmap.Map[string, slot]
	n     atomic.Int64 // how many keys slots holds

	lastSweep atomic.Int64 // time since epoch of the last idle sweep
	sweeping  atomic.Bool  // an eviction pass runs

	mu sync.Mutex // guards gone, and orders drops against Stats
	// gone sums the counters of the keys dropped so far, so that the map's
	// counters only grow.
	gone Stats

	// cfg is written once by NewCacheMap and only read after.
	cfg mapConfig
}

// slot is a key's entry in a CacheMap.
type slot struct {
	cache *Cache
	// seen is the time since the map's epoch of a recent call for the key,
	// at most the map's stamp interval older than the last one. It is
	// written at most once per interval, so hits on a hot key rarely write
	// shared memory.
	seen atomic.Int64
}

// mapConfig is the validated configuration of a CacheMap.
type mapConfig struct {
	name        string
	named       bool // a MapName (or Name) was given
	tokenFunc   func(ctx context.Context, key string) (Issued, error)
	maxKeys     int
	idleTimeout time.Duration
	cacheOpts   []Option
	epoch       time.Time     // shared by every key's Cache
	stampEvery  time.Duration // how stale a slot's stamp may get before a hit renews it
	// err is the first option found invalid, the map's or its keys'
	// Caches'; a map with one returns it from every call.
	err error
}

// check records err, the first invalid option of m.
func (m *mapConfig) check(err error) {
	if m.err == nil && err != nil {
		m.err = err
	}
}

// MapOption configures a [CacheMap]. Every [Option] is a MapOption too, and
// applies to each key's Cache, but for [Name], which names the map.
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

// MapName names the map in log records and, with a [SharedStore], its keys'
// tokens in the store; every key's Cache takes this name. [Name] given to a
// map does the same: of the two, the later wins. The default is "default".
func MapName(name string) MapOption {
	return mapOptionFunc(func(m *mapConfig) { m.name, m.named = name, name != "" })
}

// MapTokenFunction sets the function that fetches a new token for a key; it
// has the contract of [TokenFunc], per key: calls for different keys may run
// at the same time. It replaces any [TokenFunction] or [IssueFunction] given
// to the map. A map
// without one returns [ErrNoTokenFunction] from every call. Of
// MapTokenFunction and [MapIssueFunction], the later wins. The default is
// none.
func MapTokenFunction(f func(ctx context.Context, key string) (string, error)) MapOption {
	return mapOptionFunc(func(m *mapConfig) {
		m.tokenFunc = nil
		if f != nil {
			m.tokenFunc = func(ctx context.Context, key string) (Issued, error) {
				tok, err := f(ctx, key)
				return Issued{Token: tok}, err
			}
		}
	})
}

// MapIssueFunction sets the function that fetches a new token for a key, as
// [MapTokenFunction] does, for a function that also says how long the token
// lives and what scope it carries (see [Issued]). Of the two, the later wins.
// The default is none.
func MapIssueFunction(f func(ctx context.Context, key string) (Issued, error)) MapOption {
	return mapOptionFunc(func(m *mapConfig) { m.tokenFunc = f })
}

// MaxKeys bounds how many keys the map holds. When a new key takes it past n,
// the least recently used tenth of the keys is dropped (by a last-use stamp
// kept to the second, not an exact LRU list); under concurrent inserts the map
// may briefly hold a few more than n. [Off] means no bound, for callers whose
// keys are few and known; another negative n is an error. The default (0) is
// 10,000.
func MaxKeys(n int) MapOption {
	return mapOptionFunc(func(m *mapConfig) {
		bounds.Rule[int]{Pkg: "jwtcache", Name: "MaxKeys", Off: true, Want: "0 for the default, 10000, or Off for no bound"}.Apply(n, &m.maxKeys, m.check)
	})
}

// IdleTimeout drops a key not asked for during d, with its token. The map
// sweeps its keys on its callers' goroutines, at most every d/4, so a key goes
// between d and about 1.25·d after its last use (later if the map is not
// called at all); last uses are kept to the second, or to d/8 if that is
// finer. [Off] keeps idle keys until MaxKeys evicts them; another negative d
// is an error. The default (0) is an hour.
func IdleTimeout(d time.Duration) MapOption {
	return mapOptionFunc(func(m *mapConfig) {
		bounds.Rule[time.Duration]{Pkg: "jwtcache", Name: "IdleTimeout", Off: true, Want: "0 for the default, 1h, or Off to keep idle keys"}.Apply(d, &m.idleTimeout, m.check)
	})
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
	// A stamp is renewed at most once a second, or eight times per idle
	// timeout if that is shorter, so that a key in use never looks idle.
	cfg.stampEvery = time.Second
	if cfg.idleTimeout > 0 {
		cfg.stampEvery = min(cfg.stampEvery, cfg.idleTimeout/8)
	}
	// Every key's Cache measures time from the map's epoch, so that the
	// time a hit reads also stamps the key's slot.
	cfg.epoch = time.Now()
	keys := newConfig(cfg.cacheOpts)
	if keys.clock != nil {
		cfg.epoch = keys.clock()
	}
	cfg.check(keys.invalidity())
	if cfg.err != nil {
		keys.logger.Error(cfg.err.Error(), "cache", cfg.name)
	}
	return &CacheMap{cfg: cfg}
}

// EnsureToken returns a valid token for key, as [Cache.EnsureToken] does. An
// empty key is an error wrapping [ErrEmptyKey].
func (m *CacheMap) EnsureToken(ctx context.Context, key string) (string, error) {
	s, e := m.hit(key)
	if e != nil {
		return e.token, nil
	}
	t, err := m.get(ctx, key, s)
	return t.Value, err
}

// Token is [CacheMap.EnsureToken] for callers that also need the token's
// expiry. An empty key is an error wrapping [ErrEmptyKey].
func (m *CacheMap) Token(ctx context.Context, key string) (Token, error) {
	s, e := m.hit(key)
	if e != nil {
		return e.value(), nil
	}
	return m.get(ctx, key, s)
}

// Invalidate drops key's cached token, as [Cache.Invalidate] does. The key
// stays in the map.
func (m *CacheMap) Invalidate(key string) {
	if s, ok := m.slots.Load(hashKey(key), key); ok {
		s.cache.Invalidate()
	}
}

// InvalidateToken drops key's cached token only if it is token, and reports
// whether it did, as [Cache.InvalidateToken] does.
func (m *CacheMap) InvalidateToken(key, token string) bool {
	if s, ok := m.slots.Load(hashKey(key), key); ok {
		return s.cache.InvalidateToken(token)
	}
	return false
}

// renew is [Cache.renew] for key's token.
func (m *CacheMap) renew(ctx context.Context, key, token string) (Token, error) {
	if s, ok := m.slots.Load(hashKey(key), key); ok {
		return s.cache.renew(ctx, token)
	}
	return m.Token(ctx, key)
}

// Delete drops key and its token from the map. A fetch in flight for it still
// serves its callers.
func (m *CacheMap) Delete(key string) {
	if s, ok := m.slots.Load(hashKey(key), key); ok {
		m.drop([]candidate{{key: key, s: s}})
	}
}

// Len returns the number of keys the map holds. Under concurrent inserts and
// deletes, it may lag them by the few in progress.
func (m *CacheMap) Len() int {
	return int(m.n.Load())
}

// hit is the first step of every call: it looks key up and returns its slot
// (nil if the map does not hold it) and, if the key's token is fresh, its
// Cache's entry. The clock reading of the Cache's hit test stamps the key.
func (m *CacheMap) hit(key string) (*slot, *entry) {
	s, ok := m.slots.Load(hashKey(key), key)
	if !ok {
		return nil, nil
	}
	e, now, _ := s.cache.hit()
	m.touch(s, now)
	return s, e
}

// get serves a call that was not a hit: through s's Cache, or by adding key
// when the map does not hold it (s is nil).
func (m *CacheMap) get(ctx context.Context, key string, s *slot) (Token, error) {
	if s == nil {
		return m.miss(ctx, key)
	}
	return s.cache.get(ctx)
}

// miss serves a key the map does not hold: it adds the key, then serves it
// as its Cache does. No lock is held: building a Cache fetches nothing, and
// two callers that add the key at once agree on one Cache.
func (m *CacheMap) miss(ctx context.Context, key string) (Token, error) {
	if m.cfg.err != nil {
		return Token{}, m.cfg.err
	}
	if key == "" {
		return Token{}, ErrEmptyKey
	}
	// The map keeps the key: a copy, so that it pins no larger string (a
	// request body, say) and cannot change under the map.
	key = strings.Clone(key)
	s := &slot{cache: m.newCache(key)}
	now := s.cache.clock.Elapsed()
	s.seen.Store(int64(now))
	if got, loaded := m.slots.LoadOrStore(hashKey(key), key, s); loaded {
		s = got
	} else {
		m.n.Add(1)
		m.enforceMaxKeys(s)
	}
	e, now, ok := s.cache.hit()
	m.touch(s, now)
	if ok {
		return e.value(), nil
	}
	return s.cache.get(ctx)
}

// touch renews s's stamp if it is a stamp interval old, and then sweeps idle keys
// if a sweep is due.
func (m *CacheMap) touch(s *slot, now time.Duration) {
	if int64(now)-s.seen.Load() < int64(m.cfg.stampEvery) {
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
	// Keys added while the sweep ran left MaxKeys to it.
	m.enforceMaxKeys(nil)
}

// newCache builds key's Cache: the map's options first, then the map's name,
// key and token function, which win over any in the options.
func (m *CacheMap) newCache(key string) *Cache {
	opts := append(slices.Clip(m.cfg.cacheOpts),
		optionFunc(func(c *config) {
			c.name, c.named = m.cfg.name, m.cfg.named
			c.key = key
			c.epoch = m.cfg.epoch
			if tf := m.cfg.tokenFunc; tf != nil {
				c.tokenFunc = func(ctx context.Context) (Issued, error) { return tf(ctx, key) }
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

// enforceMaxKeys evicts the least recently used tenth of the keys, or as
// many as it takes to get back to MaxKeys if that is more, while the map holds
// more than MaxKeys; spare, the slot just added (or nil), goes last, so that a
// new key is not evicted before its first call. If another pass is running, it
// leaves the work to that pass, which checks again when it ends.
func (m *CacheMap) enforceMaxKeys(spare *slot) {
	oldest := func(all []candidate) []candidate {
		drop := min(max(len(all)-m.cfg.maxKeys, m.cfg.maxKeys/10, 1), len(all))
		slices.SortFunc(all, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(b2i(a.s == spare), b2i(b.s == spare)), cmp.Compare(a.seen, b.seen))
		})
		return all[:drop]
	}
	for range 4 { // each pass makes progress; the bound only guards against a livelock
		if m.cfg.maxKeys <= 0 || m.n.Load() <= int64(m.cfg.maxKeys) {
			return
		}
		if !m.evict(oldest) {
			return
		}
	}
}

// b2i is 1 for true, 0 for false.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// evict drops the keys that pick chooses from all of them, and reports whether
// it ran: one pass runs at a time. A key whose stamp changes while the pass
// runs is kept, and so is one with a fetch in flight, so that its next caller
// does not fetch again beside it.
func (m *CacheMap) evict(pick func(all []candidate) []candidate) bool {
	if !m.sweeping.CompareAndSwap(false, true) {
		return false
	}
	picked := pick(m.all(int(m.n.Load())))
	m.drop(slices.DeleteFunc(picked, func(c candidate) bool {
		return c.s.seen.Load() != c.seen || c.s.cache.flight.Running()
	}))
	m.sweeping.Store(false)
	return true
}

// drop removes the candidates' slots, each only if it is still the key's,
// and keeps their counters in the map's totals.
func (m *CacheMap) drop(cs []candidate) {
	// Under mu, so that Stats sees each key either in the map or in gone.
	m.mu.Lock()
	defer m.mu.Unlock()
	es := make([]shardmap.Entry[string, slot], len(cs))
	for i, c := range cs {
		es[i] = shardmap.Entry[string, slot]{Hash: hashKey(c.key), Key: c.key, Value: c.s}
	}
	dropped := m.slots.DeleteAll(es)
	m.n.Add(-int64(len(dropped)))
	for _, s := range dropped {
		m.gone.add(s.cache.Stats())
	}
}

// keySeed seeds the hash of every CacheMap's keys.
var keySeed = maphash.MakeSeed()

// hashKey returns key's hash for the map's slots (package shardmap): never 0.
func hashKey(key string) uint64 {
	return maphash.String(keySeed, key) | 1<<63
}

// all returns every key with its slot and its slot's stamp; n is a guess at
// how many there are.
func (m *CacheMap) all(n int) []candidate {
	all := make([]candidate, 0, n)
	m.slots.Range(func(e shardmap.Entry[string, slot]) bool {
		all = append(all, candidate{key: e.Key, s: e.Value, seen: e.Value.seen.Load()})
		return true
	})
	return all
}
