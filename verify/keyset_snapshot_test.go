package verify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// ksStore is a jwtcache.Store in memory that behaves as a network store
// does: a call whose context has ended fails, and it can be made down, hang
// or panic. Its values expire on the test's clock.
type ksStore struct {
	clock *testkit.Clock

	mu     sync.Mutex // guards the fields below
	values map[string]ksStored
	down   error // when not nil, every call fails with it
	hang   bool  // every call waits for its context to end
	panics bool  // every call panics, as a buggy Store might
	calls  map[string]int
}

type ksStored struct {
	value  string
	expiry time.Time
}

var _ jwtcache.Store = (*ksStore)(nil)

func ksNewStore(clock *testkit.Clock) *ksStore {
	return &ksStore{clock: clock, values: map[string]ksStored{}, calls: map[string]int{}}
}

// enter counts a call of op and fails it as a network store would.
func (s *ksStore) enter(ctx context.Context, op string) error {
	s.mu.Lock()
	s.calls[op]++
	down, hang, panics := s.down, s.hang, s.panics
	s.mu.Unlock()
	if panics {
		panic("ksstore: " + op)
	}
	if hang {
		<-ctx.Done()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ksstore: %s: %w", op, err)
	}
	if down != nil {
		return fmt.Errorf("ksstore: %s: %w", op, down)
	}
	return nil
}

func (s *ksStore) Load(ctx context.Context, key string) (string, time.Time, error) {
	if err := s.enter(ctx, "load"); err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	if !ok || !s.clock.Now().Before(v.expiry) {
		return "", time.Time{}, jwtcache.ErrNotFound
	}
	return v.value, v.expiry, nil
}

func (s *ksStore) Save(ctx context.Context, key, value string, expiry time.Time) error {
	if err := s.enter(ctx, "save"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[key] = ksStored{value, expiry}
	return nil
}

func (s *ksStore) CompareAndDelete(ctx context.Context, key, value string) (bool, error) {
	return false, errors.New("ksstore: a key set never deletes")
}

func (s *ksStore) Lease(ctx context.Context, key string, ttl time.Duration) (func(context.Context, time.Duration) error, bool, error) {
	return nil, false, errors.New("ksstore: a key set takes no lease")
}

// get returns what the store holds under key.
func (s *ksStore) get(key string) (ksStored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	return v, ok
}

// put replaces what the store holds under key.
func (s *ksStore) put(key, value string, expiry time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[key] = ksStored{value, expiry}
}

func (s *ksStore) set(f func(s *ksStore)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// ksSecret is the snapshots' secret in these tests.
var ksSecret = bytes.Repeat([]byte("s"), 32)

// ksSaved runs a key set with snapshots in store on url once, so that it
// saves its set, and returns what it saved.
func ksSaved(t *testing.T, url string, clk *testkit.Clock, store *ksStore, opts ...verify.KeySetOption) ksStored {
	t.Helper()
	s := ksNew(t, url, clk, append([]verify.KeySetOption{verify.Snapshots(store, "auth", ksSecret)}, opts...)...)
	if _, err := s.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("Key() error = %v", err)
	}
	v, ok := store.get("auth:" + url)
	if !ok {
		t.Fatalf("no snapshot saved under %q", "auth:"+url)
	}
	return v
}

func TestKeySet_SnapshotWarmStart(t *testing.T) {
	src := &ksConditional{etag: `"v1"`} // max-age=300
	src.body = ksDoc(t, "k1")
	url := ksServe(t, src)
	clk := ksNewClock()
	store := ksNewStore(clk)
	saved := ksSaved(t, url, clk, store)
	if got, want := saved.expiry, clk.Now().Add(300*time.Second+time.Hour); !got.Equal(want) {
		t.Errorf("snapshot saved until %v; want %v (expiry and the stale window)", got, want)
	}
	fetchedAt := clk.Now()

	// A replica restarts while the provider is down: it starts from the
	// snapshot, and asks the provider nothing.
	src.fail(http.StatusServiceUnavailable)
	clk.Advance(100 * time.Second)
	requests := src.requests.Load()
	b := ksNew(t, url, clk, verify.Snapshots(store, "auth", ksSecret))
	for range 3 {
		if _, err := b.Key(context.Background(), "k1"); err != nil {
			t.Fatalf("Key() on a warm start error = %v; want the saved key", err)
		}
	}
	if got := src.requests.Load(); got != requests {
		t.Errorf("requests on a warm start = %d; want %d (none)", got-requests, 0)
	}
	st := b.Stats()
	if st.SnapshotLoads != 1 || st.Refreshes != 0 || st.Keys != 1 || st.StaleServes != 0 || st.Err != nil {
		t.Errorf("Stats() = %+v; want 1 snapshot load, 0 refreshes, 1 key, 0 stale serves, no Err", st)
	}
	if !st.LastRefresh.Equal(fetchedAt) || !st.Expiry.Equal(fetchedAt.Add(300*time.Second)) || st.SnapshotAge != 100*time.Second {
		t.Errorf("Stats() LastRefresh %v, Expiry %v, SnapshotAge %v; want %v, %v, 100s (the saved set's)",
			st.LastRefresh, st.Expiry, st.SnapshotAge, fetchedAt, fetchedAt.Add(300*time.Second))
	}

	// The provider is back; in the refresh window the set is revalidated
	// with the saved ETag, and the 304 renews the snapshot too.
	src.fail(0)
	clk.Advance(150 * time.Second) // 250s after the fetch: from 225-240s
	if _, err := b.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("Key() in the refresh window error = %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Stats().NotModified == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Stats() = %+v: no revalidation 10s after the refresh was due", b.Stats())
		}
		time.Sleep(time.Millisecond) // the background refresh lands
	}
	renewed, _ := store.get("auth:" + url)
	if got, want := renewed.expiry, clk.Now().Add(300*time.Second+time.Hour); !got.Equal(want) {
		t.Errorf("snapshot renewed until %v; want %v", got, want)
	}
}

