package fleet_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/oidctest"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/redisstore"
	"github.com/seed7aeb0c6e/jwtcache/sqlstore"
)

const (
	secret = "a-client-secret-of-at-least-32-bytes"
	api    = "https://api.example"
	// life is the access tokens' lifetime: every refresh ahead of expiry
	// rotates the user's refresh token, several times a test.
	life = 5 * time.Second
)

var sealKey = bytes.Repeat([]byte{9}, 32)

// world is what the replicas share: the provider, one Redis, one PostgreSQL.
type world struct {
	t     *testing.T
	idp   *oidctest.Server
	redis *testkit.RedisServer
	pg    *testkit.PostgresServer
	logs  *testkit.Buffer // every replica's log
	log   *slog.Logger
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t}
	w.idp = oidctest.Start(t, oidctest.Config{
		Clients: []oidctest.Client{{ID: "fleet", Secret: secret,
			Metadata: map[string]any{"grant_types": []string{"refresh_token", "client_credentials"}}}},
		Resources:     []oidctest.Resource{{Identifier: api, Scope: "read", TTL: life}},
		RefreshTokens: &oidctest.RefreshTokens{Rotate: true, Resource: api, Scope: "read"},
	})
	w.redis = testkit.Redis(t)
	w.pg = testkit.Postgres(t)
	w.log, w.logs = testkit.NewLogger()
	db := w.openDB()
	defer db.Close()
	g, err := sqlstore.New(db, sqlstore.Key("k1", sealKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CreateTable(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// flushRedis empties Redis: the shared access tokens, and the leases.
func (w *world) flushRedis() {
	w.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: w.redis.Addr()})
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) openDB() *sql.DB {
	db, err := sql.Open("pgx", w.pg.DSN())
	if err != nil {
		w.t.Fatal(err)
	}
	return db
}

// replica is one process of the fleet: its own connections, its own cache.
type replica struct {
	name   string
	rdb    *redis.Client
	db     *sql.DB
	grants *sqlstore.Grants
	d      *provider.Delegated
	hc     *http.Client
}

// newReplica starts a replica; around, if set, wraps its HTTP transport to
// the provider.
func (w *world) newReplica(name string, around func(http.RoundTripper) http.RoundTripper) *replica {
	w.t.Helper()
	r := &replica{name: name, db: w.openDB()}
	r.rdb = redis.NewClient(&redis.Options{Addr: w.redis.Addr(), DialTimeout: time.Second})
	store, err := redisstore.New(r.rdb, redisstore.Key("k1", sealKey))
	if err != nil {
		w.t.Fatal(err)
	}
	if r.grants, err = sqlstore.New(r.db, sqlstore.Key("k1", sealKey)); err != nil {
		w.t.Fatal(err)
	}
	r.hc = w.idp.Client(w.t)
	if around != nil {
		r.hc.Transport = around(r.hc.Transport)
	}
	log := w.log.With("replica", name)
	client, err := provider.New(context.Background(), w.idp.Issuer, provider.ClientSecretBasic("fleet", secret),
		provider.HTTPClient(r.hc), provider.Logger(log),
		provider.DefaultRequest(provider.Request{Resources: []string{api}, Scopes: []string{"read"}}))
	if err != nil {
		w.t.Fatal(err)
	}
	r.d, err = provider.NewDelegated(client, r.grants, jwtcache.MapName("fleet"), jwtcache.SharedStore(store), jwtcache.Logger(log))
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

// stop shuts the replica down as an orchestrator's SIGTERM would: its
// Delegated closed (the refreshes under way finish and are stored), then
// its connections.
func (r *replica) stop(t *testing.T) provider.DelegatedStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.Close(ctx); err != nil {
		t.Errorf("replica %s: Close() error = %v", r.name, err)
	}
	r.hc.CloseIdleConnections()
	r.rdb.Close()
	r.db.Close()
	return r.d.Stats()
}

// grant mints a grant for each user at the provider, as the authorization
// code flow would leave it, and stores its refresh token through r.
func (w *world) grant(r *replica, users ...string) map[string]string {
	w.t.Helper()
	ids := map[string]string{}
	for _, u := range users {
		id, rt := w.idp.Grant(w.t, "fleet", u)
		ids[u] = id
		if err := r.d.Authorize(context.Background(), u, rt); err != nil {
			w.t.Fatal(err)
		}
	}
	return ids
}

// expiry returns the exp of a JWT access token, read without verifying it
// (the provider's keys are not the point here).
func expiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var claims struct{ Exp int64 }
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Exp == 0 {
		return time.Time{}, fmt.Errorf("no exp: %v", err)
	}
	return time.Unix(claims.Exp, 0), nil
}

