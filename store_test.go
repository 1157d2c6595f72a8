package jwtcache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// memStore is a Store in memory that behaves as a network store does: a call
// whose context has ended fails, it can be made slow or down, and its leases
// run out on the test's clock.
type memStore struct {
	clock *testkit.Clock

	mu sync.Mutex
	// guards the fields below
	tokens map[string]memToken
	leases map[string]memLease
	down   error         // when not nil, every call fails with it
	delay  time.Duration // real time each call takes, unless its context ends first
	panics string        // the op that panics, as a buggy Store might
	calls  map[string]int
	nextID int
}

type memToken struct {
	token  string
	expiry time.Time
}

type memLease struct {
	owner int
	until time.Time
}

var _ jwtcache.Store = (*memStore)(nil)

func newMemStore(clock *testkit.Clock) *memStore {
	return &memStore{clock: clock, tokens: map[string]memToken{}, leases: map[string]memLease{}, calls: map[string]int{}}
}

// enter counts a call of op and fails it as a network store would.
func (s *memStore) enter(ctx context.Context, op string) error {
	s.mu.Lock()
	s.calls[op]++
	down, delay, panics := s.down, s.delay, s.panics
	s.mu.Unlock()
	if op == panics {
		panic("memstore: " + op)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %s: %w", op, err)
	}
	if down != nil {
		return fmt.Errorf("memstore: %s: %w", op, down)
	}
	return nil
}

func (s *memStore) Load(ctx context.Context, key string) (string, time.Time, error) {
	if err := s.enter(ctx, "load"); err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[key]
	if !ok || !s.clock.Now().Before(t.expiry) {
		return "", time.Time{}, jwtcache.ErrNotFound
	}
	return t.token, t.expiry, nil
}

