package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// ksTestSnapshots returns snapshots of a store-less test: open and adopt need
// none.
func ksTestSnapshots(t testing.TB) *keySetSnapshots {
	t.Helper()
	k, err := newKeySetSnapshots(nopStore{}, "auth", bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeySet_SnapshotChecks seals snapshots with the right MAC whose sets or
// times a fetched set would not pass: each is refused as a fetched one is,
// so that a secret that leaks lets no one inject a private or symmetric key.
func TestKeySet_SnapshotChecks(t *testing.T) {
	const url = "https://idp.example/jwks"
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	good := `{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`
	private := `{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}`
	set := func(keys ...string) json.RawMessage {
		return json.RawMessage(`{"keys":[` + strings.Join(keys, ",") + `]}`)
	}
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	fresh := snapshotWire{Set: set(good), Fetched: ms(now), Confirmed: ms(now), TTL: (10 * time.Minute).Milliseconds()}
	with := func(f func(w *snapshotWire)) snapshotWire { w := fresh; f(&w); return w }
	tests := []struct {
		name string
		w    snapshotWire
		why  string // in the error; "" for a usable snapshot
	}{
		{"usable", fresh, ""},
		{"private key", with(func(w *snapshotWire) { w.Set = set(private) }), "private"},
		{"symmetric key", with(func(w *snapshotWire) { w.Set = set(`{"kty":"oct","kid":"h","k":"c2VjcmV0"}`) }), "symmetric"},
		{"two keys with one kid", with(func(w *snapshotWire) { w.Set = set(good, good) }), "two keys"},
		{"no keys", with(func(w *snapshotWire) { w.Set = set() }), "no keys"},
		{"not a set", with(func(w *snapshotWire) { w.Set = json.RawMessage(`"keys"`) }), "not a JWK set"},
		{"past its stale window", with(func(w *snapshotWire) {
			w.Confirmed, w.Fetched = ms(now.Add(-10*time.Minute-time.Hour)), ms(now.Add(-2*time.Hour))
		}), "stale window"},
		{"from the future", with(func(w *snapshotWire) {
			w.Confirmed, w.Fetched = ms(now.Add(2*time.Minute)), ms(now.Add(2*time.Minute))
		}), "after now"},
		{"fetched after confirmed", with(func(w *snapshotWire) { w.Fetched = ms(now.Add(time.Second)) }), "fetched after"},
	}
	k := ksTestSnapshots(t)
	c := newKeySetConfig(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, err := json.Marshal(tt.w)
			if err != nil {
				t.Fatal(err)
			}
			value := snapshotPrefix + b64(payload) + "." + b64(k.sum(url, payload))
			w, err := k.open(url, value)
			if err != nil {
				t.Fatalf("open() error = %v; want the MAC accepted", err)
			}
			n, err := c.adopt(w, now, 0.5)
			if tt.why == "" {
				if err != nil || len(n.keys) != 1 {
					t.Fatalf("adopt() = %v, %v; want 1 key", n, err)
				}
				return
			}
			if !errors.Is(err, errSnapshot) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("adopt() error = %v; want errSnapshot, %q", err, tt.why)
			}
			if err != nil && strings.Contains(err.Error(), "jpsQ") {
				t.Errorf("adopt() error = %v; it quotes key material", err)
			}
		})
	}
}

// TestKeySet_SnapshotClamp: a saved lifetime outside this key set's MinTTL and
// MaxTTL is clamped, whatever the replica that saved it allowed.
func TestKeySet_SnapshotClamp(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	doc := json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	c := newKeySetConfig([]KeySetOption{MinTTL(time.Minute), MaxTTL(time.Hour)})
	for _, tt := range []struct{ saved, want time.Duration }{
		{time.Second, time.Minute},
		{30 * time.Minute, 30 * time.Minute},
		{1000 * time.Hour, time.Hour},
	} {
		n, err := c.adopt(snapshotWire{Set: doc, Fetched: now.UnixMilli(), Confirmed: now.UnixMilli(), TTL: tt.saved.Milliseconds()}, now, 0)
		if err != nil {
			t.Fatalf("adopt(ttl %v) error = %v", tt.saved, err)
		}
		if got := n.expiry.Sub(now); got != tt.want {
			t.Errorf("adopt(ttl %v) expires in %v; want %v", tt.saved, got, tt.want)
		}
		if got, want := n.refreshAt.Sub(now), tt.want*8/10; got != want {
			t.Errorf("adopt(ttl %v) refreshes in %v; want %v", tt.saved, got, want)
		}
	}
}

// FuzzKeySetSnapshot: no stored value makes opening or adopting a snapshot
// panic, and one that does not carry the MAC is never adopted.
func FuzzKeySetSnapshot(f *testing.F) {
	k := ksTestSnapshots(f)
	const url = "https://idp.example/jwks"
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	n := &keySetSnapshot{doc: []byte(`{"keys":[]}`), fetched: now, confirmed: now, ttl: time.Minute}
	sealed, err := k.seal(url, n)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{sealed, "", "jwks1.", "jwks1..", "jwks1.e30.", "jwks1.e30.AAAA", sealed[:len(sealed)-1] + "A"} {
		f.Add(seed)
	}
	c := newKeySetConfig(nil)
	f.Fuzz(func(t *testing.T, value string) {
		w, err := k.open(url, value)
		if err != nil {
			return
		}
		if value != sealed {
			// Only a value sealed with the key opens: the fuzzer cannot
			// forge HMAC-SHA256, so any other is a bug.
			t.Fatalf("open(%q) accepted a value that was not sealed", value)
		}
		_, _ = c.adopt(w, now, 0.5)
	})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// nopStore is a Store that holds nothing, for tests that call no store.
type nopStore struct{}

func (nopStore) Load(context.Context, string) (string, time.Time, error) {
	return "", time.Time{}, jwtcache.ErrNotFound
}
func (nopStore) Save(context.Context, string, string, time.Time) error { return nil }
func (nopStore) CompareAndDelete(context.Context, string, string) (bool, error) {
	return false, nil
}
func (nopStore) Lease(context.Context, string, time.Duration) (func(context.Context, time.Duration) error, bool, error) {
	return nil, false, nil
}
