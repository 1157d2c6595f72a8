package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// TestStore_KeySetSnapshots: a verify.KeySet's snapshots through Redis, the
// store the token caches share. A key set that restarts while the provider
// is down starts from the snapshot its predecessor saved; one whose snapshot
// was overwritten in Redis cannot read it back, and fails closed.
func TestStore_KeySetSnapshots(t *testing.T) {
	r := startRedis(t)
	c := r.client(t)
	store := newStore(t, c)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "k1")
	doc, err := json.Marshal(map[string]any{"keys": []any{pub}})
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	defer srv.Close()
	ctx := context.Background()
	keySet := func() *verify.KeySet {
		ks, err := verify.NewKeySet(srv.URL+"/jwks", verify.Snapshots(store, "verify", testKey))
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if _, err := keySet().Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() error = %v", err)
	}

	down.Store(true)
	b := keySet()
	if _, err := b.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key() after a restart, the provider down, error = %v; want the saved key", err)
	}
	if st := b.Stats(); st.SnapshotLoads != 1 || st.Refreshes != 0 || st.StoreErrors != 0 {
		t.Errorf("Stats() = %+v; want 1 snapshot load, 0 refreshes, 0 store errors", st)
	}

	keys, err := c.Keys(ctx, "jwtcache:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("Redis keys = %q, %v; want the snapshot's only", keys, err)
	}
	if err := c.Set(ctx, keys[0], "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	d := keySet()
	if _, err := d.Key(ctx, "k1"); !errors.Is(err, verify.ErrKeySetStale) {
		t.Errorf("Key() with the snapshot overwritten, the provider down, error = %v; want ErrKeySetStale", err)
	}
	if st := d.Stats(); st.SnapshotLoads != 0 || st.StoreErrors != 1 {
		t.Errorf("Stats() = %+v; want 0 snapshot loads, 1 store error (the value does not open)", st)
	}
}