func (s *memStore) Save(ctx context.Context, key, token string, expiry time.Time) error {
	if err := s.enter(ctx, "save"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[key] = memToken{token, expiry}
	return nil
}

func (s *memStore) CompareAndDelete(ctx context.Context, key, token string) (bool, error) {
	if err := s.enter(ctx, "delete"); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[key]; ok && t.token == token {
		delete(s.tokens, key)
		return true, nil
	}
	return false, nil
}

func (s *memStore) Lease(ctx context.Context, key string, ttl time.Duration) (func(context.Context, time.Duration) error, bool, error) {
	if err := s.enter(ctx, "lease"); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if l, ok := s.leases[key]; ok && now.Before(l.until) {
		return nil, false, nil
	}
	s.nextID++
	owner := s.nextID
	s.leases[key] = memLease{owner, now.Add(ttl)}
	return func(ctx context.Context, keep time.Duration) error {
		if err := s.enter(ctx, "release"); err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if l, ok := s.leases[key]; !ok || l.owner != owner {
			return nil
		}
		if keep > 0 {
			s.leases[key] = memLease{owner, s.clock.Now().Add(keep)}
		} else {
			delete(s.leases, key)
		}
		return nil
	}, true, nil
}

func (s *memStore) saved(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[key].token
}

func (s *memStore) set(down error, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.delay = down, delay
}

func (s *memStore) setPanic(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.panics = op
}

// leased reports whether key's lease is held at the store's clock's time.
func (s *memStore) leased(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[key]
	return ok && s.clock.Now().Before(l.until)
}

func (s *memStore) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// seam is a fleet of replicas sharing a memStore on one fake clock, with one
// provider counting the tokens it issues.
type seam struct {
	clock *testkit.Clock
	store *memStore
	p     *provider
}

func newSeam() *seam {
	clk := newClock()
	return &seam{clock: clk, store: newMemStore(clk), p: &provider{clock: clk, life: time.Hour}}
}

// replica returns a cache of the fleet named name (none if name is "").
func (f *seam) replica(name string, opts ...jwtcache.Option) *jwtcache.Cache {
	base := []jwtcache.Option{jwtcache.TokenFunction(f.p.token), jwtcache.Clock(f.clock.Now),
		jwtcache.Logger(nil), jwtcache.SharedStore(f.store)}
	if name != "" {
		base = append(base, jwtcache.Name(name))
	}
	return jwtcache.NewCache(append(base, opts...)...)
}

func (f *seam) issued() int64 { return f.p.calls.Load() }

// TestStore_Seam specifies the cache's side of the Store contract with an
// in-memory store, without Redis.
func TestStore_Seam(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *seam)
	}{
		{"adopt: a second replica takes the first's token", func(t *testing.T, f *seam) {
			a, b := f.replica("billing"), f.replica("billing")
			ta, tb := mustToken(t, a), mustToken(t, b)
			if ta != tb || f.issued() != 1 {
				t.Errorf("replicas got the same token: %v, tokens issued = %d; want true, 1", ta == tb, f.issued())
			}
			if got := f.store.saved("billing"); got != ta {
				t.Errorf("store holds another token than the one fetched")
			}
		}},
		{"lease lost: wait for the holder's token, do not fetch beside it", func(t *testing.T, f *seam) {
			release, ok, err := f.store.Lease(context.Background(), "billing", time.Minute)
			if err != nil || !ok {
				t.Fatal("the test could not take the lease")
			}
			b := f.replica("billing")
			done := make(chan string, 1)
			go func() { tok, _ := b.EnsureToken(context.Background()); done <- tok }()
			testkit.Eventually(t, "the replica to poll the store", func() bool { return f.store.count("load") >= 3 })
			holder := minter.Mint(f.clock.Now(), time.Hour, nil)
			f.store.Save(context.Background(), "billing", holder, f.clock.Now().Add(time.Hour))
			release(context.Background(), 0)
			if got := <-done; got != holder || f.issued() != 0 {
				t.Errorf("EnsureToken() = the holder's token: %v, tokens issued = %d; want true, 0", got == holder, f.issued())
			}
		}},
		{"ExclusiveFetch, store down: no fetch alone, an error", func(t *testing.T, f *seam) {
			f.store.set(errors.New("down"), 0)
			b := f.replica("billing", jwtcache.ExclusiveFetch(), jwtcache.FetchTimeout(300*time.Millisecond))
			if _, err := b.EnsureToken(context.Background()); err == nil || !strings.Contains(err.Error(), "ExclusiveFetch") || f.issued() != 0 {
				t.Errorf("EnsureToken() error = %v, tokens issued = %d; want the ExclusiveFetch error, 0", err, f.issued())
			}
			if n := f.store.count("delete") + f.store.count("load"); n < 2 {
				t.Errorf("%d store calls; want the store tried again within the fetch", n)
			}
			f.store.set(nil, 0)
			f.clock.Advance(2 * time.Second) // the backoff
			if mustToken(t, b); f.issued() != 1 {
				t.Errorf("tokens issued with the store back = %d; want 1", f.issued())
			}
		}},
		{"ExclusiveFetch, a store blip: tried again, one fetch", func(t *testing.T, f *seam) {
			f.store.set(errors.New("down"), 0)
			b := f.replica("billing", jwtcache.ExclusiveFetch())
			done := make(chan error, 1)
			go func() { _, err := b.EnsureToken(context.Background()); done <- err }()
			testkit.Eventually(t, "the fetch to try the store twice", func() bool { return f.store.count("load")+f.store.count("delete") >= 2 })
			if f.issued() != 0 {
				t.Errorf("tokens issued with the store down = %d; want 0", f.issued())
			}
			f.store.set(nil, 0)
			if err := <-done; err != nil || f.issued() != 1 || !f.store.leased("billing") && f.store.saved("billing") == "" {
				t.Errorf("EnsureToken() error = %v, tokens issued = %d; want a token, 1, saved", err, f.issued())
			}
		}},
		{"lease lost, holder saves nothing: an error, not a second fetch", func(t *testing.T, f *seam) {
			f.store.Lease(context.Background(), "billing", time.Minute) // a holder that hangs
			b := f.replica("billing", jwtcache.FetchTimeout(200*time.Millisecond))
			if _, err := b.EnsureToken(context.Background()); err == nil || f.issued() != 0 {
				t.Errorf("EnsureToken() error = %v, tokens issued = %d; want an error, 0", err, f.issued())
			}
			f.clock.Advance(time.Minute) // the holder's lease runs out
			f.clock.Advance(2 * time.Second)
			if tok := mustToken(t, b); tok == "" || f.issued() != 1 {
				t.Errorf("tokens issued once the lease ran out = %d; want 1", f.issued())
			}
		}},
		{"store down: fetch alone, no caller error", func(t *testing.T, f *seam) {
			f.store.set(errors.New("connection refused"), 0)
			a := f.replica("billing")
			mustToken(t, a)
			if got := a.Stats().StoreErrors; got == 0 || f.issued() != 1 {
				t.Errorf("StoreErrors = %d, tokens issued = %d; want some, 1", got, f.issued())
			}
		}},
		{"slow store: each call bounded, the token function still runs", func(t *testing.T, f *seam) {
			f.store.set(nil, time.Hour) // every call hangs until its context ends
			a := f.replica("billing", jwtcache.FetchTimeout(time.Second))
			start := time.Now()
			mustToken(t, a)
			if f.issued() != 1 {
				t.Errorf("tokens issued = %d; want 1", f.issued())
			}
			if took := time.Since(start); took > 900*time.Millisecond {
				t.Errorf("a hanging store took the fetch %v of its 1s; want a tenth per call", took)
			}
		}},
		{"rejected token: never adopted again, deleted from the store", func(t *testing.T, f *seam) {
			a := f.replica("billing")
			t1 := mustToken(t, a)
			if !a.InvalidateToken(t1) {
				t.Fatal("InvalidateToken(t1) = false")
			}
			t2 := mustToken(t, a)
			if t2 == t1 {
				t.Fatalf("EnsureToken() after InvalidateToken(t1) = t1, adopted from the store")
			}
			if got := f.store.saved("billing"); got != t2 {
				t.Errorf("store holds the rejected token or none; want the replacement")
			}
			a.Invalidate()
			if t3 := mustToken(t, a); t3 == t2 || t3 == t1 {
				t.Errorf("EnsureToken() after Invalidate() = an invalidated token")
			}
		}},
		{"two replicas rejected on one token: two tokens issued, not three", func(t *testing.T, f *seam) {
			a, b := f.replica("billing"), f.replica("billing")
			t1 := mustToken(t, a)
			if mustToken(t, b) != t1 {
				t.Fatal("replicas do not share")
			}
			a.InvalidateToken(t1)
			t2 := mustToken(t, a)
			b.InvalidateToken(t1)
			if got := mustToken(t, b); got != t2 {
				t.Errorf("the second rejected replica got its own token; want the first's replacement")
			}
			if f.issued() != 2 {
				t.Errorf("tokens issued = %d; want 2", f.issued())
			}
			if f.store.saved("billing") != t2 {
				t.Errorf("the second replica's compare-and-delete removed the replacement")
			}
		}},
		{"cancelled trigger: the refresh still reaches the store", func(t *testing.T, f *seam) {
			a := f.replica("billing")
			t1 := mustToken(t, a)
			f.clock.Advance(50 * time.Minute) // into the refresh window
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the request that triggers the refresh is already gone
			if got, err := a.EnsureToken(ctx); err != nil || got != t1 {
				t.Fatalf("EnsureToken() in the refresh window = %v; want the current token at once", err)
			}
			testkit.Eventually(t, "the refresh to be saved", func() bool {
				s := f.store.saved("billing")
				return s != "" && s != t1
			})
			b := f.replica("billing")
			if mustToken(t, b) != f.store.saved("billing") || f.issued() != 2 {
				t.Errorf("a new replica did not adopt the refreshed token (tokens issued = %d)", f.issued())
			}
		}},
		{"hanging store and many rejections: every fetch still succeeds", func(t *testing.T, f *seam) {
			a := f.replica("billing", jwtcache.FetchTimeout(time.Second))
			tok := mustToken(t, a)
			f.store.set(nil, time.Hour) // every call hangs until its context ends
			for i := range 12 {         // more rejections than the cache remembers
				// Each rejected after a while, as a revocation is, not as
				// it arrives, which would make the cache back off.
				f.clock.Advance(11 * time.Second)
				a.InvalidateToken(tok)
				next, err := a.EnsureToken(context.Background())
				if err != nil || next == tok {
					t.Fatalf("EnsureToken() after rejection %d with a hanging store: %v", i+1, err)
				}
				tok = next
			}
		}},
		{"fetch timed out: the lease is kept for a retry delay, then frees", func(t *testing.T, f *seam) {
			f.p.setGate(make(chan struct{})) // a provider that never answers
			a := f.replica("billing", jwtcache.FetchTimeout(100*time.Millisecond))
			if _, err := a.EnsureToken(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("EnsureToken() error = %v; want the fetch's deadline", err)
			}
			if !f.store.leased("billing") || a.Stats().StoreErrors != 0 {
				t.Errorf("after a timed-out fetch: lease held %v, StoreErrors %d; want held, 0", f.store.leased("billing"), a.Stats().StoreErrors)
			}
			f.clock.Advance(2 * time.Second)
			if f.store.leased("billing") {
				t.Errorf("the lease is still held 2s after the failed fetch; want it kept 1-2s only")
			}
		}},
		{"a Store that panics: ErrPanic, and the lease is not left behind", func(t *testing.T, f *seam) {
			f.store.setPanic("save")
			a := f.replica("billing")
			if _, err := a.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrPanic) {
				t.Fatalf("EnsureToken() with a Store that panics: error = %v; want ErrPanic", err)
			}
			f.clock.Advance(2 * time.Second) // the lease was taken for the 15s fetch timeout
			if f.store.leased("billing") {
				t.Errorf("the lease is still held after the fetch panicked")
			}
			f.store.setPanic("")
			f.clock.Advance(2 * time.Second)
			mustToken(t, a)
		}},
		{"unnamed caches with a store: ErrNoName, nothing fetched", func(t *testing.T, f *seam) {
			for _, c := range []*jwtcache.Cache{f.replica(""), f.replica("")} {
				if _, err := c.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrNoName) {
					t.Errorf("EnsureToken() of an unnamed cache with a store: error = %v; want ErrNoName", err)
				}
			}
			m := jwtcache.NewCacheMap(jwtcache.SharedStore(f.store), jwtcache.Logger(nil),
				jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return "x", nil }))
			if _, err := m.EnsureToken(context.Background(), "acme"); !errors.Is(err, jwtcache.ErrNoName) {
				t.Errorf("EnsureToken() of an unnamed map with a store: error = %v; want ErrNoName", err)
			}
			if f.issued() != 0 || f.store.count("load") != 0 {
				t.Errorf("an unnamed cache used the provider or the store")
			}
		}},
		{"maps named with Name do not share tenants' tokens", func(t *testing.T, f *seam) {
			newMap := func(name string) *jwtcache.CacheMap {
				return jwtcache.NewCacheMap(jwtcache.Name(name), jwtcache.SharedStore(f.store), jwtcache.Clock(f.clock.Now),
					jwtcache.Logger(nil), jwtcache.MapTokenFunction(func(ctx context.Context, _ string) (string, error) {
						return f.p.token(ctx)
					}))
			}
			orders, billing := newMap("orders"), newMap("billing")
			to, tb := mustMapToken(t, orders, "acme"), mustMapToken(t, billing, "acme")
			if to == tb || f.issued() != 2 {
				t.Errorf("maps named orders and billing share a token: %v (tokens issued = %d)", to == tb, f.issued())
			}
			if f.store.saved("orders:acme") != to || f.store.saved("billing:acme") != tb {
				t.Errorf("store keys are not the maps' names and the key")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newSeam()) })
	}
}

