package jwtcache_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// tenants is a map token function that mints, for each key, a token whose
// subject is the key, and counts the calls per key.
type tenants struct {
	clock *testkit.Clock
	life  time.Duration
	mu    sync.Mutex
	// guards calls
	calls map[string]int
}

func newTenants(clk *testkit.Clock, life time.Duration) *tenants {
	return &tenants{clock: clk, life: life, calls: map[string]int{}}
}

func (p *tenants) token(_ context.Context, key string) (string, error) {
	p.mu.Lock()
	p.calls[key]++
	p.mu.Unlock()
	return minter.Mint(p.clock.Now(), p.life, map[string]any{jwt.SubjectKey: key}), nil
}

func (p *tenants) count(key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[key]
}

func newTestMap(life time.Duration, opts ...jwtcache.MapOption) (*jwtcache.CacheMap, *tenants, *testkit.Clock) {
	clk := newClock()
	p := newTenants(clk, life)
	base := []jwtcache.MapOption{
		jwtcache.MapTokenFunction(p.token),
		jwtcache.Clock(clk.Now),
		jwtcache.Logger(nil),
	}
	return jwtcache.NewCacheMap(append(base, opts...)...), p, clk
}

func mustMapToken(t *testing.T, m *jwtcache.CacheMap, key string) string {
	t.Helper()
	tok, err := m.EnsureToken(context.Background(), key)
	if err != nil {
		t.Fatalf("EnsureToken(%q) error = %v", key, err)
	}
	return tok
}

func TestCacheMap_PerKey(t *testing.T) {
	m, p, _ := newTestMap(time.Hour)
	for range 3 {
		for _, key := range []string{"tenant-a", "tenant-b"} {
			if got := testkit.Claims(t, mustMapToken(t, m, key)).Subject(); got != key {
				t.Fatalf("EnsureToken(%q) returned a token for %q", key, got)
			}
		}
	}
	for _, key := range []string{"tenant-a", "tenant-b"} {
		if got := p.count(key); got != 1 {
			t.Errorf("fetches for %q = %d; want 1", key, got)
		}
	}
	if got := m.Len(); got != 2 {
		t.Errorf("Len() = %d; want 2", got)
	}
	tok, err := m.Token(context.Background(), "tenant-a")
	if err != nil || tok.Expiry.IsZero() || testkit.Claims(t, tok.Value).Subject() != "tenant-a" {
		t.Errorf("Token() = %+v, %v; want tenant-a's token with its expiry", tok, err)
	}
}

func TestCacheMap_BadInput(t *testing.T) {
	m, _, _ := newTestMap(time.Hour)
	if _, err := m.EnsureToken(context.Background(), ""); !errors.Is(err, jwtcache.ErrEmptyKey) {
		t.Errorf("EnsureToken(\"\") error = %v; want ErrEmptyKey", err)
	}
	if _, err := m.Token(context.Background(), ""); !errors.Is(err, jwtcache.ErrEmptyKey) {
		t.Errorf("Token(\"\") error = %v; want ErrEmptyKey", err)
	}
	if got := m.Len(); got != 0 {
		t.Errorf("Len() = %d after an empty key; want 0", got)
	}
	empty := jwtcache.NewCacheMap(jwtcache.MapName("x"), nil)
	if _, err := empty.EnsureToken(context.Background(), "k"); !errors.Is(err, jwtcache.ErrNoTokenFunction) {
		t.Errorf("EnsureToken() without a token function: error = %v; want ErrNoTokenFunction", err)
	}
	// A TokenFunction given to a map has no key to fetch for: it is ignored.
	ignored := jwtcache.NewCacheMap(jwtcache.TokenFunction(func(context.Context) (string, error) { return "x", nil }))
	if _, err := ignored.EnsureToken(context.Background(), "k"); !errors.Is(err, jwtcache.ErrNoTokenFunction) {
		t.Errorf("EnsureToken() with only TokenFunction: error = %v; want ErrNoTokenFunction", err)
	}
	m.Invalidate("nope")
	m.Delete("nope")
	if m.InvalidateToken("nope", "x") {
		t.Errorf("InvalidateToken() on an absent key = true")
	}
}

