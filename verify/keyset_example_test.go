package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// An issuer publishes its public keys; the service that receives its tokens
// finds each token's key by the kid in the token's header.
func ExampleKeySet() {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.FromRaw(&priv.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "2025-01")
	doc, _ := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(doc)
	}))
	defer issuer.Close()

	// Plain http is for loopback hosts only: a real issuer's URL is https.
	keys, err := verify.NewKeySet(issuer.URL+"/.well-known/jwks.json", verify.AllowedHosts("127.0.0.1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	key, err := keys.Key(ctx, "2025-01")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key.KeyID(), key.KeyType())

	// A kid the set lacks makes it be fetched again: at once the first
	// time after a due fetch (the issuer may have just published the key),
	// then at most every 10 seconds. A kid the new set lacks too is refused;
	// one that cannot make it be fetched yet is put off (ErrKeySetStale:
	// the middleware answers 503, and the client tries again).
	_, err = keys.Key(ctx, "2024-12")
	fmt.Println(err)
	_, err = keys.Key(ctx, "2024-11")
	fmt.Println(errors.Is(err, verify.ErrKeySetUnknownKID), errors.Is(err, verify.ErrKeySetStale))
	fmt.Println(keys.Stats().Refreshes, "refreshes")
	// Output:
	// 2025-01 EC
	// verify: no key with that kid in the key set: "2024-12"
	// true true
	// 2 refreshes
}

// A registry keeps the key sets of many tenants' issuers.
func ExampleRegistry() {
	reg := verify.NewRegistry(100, verify.MinRefreshInterval(30*time.Second))
	fmt.Println(reg.Register("tenant-a", "https://a.idp.example/jwks"))
	fmt.Println(reg.Register("tenant-b", "http://b.idp.example/jwks") != nil)
	keys, ok := reg.Get("tenant-a")
	fmt.Println(ok, keys.URL())
	// Output:
	// <nil>
	// true
	// true https://a.idp.example/jwks
}

// A replica that restarts while the issuer is down starts from the key set
// its fleet saved in the shared store (in production, package redisstore's,
// which the token caches use too), and verifies tokens at once.
func ExampleSnapshots() {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.FromRaw(&priv.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "2025-01")
	doc, _ := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
	var down atomic.Bool
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(doc)
	}))
	defer issuer.Close()

	store := &mapStore{values: map[string]string{}}
	secret := []byte("a secret of 32 bytes or more....") // from the secret store
	replica := func() *verify.KeySet {
		keys, err := verify.NewKeySet(issuer.URL+"/jwks", verify.Snapshots(store, "verify", secret))
		if err != nil {
			panic(err)
		}
		return keys
	}
	ctx := context.Background()
	if _, err := replica().Key(ctx, "2025-01"); err != nil { // fetches, and saves
		fmt.Println(err)
		return
	}

	down.Store(true)
	restarted := replica()
	key, err := restarted.Key(ctx, "2025-01")
	if err != nil {
		fmt.Println(err)
		return
	}
	st := restarted.Stats()
	fmt.Println(key.KeyID(), st.SnapshotLoads, "snapshot loaded,", st.Refreshes, "fetches")
	// Output:
	// 2025-01 1 snapshot loaded, 0 fetches
}

// mapStore is the smallest [jwtcache.Store] a key set's snapshots need: Load
// and Save. It ignores expiry, which a real store honours.
type mapStore struct {
	mu     sync.Mutex // guards values
	values map[string]string
}

func (s *mapStore) Load(_ context.Context, key string) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	if !ok {
		return "", time.Time{}, jwtcache.ErrNotFound
	}
	return v, time.Time{}, nil
}

func (s *mapStore) Save(_ context.Context, key, value string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[key] = value
	return nil
}

func (s *mapStore) CompareAndDelete(context.Context, string, string) (bool, error) {
	return false, nil
}

func (s *mapStore) Lease(context.Context, string, time.Duration) (func(context.Context, time.Duration) error, bool, error) {
	return func(context.Context, time.Duration) error { return nil }, true, nil
}

// A registry configured from the tenants' issuers: each key set's URL is the
// jwks_uri of its issuer's discovery document.
func ExampleRegistry_RegisterIssuer() {
	var base string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/realms/acme/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   base + "/realms/acme",
			"jwks_uri": base + "/realms/acme/protocol/openid-connect/certs",
		})
	}))
	defer idp.Close()
	base = idp.URL

	reg := verify.NewRegistry(100)
	ctx := context.Background()
	fmt.Println(reg.RegisterIssuer(ctx, "acme", base+"/realms/acme"))
	keys, _ := reg.Get("acme")
	fmt.Println(strings.TrimPrefix(keys.URL(), base))
	// The issuer must be the document's byte for byte: no trailing slash.
	err := reg.RegisterIssuer(ctx, "acme2", base+"/realms/acme/")
	fmt.Println(errors.Is(err, provider.ErrIssuerMismatch))
	// Output:
	// <nil>
	// /realms/acme/protocol/openid-connect/certs
	// true
}