// TestStore_FleetOutage has a fleet sharing a store while the provider is
// down: the provider sees about one call a second from the whole fleet, not
// one per replica, and once it answers again, callers are served within 2s.
func TestStore_FleetOutage(t *testing.T) {
	f := newSeam()
	f.p.setFail(errors.New("idp down"))
	const replicas = 5
	var fleet []*jwtcache.Cache
	for range replicas {
		// A short fetch timeout, so that a replica waiting for the lease's
		// holder gives up quickly in real time.
		fleet = append(fleet, f.replica("billing", jwtcache.FetchTimeout(40*time.Millisecond)))
	}
	const step = 250 * time.Millisecond
	call := func() (served int64) {
		var wg sync.WaitGroup
		var n atomic.Int64
		for _, c := range fleet {
			wg.Go(func() {
				if _, err := c.EnsureToken(context.Background()); err == nil {
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return n.Load()
	}
	const outage = 60 * time.Second
	for elapsed := time.Duration(0); elapsed < outage; elapsed += step {
		f.clock.Advance(step)
		if served := call(); served != 0 {
			t.Fatalf("%d callers served during an outage with no token", served)
		}
	}
	if got, max := f.issued(), int64(outage/time.Second)+1; got > max || got < int64(outage/(2*time.Second))-1 {
		t.Errorf("provider calls from %d replicas in %v of outage = %d; want about one per 1-2s fleet-wide (at most %d)",
			replicas, outage, got, max)
	}
	f.p.setFail(nil)
	var first, all time.Duration = -1, -1
	for elapsed := time.Duration(0); all < 0; elapsed += step {
		if elapsed > 10*time.Second {
			t.Fatalf("callers still failing %v after the provider came back", elapsed)
		}
		served := call()
		if served > 0 && first < 0 {
			first = elapsed
		}
		if served == replicas {
			all = elapsed
		}
		f.clock.Advance(step)
	}
	// The first replica gets the lease once its holder's hold (1-2s after
	// the last failure) runs out and a replica's own retry (1-2s after its
	// last failure) comes: 2s, or a retry later when a replica's retry came
	// just before the hold ran out (here a replica that misses the lease
	// gives up at once in real time, where a real one would wait for the
	// lease to come free); the others adopt its token at their next try.
	if first > 3*time.Second || all > 5*time.Second {
		t.Errorf("first caller served %v, every caller %v after the provider came back; want within 3s and 5s", first, all)
	}
	t.Logf("%d replicas: %d provider calls in %v of outage; first caller served %v, every caller %v after it ended",
		replicas, f.issued()-1, outage, first, all)
}

// TestStore_Namespaces checks that no two caches share a store key: a name
// with a ':' is escaped, so a Cache named "a:b" and the key "b" of a map
// named "a" keep apart, and an empty name is no name.
func TestStore_Namespaces(t *testing.T) {
	f := newSeam()
	c := f.replica("a:b")
	m := jwtcache.NewCacheMap(jwtcache.Name("a"), jwtcache.SharedStore(f.store), jwtcache.Clock(f.clock.Now),
		jwtcache.Logger(nil), jwtcache.MapTokenFunction(func(ctx context.Context, _ string) (string, error) {
			return f.p.token(ctx)
		}))
	if tc, tm := mustToken(t, c), mustMapToken(t, m, "b"); tc == tm || f.issued() != 2 {
		t.Errorf("Cache a:b and key b of map a share a token: %v (tokens issued = %d)", tc == tm, f.issued())
	}
	if f.store.saved(`a\:b`) == "" || f.store.saved("a:b") == "" {
		t.Errorf("store keys are not `a\\:b` and `a:b`")
	}
	if _, err := f.replica("", jwtcache.Name("")).EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrNoName) {
		t.Errorf("EnsureToken() of a cache named \"\" with a store: error = %v; want ErrNoName", err)
	}
}
