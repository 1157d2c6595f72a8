package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/redisstore"
)

// redisProc is a real redis-server on 127.0.0.1 ([testkit.RedisServer]),
// with the test that started it.
type redisProc struct {
	*testkit.RedisServer
	t    testing.TB
	name string
}

// startRedis starts a lone redis-server.
func startRedis(t testing.TB) *redisProc {
	t.Helper()
	port := testkit.FreePorts(t, 1)[0]
	return startProc(t, fmt.Sprintf("redis-server-%d", port), t.TempDir(), port)
}

// startProc starts redis-server on 127.0.0.1:port, in dir, with args added
// (see [testkit.StartRedis]).
func startProc(t testing.TB, name, dir string, port int, args ...string) *redisProc {
	t.Helper()
	return &redisProc{RedisServer: testkit.StartRedis(t, name, dir, port, args...), t: t, name: name}
}

// redisBin returns the path of a Redis program, or skips the test without it
// (see [testkit.Unavailable]).
func redisBin(t testing.TB, name string) string {
	t.Helper()
	return testkit.LookPath(t, name, testkit.RedisInstall)
}

// start starts the process, again after kill.
func (p *redisProc) start() {
	p.t.Helper()
	p.Start(p.t)
}

// kill kills the process and waits until it has exited.
func (p *redisProc) kill() { p.Stop() }

func (p *redisProc) addr() string { return p.Addr() }

// client returns a client of the process, as a replica of a fleet would
// configure it, closed when the test ends.
func (p *redisProc) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: p.addr(), DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// admin returns a plain client on the process alone, for the test's own
// commands. The caller closes it.
func (p *redisProc) admin() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.addr(), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
}

var testKey = bytes.Repeat([]byte{7}, 32)