// TestFleetRefresh: 10 replicas, 20 users, 5-second access tokens, every
// refresh rotating the user's refresh token, replicas stopped and replaced
// every 2.5 seconds while callers on every replica ask for every user's
// token. Not one grant is lost or refused, every refresh the provider
// answered was stored (its count of refreshes equals each user's stored
// version), the fleet refreshes each user at most once per 0.75 of a
// token's local life, and no caller gets an error or an expired token.
func TestFleetRefresh(t *testing.T) {
	const (
		replicas = 10
		users    = 20
		run      = 30 * time.Second
		restart  = 2500 * time.Millisecond
		callers  = 2 // per replica
	)
	w := newWorld(t)
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user-%02d", i)
	}
	fleet := make([]*replica, replicas)
	for i := range fleet {
		fleet[i] = w.newReplica(fmt.Sprintf("r%d", i), nil)
	}
	w.grant(fleet[0], names...)

	var (
		calls, failed, expired atomic.Int64
		mu                     sync.Mutex // guards fleet's slots, stats and the first error
		stats                  []provider.DelegatedStats
		firstErr               error
	)
	slot := func(i int) *replica {
		mu.Lock()
		defer mu.Unlock()
		return fleet[i]
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range replicas {
		for range callers {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Duration(10+rand.IntN(20)) * time.Millisecond):
					}
					r := slot(i)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					tok, err := r.d.Map().Token(ctx, names[rand.IntN(users)])
					cancel()
					calls.Add(1)
					if errors.Is(err, provider.ErrClosed) {
						continue // the replica is being replaced: its callers are gone
					}
					if err == nil {
						var exp time.Time
						if exp, err = expiry(tok.Value); err == nil && !time.Now().Before(exp) {
							expired.Add(1)
						}
					}
					if err != nil {
						failed.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
				}
			})
		}
	}
	restarts := 0
	for deadline := time.After(run); ; {
		select {
		case <-deadline:
		case <-time.After(restart):
			i := rand.IntN(replicas)
			next := w.newReplica(fmt.Sprintf("r%d.%d", i, restarts+1), nil)
			mu.Lock()
			old := fleet[i]
			fleet[i] = next
			mu.Unlock()
			st := old.stop(t)
			mu.Lock()
			stats = append(stats, st)
			mu.Unlock()
			restarts++
			continue
		}
		break
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	for _, r := range fleet {
		stats = append(stats, r.stop(t))
	}

	if n := failed.Load(); n != 0 || expired.Load() != 0 {
		t.Errorf("%d of %d calls failed (the first: %v), %d served an expired token; want none", n, calls.Load(), firstErr, expired.Load())
	}
	if revoked := w.idp.GrantsRevoked(t); len(revoked) != 0 {
		t.Errorf("the provider revoked %d grants (reuse of a spent refresh token); want none", len(revoked))
	}
	if refused := w.idp.Refused(t, "fleet"); len(refused) != 0 {
		t.Errorf("the provider refused %d requests (the first: %+v); want none", len(refused), refused[0])
	}
	db := w.openDB()
	defer db.Close()
	home, err := sqlstore.New(db, sqlstore.Key("k1", sealKey))
	if err != nil {
		t.Fatal(err)
	}
	// At most one refresh per 0.75 of a token's local life, plus the first
	// of each user. The local life of a JWT is exp - iat less the second
	// that iat's truncation to whole seconds may have taken: the cache
	// counts on no more, as it does not trust the two hosts' clocks to agree
	// (docs/lifecycle.md).
	local := life - time.Second
	most := int(elapsed/(local*3/4)) + 1
	total := 0
	for _, u := range names {
		_, version, err := home.Load(context.Background(), u)
		n := w.idp.Refreshed(t, u)
		total += n
		if err != nil || int64(n) != version-1 {
			t.Errorf("%s: the provider refreshed %d times, the stored refresh token is version %d (error %v); want %d: each rotation stored",
				u, n, version, err, n+1)
		}
		if n > most || n < 2 {
			t.Errorf("%s: refreshed %d times in %v; want at least 2 and at most %d (one per %v)", u, n, elapsed.Round(time.Millisecond), most, local*3/4)
		}
	}
	var rotations, pending, failures uint64
	for _, st := range stats {
		rotations += st.Rotations
		pending += uint64(st.Pending)
		failures += st.StoreFailures
	}
	if rotations != uint64(total) || pending != 0 {
		t.Errorf("replicas rotated %d times, %d left in memory; want %d (the provider's count), none", rotations, pending, total)
	}
	if logs := w.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("the replicas logged errors:\n%s", logs)
	}
	t.Logf("%d replicas, %d restarts, %d users, %v: %d calls, %d refreshes (at most %d a user), %d store failures",
		replicas, restarts, users, elapsed.Round(time.Millisecond), calls.Load(), total, most, failures)
}