// TestCacheMap_CacheOptions checks that Options given to the map configure
// every key's Cache: here a headroom and refresh-ahead that keep a token for
// its whole life, and a logger, which shows the map's name and the key.
func TestCacheMap_CacheOptions(t *testing.T) {
	logger, logs := testkit.NewLogger()
	m, p, clk := newTestMap(time.Minute,
		jwtcache.Headroom(jwtcache.Off), jwtcache.RefreshAhead(jwtcache.Off), jwtcache.Logger(logger),
		jwtcache.Name("ignored"), jwtcache.MapName("billing"))
	for _, key := range []string{"a", "b"} {
		first := mustMapToken(t, m, key)
		clk.Advance(58 * time.Second)
		if got := mustMapToken(t, m, key); got != first || p.count(key) != 1 {
			t.Errorf("key %q: token refetched before expiry with no headroom", key)
		}
		clk.Advance(-58 * time.Second)
	}
	if !strings.Contains(logs.String(), "cache=billing key=a") {
		t.Errorf("log records lack the map's name and key:\n%s", logs)
	}
}

func TestCacheMap_InvalidateAndDelete(t *testing.T) {
	m, p, _ := newTestMap(time.Hour)
	a := mustMapToken(t, m, "a")
	mustMapToken(t, m, "b")
	if !m.InvalidateToken("a", a) || m.InvalidateToken("a", a) {
		t.Errorf("InvalidateToken() twice = not (true, false)")
	}
	if got := mustMapToken(t, m, "a"); got == a || p.count("a") != 2 {
		t.Errorf("after InvalidateToken, EnsureToken() did not fetch anew")
	}
	m.Invalidate("b")
	mustMapToken(t, m, "b")
	if got := p.count("b"); got != 2 {
		t.Errorf("fetches for b after Invalidate = %d; want 2", got)
	}
	m.Delete("b")
	if got := m.Len(); got != 1 {
		t.Errorf("Len() after Delete = %d; want 1", got)
	}
	mustMapToken(t, m, "b")
	if got := p.count("b"); got != 3 {
		t.Errorf("fetches for b after Delete = %d; want 3", got)
	}
}

// TestCacheMap_SlowTenant checks that a tenant whose token function hangs
// does not delay another tenant, neither its first fetch nor its hits.
func TestCacheMap_SlowTenant(t *testing.T) {
	clk := newClock()
	p := newTenants(clk, time.Hour)
	release := make(chan struct{})
	started := make(chan struct{})
	m := jwtcache.NewCacheMap(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.MapTokenFunction(func(ctx context.Context, key string) (string, error) {
			if key == "slow" {
				close(started)
				<-release
			}
			return p.token(ctx, key)
		}))
	slowDone := make(chan error, 1)
	go func() {
		_, err := m.EnsureToken(context.Background(), "slow")
		slowDone <- err
	}()
	<-started
	// The slow tenant's fetch is still blocked: everything below would
	// deadlock if tenant "fast" waited on it.
	for range 1000 {
		if got := testkit.Claims(t, mustMapToken(t, m, "fast")).Subject(); got != "fast" {
			t.Fatalf("EnsureToken(fast) returned a token for %q", got)
		}
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow tenant finished before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Errorf("slow tenant error = %v", err)
	}
}