func TestKeySet_SnapshotStaleWhileError(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")} // the minimum TTL: 5 minutes
	url := ksServe(t, src)
	clk := ksNewClock()
	store := ksNewStore(clk)
	ksSaved(t, url, clk, store)

	// Past its expiry, within its stale window: the restarted replica tries
	// the provider first, and serves the saved set when it fails.
	src.fail(http.StatusBadGateway)
	clk.Advance(10 * time.Minute)
	b := ksNew(t, url, clk, verify.Snapshots(store, "auth", ksSecret))
	if _, err := b.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("Key() error = %v; want the stale saved key", err)
	}
	if _, err := b.Key(context.Background(), "k9"); !errors.Is(err, verify.ErrKeySetUnknownKID) {
		t.Errorf("Key(k9) error = %v; want ErrKeySetUnknownKID", err)
	}
	st := b.Stats()
	if st.SnapshotLoads != 1 || st.Refreshes != 1 || st.RefreshErrors != 1 || st.StaleServes != 1 {
		t.Errorf("Stats() = %+v; want 1 snapshot load, 1 refresh, 1 refresh error, 1 stale serve", st)
	}

	// When the provider answers, its set wins over the stale one.
	src.fail(0)
	src.set(ksDoc(t, "k2"), nil)
	c := ksNew(t, url, clk, verify.Snapshots(store, "auth", ksSecret))
	if _, err := c.Key(context.Background(), "k2"); err != nil {
		t.Fatalf("Key(k2) with the provider up error = %v", err)
	}
	if _, err := c.Key(context.Background(), "k1"); !errors.Is(err, verify.ErrKeySetUnknownKID) {
		t.Errorf("Key(k1) with the provider up error = %v; want ErrKeySetUnknownKID (withdrawn)", err)
	}
}

func TestKeySet_SnapshotExpired(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")}
	url := ksServe(t, src)
	clk := ksNewClock()
	store := ksNewStore(clk)
	saved := ksSaved(t, url, clk, store)
	clk.Advance(5*time.Minute + time.Hour) // past the stale window
	// The store still holds it (a store that keeps values longer, or a
	// replica with a longer StaleWindow saved it): it is too old.
	store.put("auth:"+url, saved.value, clk.Now().Add(time.Hour))
	src.fail(http.StatusServiceUnavailable)
	logger, log := testkit.NewLogger()
	b := ksNew(t, url, clk, verify.Snapshots(store, "auth", ksSecret), verify.Logger(logger))
	if _, err := b.Key(context.Background(), "k1"); !errors.Is(err, verify.ErrKeySetStale) {
		t.Errorf("Key() error = %v; want ErrKeySetStale (the snapshot is too old to serve)", err)
	}
	if st := b.Stats(); st.SnapshotLoads != 0 || st.SnapshotRejects != 1 {
		t.Errorf("Stats() = %+v; want 0 snapshot loads, 1 reject", st)
	}
	if !strings.Contains(log.String(), "past its stale window") {
		t.Errorf("log = %q; want the reason the snapshot was ignored", log)
	}
}