// TestFleetRefresh_Race: two replicas asked at once, from many callers, for a
// user neither has a token of: one refresh, one token.
func TestFleetRefresh_Race(t *testing.T) {
	w := newWorld(t)
	a, b := w.newReplica("a", nil), w.newReplica("b", nil)
	defer a.stop(t)
	defer b.stop(t)
	w.grant(a, "alice")
	var wg sync.WaitGroup
	var mu sync.Mutex
	tokens := map[string]int{}
	ready := make(chan struct{})
	for i := range 20 {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			<-ready
			tok, err := r.d.Token(context.Background(), "alice")
			if err != nil {
				t.Errorf("replica %s: Token() error = %v", r.name, err)
				return
			}
			mu.Lock()
			tokens[tok]++
			mu.Unlock()
		})
	}
	close(ready)
	wg.Wait()
	if n := w.idp.Refreshed(t, "alice"); n != 1 || len(tokens) != 1 {
		t.Errorf("the provider refreshed %d times, the callers got %d tokens; want 1, 1", n, len(tokens))
	}
	if revoked := w.idp.GrantsRevoked(t); len(revoked) != 0 {
		t.Errorf("grants revoked: %v; want none", revoked)
	}
}

// TestFleetRefresh_HomeDown: PostgreSQL goes down while a refresh is on its
// way to the provider, which rotates the refresh token: the replica hands
// out the access token, keeps the new refresh token, says so at Error, and
// stores it once PostgreSQL is back; the chain goes on on another replica.
func TestFleetRefresh_HomeDown(t *testing.T) {
	w := newWorld(t)
	var down atomic.Bool
	a := w.newReplica("a", func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.URL.Path == "/token" && down.CompareAndSwap(false, true) {
				w.pg.Stop()
			}
			return next.RoundTrip(req)
		})
	})
	defer a.stop(t)
	setup := w.newReplica("setup", nil)
	w.grant(setup, "alice")
	setup.stop(t)

	if _, err := a.d.Token(context.Background(), "alice"); err != nil {
		t.Fatalf("Token() with PostgreSQL down after the load: error = %v; want the access token", err)
	}
	if st := a.d.Stats(); st.Pending != 1 || st.StoreFailures == 0 {
		t.Errorf("Stats() = %+v; want the rotated refresh token pending, the failure counted", st)
	}
	if logs := w.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "could not be stored") {
		t.Errorf("log = %q; want an error saying the refresh token is not stored yet", logs)
	}
	w.pg.Start(t)
	testkit.Eventually(t, "the kept refresh token is stored", func() bool { return a.d.Stats().Pending == 0 })
	if _, version, err := a.grants.Load(context.Background(), "alice"); err != nil || version != 2 {
		t.Errorf("stored version %d (error %v); want 2", version, err)
	}
	// Another replica, without the shared access token, refreshes from the
	// stored refresh token.
	w.flushRedis()
	b := w.newReplica("b", nil)
	defer b.stop(t)
	if _, err := b.d.Token(context.Background(), "alice"); err != nil {
		t.Errorf("another replica's refresh: error = %v; want a token", err)
	}
	if n := w.idp.Refreshed(t, "alice"); n != 2 {
		t.Errorf("the provider refreshed %d times; want 2", n)
	}
	if revoked := w.idp.GrantsRevoked(t); len(revoked) != 0 {
		t.Errorf("grants revoked: %v; want none: the chain is unbroken", revoked)
	}
}

// TestFleetRefresh_Revoked: the provider revokes one user's grant: that
// user's calls fail with the grant's error on every replica, and the grant
// is deleted from PostgreSQL; the other users' calls go on.
func TestFleetRefresh_Revoked(t *testing.T) {
	w := newWorld(t)
	a, b := w.newReplica("a", nil), w.newReplica("b", nil)
	defer a.stop(t)
	defer b.stop(t)
	ids := w.grant(a, "alice", "bob")
	for _, u := range []string{"alice", "bob"} {
		if _, err := a.d.Token(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	w.idp.Revoke(t, ids["alice"])
	w.flushRedis() // the access tokens went with the grant
	for _, r := range []*replica{a, b} {
		for _, u := range []string{"alice", "bob"} {
			r.d.Map().Invalidate(u)
		}
	}
	for _, r := range []*replica{a, b} {
		if _, err := r.d.Token(context.Background(), "alice"); !errors.Is(err, provider.ErrInvalidGrant) {
			t.Errorf("replica %s: Token(alice) error = %v; want ErrInvalidGrant", r.name, err)
		}
		if _, err := r.d.Token(context.Background(), "bob"); err != nil {
			t.Errorf("replica %s: Token(bob) error = %v; want his token", r.name, err)
		}
	}
	if _, _, err := a.grants.Load(context.Background(), "alice"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Errorf("alice's stored grant: Load() error = %v; want ErrNotFound", err)
	}
	if n := len(w.idp.Refused(t, "fleet")); n != 1 {
		t.Errorf("the provider refused %d requests; want 1: a refused grant is asked for once", n)
	}
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