func newStore(t *testing.T, c redis.UniversalClient, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(c, append([]redisstore.Option{redisstore.Key("k1", testKey)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// minter signs the tests' tokens.
var minter = testkit.NewMinter("redisstore-test")

func TestStore_RoundTrip(t *testing.T) {
	r := startRedis(t)
	c := r.client(t)
	s := newStore(t, c)
	ctx := context.Background()
	if _, _, err := s.Load(ctx, "billing"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Fatalf("Load() of a missing key: error = %v; want ErrNotFound", err)
	}
	tok := minter.Mint(time.Now(), time.Hour, nil)
	expiry := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	if err := s.Save(ctx, "billing", tok, expiry); err != nil {
		t.Fatal(err)
	}
	got, gotExpiry, err := s.Load(ctx, "billing")
	if err != nil || got != tok || !gotExpiry.Equal(expiry) {
		t.Errorf("Load() = %q, %v, %v; want the token and %v", got[:10], gotExpiry, err, expiry)
	}
	// The value lives in Redis until the token expires.
	keys, _ := c.Keys(ctx, "jwtcache:*:token").Result()
	if len(keys) != 1 {
		t.Fatalf("token keys = %v; want one", keys)
	}
	if ttl := c.PTTL(ctx, keys[0]).Val(); ttl < 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL = %v; want the token's remaining life", ttl)
	}
}

func TestStore_Encryption(t *testing.T) {
	r := startRedis(t)
	c := r.client(t)
	ctx := context.Background()
	s := newStore(t, c)
	tok := minter.Mint(time.Now(), time.Hour, nil)
	if err := s.Save(ctx, "billing", tok, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	keys, _ := c.Keys(ctx, "jwtcache:*:token").Result()
	raw, err := c.Get(ctx, keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(tok)) || bytes.Contains(raw, []byte(tok[:20])) {
		t.Fatalf("the raw Redis value contains the token")
	}

	corrupt := func(name string, value []byte, store *redisstore.Store) {
		t.Helper()
		c.Set(ctx, keys[0], value, time.Hour)
		if _, _, err := store.Load(ctx, "billing"); !errors.Is(err, redisstore.ErrCorrupt) {
			t.Errorf("%s: Load() error = %v; want ErrCorrupt", name, err)
		}
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	corrupt("tampered", flipped, s)
	corrupt("truncated", raw[:len(raw)/2], s)
	corrupt("empty", []byte{}, s)
	corrupt("garbage", []byte("not a value at all"), s)
	other, err := redisstore.New(c, redisstore.Key("k2", bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	corrupt("unknown key ID", raw, other)

	// A value copied to another cache's key does not decrypt there.
	c.Set(ctx, keys[0], raw, time.Hour)
	if err := s.Save(ctx, "payroll", minter.Mint(time.Now(), time.Hour, nil), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	payroll := ""
	for _, k := range c.Keys(ctx, "jwtcache:*:token").Val() {
		if k != keys[0] {
			payroll = k
		}
	}
	c.Set(ctx, payroll, raw, time.Hour)
	if _, _, err := s.Load(ctx, "payroll"); !errors.Is(err, redisstore.ErrCorrupt) {
		t.Errorf("copied value: Load() error = %v; want ErrCorrupt", err)
	}

	// Rotation: a store with a new key first and the old one after reads
	// what the old key sealed.
	rotated, err := redisstore.New(c, redisstore.Key("k2", bytes.Repeat([]byte{9}, 32)), redisstore.Key("k1", testKey))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := rotated.Load(ctx, "billing"); err != nil || got != tok {
		t.Errorf("rotated store: Load() error = %v; want the token sealed with the old key", err)
	}
}

func TestStore_New(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	tests := []struct {
		name string
		opts []redisstore.Option
		ok   bool
	}{
		{"no key", nil, false},
		{"short key", []redisstore.Option{redisstore.Key("k", []byte("short"))}, false},
		{"empty ID", []redisstore.Option{redisstore.Key("", testKey)}, false},
		{"duplicate ID", []redisstore.Option{redisstore.Key("k", testKey), redisstore.Key("k", testKey)}, false},
		{"key and plaintext", []redisstore.Option{redisstore.Key("k", testKey), redisstore.InsecurePlaintextTokens()}, false},
		{"key", []redisstore.Option{redisstore.Key("k", testKey)}, true},
		{"plaintext", []redisstore.Option{redisstore.InsecurePlaintextTokens(), redisstore.Prefix("dev")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redisstore.New(c, tt.opts...); (err == nil) != tt.ok {
				t.Errorf("New() error = %v; want ok = %v", err, tt.ok)
			}
		})
	}
	if _, err := redisstore.New(nil, redisstore.Key("k", testKey)); err == nil {
		t.Errorf("New(nil) = nil error")
	}
}

func TestStore_Lease(t *testing.T) {
	r := startRedis(t)
	a, b := newStore(t, r.client(t)), newStore(t, r.client(t))
	ctx := context.Background()
	release, ok, err := a.Lease(ctx, "billing", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first Lease() = %v, %v; want the lease", ok, err)
	}
	if _, ok, _ := b.Lease(ctx, "billing", time.Minute); ok {
		t.Fatalf("second Lease() got the lease while it was held")
	}
	if err := release(ctx, 0); err != nil {
		t.Fatalf("release() error = %v", err)
	}
	releaseB, ok, _ := b.Lease(ctx, "billing", 100*time.Millisecond)
	if !ok {
		t.Fatalf("Lease() after release did not get it")
	}
	release(ctx, 0) // a's release must not free b's lease
	if _, ok, _ := a.Lease(ctx, "billing", time.Minute); ok {
		t.Fatalf("a stale release freed another owner's lease")
	}
	_ = releaseB // b "dies" holding the lease: it runs out by itself
	awaitLease(t, a, "a dead holder's lease")
}

// awaitLease takes the lease of "billing" once what holds it runs out.
func awaitLease(t *testing.T, s *redisstore.Store, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := s.Lease(context.Background(), "billing", time.Minute); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never ran out", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStore_LeaseKept has a holder whose fetch failed keep the lease a
// little longer, and only its own.
func TestStore_LeaseKept(t *testing.T) {
	r := startRedis(t)
	c := r.client(t)
	a := newStore(t, c)
	ctx := context.Background()
	release, ok, err := a.Lease(ctx, "billing", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lease() = %v, %v; want the lease", ok, err)
	}
	if err := release(ctx, 300*time.Millisecond); err != nil {
		t.Fatalf("release(keep) error = %v", err)
	}
	if _, ok, _ := a.Lease(ctx, "billing", time.Minute); ok {
		t.Fatalf("Lease() right after release(keep) got the lease; want it kept")
	}
	// The kept lease now runs out in 300ms, not the minute it was taken for.
	ttl := leaseTTL(t, c)
	if ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("lease TTL after release(300ms) = %v; want at most 300ms", ttl)
	}
	awaitLease(t, a, "a kept lease")
	// A stale owner's keep does not touch another owner's lease.
	release(ctx, time.Millisecond)
	if ttl := leaseTTL(t, c); ttl < 30*time.Second {
		t.Fatalf("another owner's release(keep) changed the lease's TTL to %v", ttl)
	}
}

// leaseTTL returns the TTL of the only lease in Redis.
func leaseTTL(t *testing.T, c *redis.Client) time.Duration {
	t.Helper()
	keys, err := c.Keys(context.Background(), "*:lease").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("lease keys = %v, %v; want one", keys, err)
	}
	ttl, err := c.PTTL(context.Background(), keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	return ttl
}

// TestStore_CompareAndDelete deletes a rejected token only while the store
// still holds it.
func TestStore_CompareAndDelete(t *testing.T) {
	r := startRedis(t)
	s := newStore(t, r.client(t))
	ctx := context.Background()
	expiry := time.Now().Add(time.Hour)
	t1, t2 := minter.Mint(time.Now(), time.Hour, nil), minter.Mint(time.Now(), time.Hour, nil)
	if deleted, err := s.CompareAndDelete(ctx, "billing", t1); err != nil || deleted {
		t.Fatalf("CompareAndDelete() with nothing saved = %v, %v; want false, nil", deleted, err)
	}
	if err := s.Save(ctx, "billing", t2, expiry); err != nil {
		t.Fatal(err)
	}
	if deleted, err := s.CompareAndDelete(ctx, "billing", t1); err != nil || deleted {
		t.Fatalf("CompareAndDelete(t1) while t2 is saved = %v, %v; want false, nil", deleted, err)
	}
	if got, _, err := s.Load(ctx, "billing"); err != nil || got != t2 {
		t.Fatalf("Load() after a CompareAndDelete of another token = %v; want t2 kept", err)
	}
	if deleted, err := s.CompareAndDelete(ctx, "billing", t2); err != nil || !deleted {
		t.Fatalf("CompareAndDelete(t2) = %v, %v; want true, nil", deleted, err)
	}
	if _, _, err := s.Load(ctx, "billing"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Fatalf("Load() after CompareAndDelete = %v; want ErrNotFound", err)
	}
}

// fleet is n replicas, each a Cache with its own Redis client and store, on
// one Redis and one fake clock, and a provider counting its fetches.
type fleet struct {
	caches  []*jwtcache.Cache
	fetches atomic.Int64
	clock   *testkit.Clock

	mu sync.Mutex
	// guards exps
	exps map[string]time.Time // the exp claims of the tokens returned, each parsed once
}

func newFleet(t *testing.T, r *redisProc, n int, life time.Duration) *fleet {
	return newFleetOn(t, func() redis.UniversalClient { return r.client(t) }, n, life)
}

// newFleetOn is newFleet on any Redis topology: each replica's store gets a
// client of its own from client. opts come after the fleet's own options, so
// they override them.
func newFleetOn(t *testing.T, client func() redis.UniversalClient, n int, life time.Duration, opts ...jwtcache.Option) *fleet {
	// The fake clock starts at the real time: Redis expires keys by its own.
	f := &fleet{clock: testkit.NewClock(time.Now())}
	for range n {
		f.caches = append(f.caches, jwtcache.NewCache(append([]jwtcache.Option{
			jwtcache.Name("billing"), jwtcache.Logger(nil), jwtcache.Clock(f.clock.Now),
			jwtcache.Headroom(10 * time.Second), jwtcache.RefreshAhead(0.1),
			jwtcache.SharedStore(newStore(t, client())),
			jwtcache.TokenFunction(func(context.Context) (string, error) {
				f.fetches.Add(1)
				return minter.Mint(f.clock.Now(), life, nil), nil
			})}, opts...)...))
	}
	return f
}

// run has every replica serve calls in bursts while the clock advances by
// step, for steps steps. It returns the calls that failed, and fails the test
// if any returned token had expired.
func (f *fleet) run(t *testing.T, steps int, step time.Duration) (calls, failed int64) {
	t.Helper()
	var nCalls, nFailed atomic.Int64
	for range steps {
		f.clock.Advance(step)
		now := f.clock.Now()
		var wg sync.WaitGroup
		for _, c := range f.caches {
			wg.Go(func() {
				for range 5 {
					tok, err := c.Token(context.Background())
					nCalls.Add(1)
					if err != nil {
						nFailed.Add(1)
						continue
					}
					if !now.Before(tok.Expiry) {
						t.Errorf("a replica returned a token that expired at %v at %v", tok.Expiry, now)
					}
					if exp := f.exp(t, tok.Value); !now.Before(exp) {
						t.Errorf("a replica returned a token whose exp claim is %v at %v", exp, now)
					}
				}
			})
		}
		wg.Wait()
	}
	return nCalls.Load(), nFailed.Load()
}

// exp returns the exp claim of tok, read from the token itself rather than
// from what the cache made of it. It may be called from any goroutine.
func (f *fleet) exp(t *testing.T, tok string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp, ok := f.exps[tok]
	if !ok {
		exp = testkit.Claims(t, tok).Expiration()
		if f.exps == nil {
			f.exps = map[string]time.Time{}
		}
		f.exps[tok] = exp
	}
	return exp
}

// TestFleet_OneTokenForAll has 20 replicas share tokens through Redis over
// five token lifetimes: the provider sees at most one fetch per lifetime, plus
// one.
func TestFleet_OneTokenForAll(t *testing.T) {
	r := startRedis(t)
	const life = 10 * time.Minute
	f := newFleet(t, r, 20, life)
	// 50 simulated minutes. A refresh window (45 to 75 seconds of a 10
	// minute token) spans many steps, so that a refresh lands within it
	// even when the race detector slows the fetch.
	calls, failed := f.run(t, 1200, 2500*time.Millisecond)
	if failed != 0 {
		t.Errorf("%d of %d calls failed; want none", failed, calls)
	}
	// A token is refreshed no sooner than 0.75 of its local life (a second
	// less than its lifetime): the fleet fetches no more often than that.
	if got, max := f.fetches.Load(), int64(50*time.Minute/(3*(life-time.Second)/4))+1; got > max {
		t.Errorf("fetches fleet-wide = %d over 5 lifetimes; want at most %d, one per 0.75 of a local life", got, max)
	}
	t.Logf("%d calls across 20 replicas, %d fetches", calls, f.fetches.Load())

	// Warm start: a replica that restarts adopts the shared token.
	before := f.fetches.Load()
	if _, err := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.Logger(nil), jwtcache.Clock(f.clock.Now),
		jwtcache.SharedStore(newStore(t, r.client(t))),
		jwtcache.TokenFunction(func(context.Context) (string, error) {
			f.fetches.Add(1)
			return minter.Mint(f.clock.Now(), life, nil), nil
		})).EnsureToken(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.fetches.Load(); got != before {
		t.Errorf("a restarted replica fetched %d tokens; want it to adopt the shared one", got-before)
	}
}

// TestFleet_RedisDown kills Redis mid-run: callers see no error (each replica
// fetches on its own); once Redis is back, sharing resumes.
func TestFleet_RedisDown(t *testing.T) {
	r := startRedis(t)
	const life = 10 * time.Minute
	f := newFleet(t, r, 20, life)
	if _, failed := f.run(t, 60, 5*time.Second); failed != 0 {
		t.Fatalf("%d calls failed with Redis up", failed)
	}
	r.kill()
	calls, failed := f.run(t, 240, 5*time.Second) // 20 minutes: every replica refreshes alone
	if failed != 0 {
		t.Errorf("%d of %d calls failed with Redis down; want none", failed, calls)
	}
	r.start()
	before := f.fetches.Load()
	if _, failed := f.run(t, 360, 5*time.Second); failed != 0 {
		t.Errorf("%d calls failed after Redis came back", failed)
	}
	// 30 minutes, 3 lifetimes: shared again, so about one fetch each, not 20.
	t.Logf("fetches fleet-wide in the 30 minutes after Redis came back: %d", f.fetches.Load()-before)
	if got := f.fetches.Load() - before; got > 3+1+3 {
		t.Errorf("fetches fleet-wide after Redis came back = %d over 3 lifetimes; want sharing (a handful, not %d)", got, 3*20)
	}
}

// TestCacheMap_SharedPerKey has two replicas' CacheMaps share each tenant's
// token under its own key.
func TestCacheMap_SharedPerKey(t *testing.T) {
	r := startRedis(t)
	var mu sync.Mutex
	fetches := map[string]int{}
	replica := func() *jwtcache.CacheMap {
		return jwtcache.NewCacheMap(jwtcache.MapName("tenants"), jwtcache.Logger(nil),
			jwtcache.SharedStore(newStore(t, r.client(t))),
			jwtcache.MapTokenFunction(func(_ context.Context, key string) (string, error) {
				mu.Lock()
				fetches[key]++
				mu.Unlock()
				return minter.Mint(time.Now(), time.Hour, nil), nil
			}))
	}
	a, b := replica(), replica()
	for _, key := range []string{"acme", "globex"} {
		ta, err := a.EnsureToken(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := b.EnsureToken(context.Background(), key)
		if err != nil || tb != ta {
			t.Errorf("replica b's token for %q differs from a's (err %v); want it shared", key, err)
		}
	}
	if fetches["acme"] != 1 || fetches["globex"] != 1 {
		t.Errorf("fetches = %v; want one per tenant", fetches)
	}
	if ta, _ := a.EnsureToken(context.Background(), "acme"); ta == mustGet(t, b, "globex") {
		t.Errorf("tenants share a token")
	}
}

func mustGet(t *testing.T, m *jwtcache.CacheMap, key string) string {
	t.Helper()
	tok, err := m.EnsureToken(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// BenchmarkAdopt measures what a replica pays to adopt a token another saved:
// a new cache's first call, which loads, decrypts and parses it.
func BenchmarkAdopt(b *testing.B) {
	client := startRedis(b).client(b)
	store, err := redisstore.New(client, redisstore.Key("k1", testKey))
	if err != nil {
		b.Fatal(err)
	}
	tok := minter.Mint(time.Now(), time.Hour, nil)
	if err := store.Save(context.Background(), "billing", tok, time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	never := func(context.Context) (string, error) { return "", errors.New("must adopt") }
	b.ReportAllocs()
	for b.Loop() {
		c := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.Logger(nil),
			jwtcache.SharedStore(store), jwtcache.TokenFunction(never))
		if _, err := c.EnsureToken(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