// TestCacheMap_Isolation runs many goroutines over many keys, with eviction,
// invalidation and deletion interleaved at random, and checks the owner of
// every token returned.
func TestCacheMap_Isolation(t *testing.T) {
	// Tokens outlive the run, so that a descheduled fetch never meets an
	// expired token; keys come and go through MaxKeys, IdleTimeout, Delete.
	m, _, clk := newTestMap(24*time.Hour, jwtcache.MaxKeys(16), jwtcache.IdleTimeout(30*time.Second))
	var wg sync.WaitGroup
	var served atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(uint64(g), 7))
			for range 500 {
				key := "tenant-" + strconv.Itoa(rng.IntN(40))
				switch rng.IntN(20) {
				case 0:
					m.Delete(key)
				case 1:
					m.Invalidate(key)
				case 2:
					clk.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
				}
				tok, err := m.EnsureToken(context.Background(), key)
				if errors.Is(err, jwtcache.ErrRejected) {
					continue // its last two tokens were rejected young: the key backs off
				}
				if err != nil {
					t.Errorf("EnsureToken(%q) error = %v", key, err)
					return
				}
				if got := testkit.Claims(t, tok).Subject(); got != key {
					t.Errorf("EnsureToken(%q) returned a token for %q", key, got)
					return
				}
				if rng.IntN(10) == 0 {
					m.InvalidateToken(key, tok)
				}
				served.Add(1)
			}
		})
	}
	wg.Wait()
	if got := m.Len(); got > 16 {
		t.Errorf("Len() = %d at rest; want at most MaxKeys(16)", got)
	}
}

func TestCacheMap_MaxKeys(t *testing.T) {
	m, p, clk := newTestMap(time.Hour, jwtcache.MaxKeys(100))
	for i := range 1000 {
		clk.Advance(2 * time.Second) // so that last uses differ
		mustMapToken(t, m, "hot")
		mustMapToken(t, m, "k"+strconv.Itoa(i))
		if got := m.Len(); got > 100 {
			t.Fatalf("Len() = %d after %d keys; want at most 100", got, i+2)
		}
	}
	if got := p.count("hot"); got != 1 {
		t.Errorf("fetches for the hot key = %d; want 1 (never evicted)", got)
	}
	if got := p.count("k0"); got != 1 {
		t.Fatalf("fetches for k0 = %d; want 1", got)
	}
	mustMapToken(t, m, "k0") // long evicted: fetched again
	if got := p.count("k0"); got != 2 {
		t.Errorf("fetches for evicted k0 = %d; want 2", got)
	}
}

func TestCacheMap_IdleTimeout(t *testing.T) {
	m, p, clk := newTestMap(time.Hour, jwtcache.IdleTimeout(10*time.Minute))
	mustMapToken(t, m, "idle")
	for range 20 { // "busy" is asked for every minute, "idle" never again
		clk.Advance(time.Minute)
		mustMapToken(t, m, "busy")
	}
	if got := m.Len(); got != 1 {
		t.Errorf("Len() = %d; want 1 (the idle key dropped)", got)
	}
	mustMapToken(t, m, "idle")
	if got, busy := p.count("idle"), p.count("busy"); got != 2 || busy != 1 {
		t.Errorf("fetches: idle %d, busy %d; want 2 and 1", got, busy)
	}
}

// TestCacheMap_ShortIdleTimeout checks that keys in constant use are never
// taken for idle, even with an idle timeout under the stamp's usual second.
func TestCacheMap_ShortIdleTimeout(t *testing.T) {
	m, p, clk := newTestMap(time.Hour, jwtcache.IdleTimeout(500*time.Millisecond))
	for range 50 {
		clk.Advance(100 * time.Millisecond)
		mustMapToken(t, m, "a")
		mustMapToken(t, m, "b")
	}
	if p.count("a") != 1 || p.count("b") != 1 {
		t.Errorf("fetches: a %d, b %d; want 1 each (keys in use kept)", p.count("a"), p.count("b"))
	}
	clk.Advance(time.Second)
	mustMapToken(t, m, "c")
	clk.Advance(200 * time.Millisecond)
	mustMapToken(t, m, "c")
	if got := m.Len(); got != 1 {
		t.Errorf("Len() = %d; want 1 after a and b went idle", got)
	}
}