func TestKeySet_SnapshotTampered(t *testing.T) {
	src := &ksSource{body: ksDoc(t, "k1")}
	url := ksServe(t, src)
	clk := ksNewClock()
	store := ksNewStore(clk)
	value := ksSaved(t, url, clk, store).value
	other := ksServe(t, &ksSource{body: ksDoc(t, "k1")})
	otherValue := ksSaved(t, other, clk, store).value

	payload, mac, ok := strings.Cut(strings.TrimPrefix(value, "jwks1."), ".")
	if !ok {
		t.Fatalf("snapshot %q is not jwks1.<payload>.<mac>", value)
	}
	// flip flips a bit of the i-th byte that s, base64url, encodes.
	flip := func(s string, i int) string {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	// swapped is the payload with an attacker's key in the set, under the
	// original MAC.
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]json.RawMessage
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	w["set"] = ksDoc(t, "k1")
	swappedRaw, _ := json.Marshal(w)
	swapped := "jwks1." + base64.RawURLEncoding.EncodeToString(swappedRaw) + "." + mac

	tests := []struct {
		name, key, value string
		opts             []verify.KeySetOption // of the restarted key set
		reject           bool                  // counted as a rejected snapshot
	}{
		{name: "payload byte flipped", value: "jwks1." + flip(payload, len(payload)/2) + "." + mac, reject: true},
		{name: "MAC byte flipped", value: "jwks1." + payload + "." + flip(mac, 3), reject: true},
		{name: "key swapped in", value: swapped, reject: true},
		{name: "replayed from another URL", value: otherValue, reject: true},
		{name: "another secret", value: value, reject: true,
			opts: []verify.KeySetOption{verify.Snapshots(store, "auth", bytes.Repeat([]byte("t"), 32))}},
		{name: "another name", key: "billing:" + url, value: value, reject: true,
			opts: []verify.KeySetOption{verify.Snapshots(store, "billing", ksSecret)}},
		{name: "truncated", value: value[:len(value)-10], reject: true},
		{name: "no MAC", value: "jwks1." + payload, reject: true},
		{name: "not base64", value: "jwks1.!!!." + mac, reject: true},
		{name: "another version", value: "jwks2." + payload + "." + mac, reject: true},
		{name: "empty", value: "", reject: true},
		{name: "a token, not a snapshot", value: "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", reject: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == "" {
				key = "auth:" + url
			}
			store.put(key, tt.value, clk.Now().Add(time.Hour))
			// The provider now publishes k2 only: a key set that took the
			// snapshot would have k1.
			src.set(ksDoc(t, "k2"), nil)
			logger, log := testkit.NewLogger()
			opts := tt.opts
			if opts == nil {
				opts = []verify.KeySetOption{verify.Snapshots(store, "auth", ksSecret)}
			}
			b := ksNew(t, url, clk, append(opts, verify.Logger(logger))...)
			if _, err := b.Key(context.Background(), "k1"); !errors.Is(err, verify.ErrKeySetUnknownKID) {
				t.Errorf("Key(k1) error = %v; want ErrKeySetUnknownKID (the snapshot ignored)", err)
			}
			if _, err := b.Key(context.Background(), "k2"); err != nil {
				t.Errorf("Key(k2) error = %v; want the fetched key", err)
			}
			st := b.Stats()
			if st.SnapshotLoads != 0 || (st.SnapshotRejects == 1) != tt.reject || st.Refreshes == 0 {
				t.Errorf("Stats() = %+v; want 0 snapshot loads, rejected %v, a fetch", st, tt.reject)
			}
			logged := log.String()
			if !strings.Contains(logged, "snapshot ignored") {
				t.Errorf("log = %q; want the snapshot ignored", logged)
			}
			if len(tt.value) > 20 && strings.Contains(logged, tt.value[6:20]) {
				t.Errorf("log = %q; want no part of the snapshot in it", logged)
			}
		})
	}
}

func TestKeySet_SnapshotStoreDown(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(s *ksStore)
	}{
		{"down", func(s *ksStore) { s.down = errors.New("connection refused") }},
		{"hangs", func(s *ksStore) { s.hang = true }},
		{"panics", func(s *ksStore) { s.panics = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &ksSource{body: ksDoc(t, "k1")}
			url := ksServe(t, src)
			clk := ksNewClock()
			store := ksNewStore(clk)
			ksSaved(t, url, clk, store)
			store.set(tt.break_)
			// The store call is bounded by a tenth of the fetch timeout:
			// one that hangs would otherwise fail the fetch.
			b := ksNew(t, url, clk, verify.Snapshots(store, "auth", ksSecret), verify.FetchTimeout(time.Second))
			if _, err := b.Key(context.Background(), "k1"); err != nil {
				t.Fatalf("Key() error = %v; want the fetched key", err)
			}
			st := b.Stats()
			if st.StoreErrors != 2 || st.SnapshotLoads != 0 || st.Refreshes != 1 || st.RefreshErrors != 0 {
				t.Errorf("Stats() = %+v; want 2 store errors (load, save), 0 snapshot loads, 1 refresh, no refresh error", st)
			}
		})
	}
}

func TestKeySet_SnapshotOption(t *testing.T) {
	store := ksNewStore(ksNewClock())
	tests := []struct {
		name string
		opt  verify.KeySetOption
		ok   bool
	}{
		{"valid", verify.Snapshots(store, "auth", ksSecret), true},
		{"nil store", verify.Snapshots(nil, "auth", ksSecret), false},
		{"empty name", verify.Snapshots(store, "", ksSecret), false},
		{"short secret", verify.Snapshots(store, "auth", ksSecret[:31]), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verify.NewKeySet("https://idp.example/jwks", tt.opt)
			if (err == nil) != tt.ok {
				t.Errorf("NewKeySet(Snapshots(...)) error = %v; want ok %v", err, tt.ok)
			}
		})
	}
}