func TestCacheMap_HitDoesNotAllocate(t *testing.T) {
	m, _, _ := newTestMap(time.Hour)
	ctx := context.Background()
	mustMapToken(t, m, "tenant")
	c, _, _ := newTestCache(time.Hour)
	mustToken(t, c)
	if n := testing.AllocsPerRun(1000, func() { m.EnsureToken(ctx, "tenant") }); n != 0 {
		t.Errorf("CacheMap hit allocates %v times; want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.EnsureToken(ctx) }); n != 0 {
		t.Errorf("Cache hit allocates %v times; want 0", n)
	}
}

func TestCacheMap_Unbounded(t *testing.T) {
	m, _, clk := newTestMap(time.Hour, jwtcache.MaxKeys(jwtcache.Off), jwtcache.IdleTimeout(jwtcache.Off))
	for i := range 300 {
		mustMapToken(t, m, "k"+strconv.Itoa(i))
		clk.Advance(time.Hour / 2)
	}
	if got := m.Len(); got != 300 {
		t.Errorf("Len() = %d; want 300 with no bounds", got)
	}
}

// TestCacheMap_MemoryPerKey measures the heap a key costs beyond its token,
// with 100,000 keys holding cached tokens. The figure is in the README.
func TestCacheMap_MemoryPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 keys")
	}
	const keys = 100_000
	clk := newClock()
	// Every key gets the same pre-minted token, so that only the map's own
	// memory is measured; the token's bytes are shared.
	tok := minter.Mint(clk.Now(), time.Hour, nil)
	m := jwtcache.NewCacheMap(jwtcache.Clock(clk.Now), jwtcache.Logger(nil), jwtcache.MaxKeys(jwtcache.Off),
		jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return tok, nil }))
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) // a UUID's length
	}
	before := heapInUse()
	for _, k := range names {
		if _, err := m.EnsureToken(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	after := heapInUse()
	perKey := float64(after-before) / keys
	t.Logf("heap per idle key with a cached token (token bytes shared, key string excluded): %.0f bytes", perKey)
	if perKey > 1024 {
		t.Errorf("heap per key = %.0f bytes; want under 1 KiB", perKey)
	}
	runtime.KeepAlive(m)
	runtime.KeepAlive(names)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Benchmarks: a hit through the map, on one key among n, single and parallel.

func BenchmarkCacheMapHit(b *testing.B) {
	for _, n := range []int{1, 1_000, 100_000} {
		m, key := warmMap(b, n)
		ctx := context.Background()
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.EnsureToken(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("keys="+strconv.Itoa(n)+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := m.EnsureToken(ctx, key); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkCacheMapHitSpread spreads hits over every key, so that most miss
// the CPU caches: it measures memory latency as much as the map.
func BenchmarkCacheMapHitSpread(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		m, _ := warmMap(b, n)
		keys := make([]string, n)
		for i := range keys {
			keys[i] = mapKey(i)
		}
		ctx := context.Background()
		b.Run("keys="+strconv.Itoa(n)+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			var seed atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.Add(7919))
				for pb.Next() {
					i = (i + 7919) % n
					if _, err := m.EnsureToken(ctx, keys[i]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func mapKey(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// warmMap returns an unbounded map holding n keys with cached tokens, and
// one of them.
func warmMap(b *testing.B, n int) (*jwtcache.CacheMap, string) {
	b.Helper()
	tok := minter.Mint(time.Now(), time.Hour, nil)
	m := jwtcache.NewCacheMap(jwtcache.MaxKeys(jwtcache.Off), jwtcache.Logger(nil),
		jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return tok, nil }))
	for i := range n {
		if _, err := m.EnsureToken(context.Background(), mapKey(i)); err != nil {
			b.Fatal(err)
		}
	}
	return m, mapKey(n / 2)
}
