package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/grantstoretest"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/redisstore"
)

func newGrants(t *testing.T, c redis.UniversalClient, opts ...redisstore.Option) *redisstore.Grants {
	t.Helper()
	g, err := redisstore.NewGrants(c, append([]redisstore.Option{redisstore.Key("k1", testKey)}, opts...)...)
	if err != nil {
		t.Fatalf("NewGrants() error = %v", err)
	}
	return g
}

func TestGrants_Conformance(t *testing.T) {
	c := startRedis(t).client(t)
	grantstoretest.Run(t, func(t *testing.T) provider.GrantStore { return newGrants(t, c) })
}

func TestGrants_ConformancePlaintext(t *testing.T) {
	c := startRedis(t).client(t)
	grantstoretest.Run(t, func(t *testing.T) provider.GrantStore {
		g, err := redisstore.NewGrants(c, redisstore.InsecurePlaintextTokens(), redisstore.Prefix("dev"))
		if err != nil {
			t.Fatal(err)
		}
		return g
	})
}

func TestCluster_GrantsConformance(t *testing.T) {
	c := startCluster(t).client(t)
	grantstoretest.Run(t, func(t *testing.T) provider.GrantStore { return newGrants(t, c) })
}

// TestGrants_Encrypted reads Redis itself: the hash holds no token and has
// no TTL, and a value copied to another key or version does not open.
func TestGrants_Encrypted(t *testing.T) {
	c := startRedis(t).client(t)
	g := newGrants(t, c)
	ctx := context.Background()
	const token = "v1.refresh-token-of-alice-0123456789"
	if _, err := g.Swap(ctx, "alice", 0, token); err != nil {
		t.Fatal(err)
	}
	keys := c.Keys(ctx, "jwtcache:*:grant").Val()
	if len(keys) != 1 {
		t.Fatalf("grant keys = %v; want one", keys)
	}
	alice := keys[0]
	if ttl := c.TTL(ctx, alice).Val(); ttl != -1 {
		t.Errorf("TTL of the grant = %v; want none (-1)", ttl)
	}
	raw := c.HGetAll(ctx, alice).Val()
	if raw["v"] != "1" || strings.Contains(raw["t"], token[:12]) {
		t.Fatalf("the grant's hash = v %q, t holds the token: %t; want v 1, and no token", raw["v"], strings.Contains(raw["t"], token[:12]))
	}

	wantCorrupt := func(what, key, want string) {
		t.Helper()
		got, v, err := g.Load(ctx, key)
		if !errors.Is(err, redisstore.ErrCorrupt) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), token[:12]) {
			t.Errorf("%s: Load(%q) = %q, %d, %v; want ErrCorrupt naming %q, without the token", what, key, got, v, err, want)
		}
	}
	if _, err := g.Swap(ctx, "bob", 0, "rt-bob"); err != nil {
		t.Fatal(err)
	}
	var bob string
	for _, k := range c.Keys(ctx, "jwtcache:*:grant").Val() {
		if k != alice {
			bob = k
		}
	}
	c.HSet(ctx, bob, "v", raw["v"], "t", raw["t"])
	wantCorrupt("a value copied to another key", "bob", "does not authenticate")
	c.HSet(ctx, alice, "v", "2")
	wantCorrupt("a value set to another version", "alice", "does not authenticate")
	c.HSet(ctx, alice, "v", "x")
	wantCorrupt("a version that is not a number", "alice", `version "x"`)
	c.HSet(ctx, alice, "v", "1")
	if got, _, err := g.Load(ctx, "alice"); err != nil || got != token {
		t.Errorf("Load() of the value restored = %.12q, %v; want the token", got, err)
	}
	// A Store and Grants on one prefix keep apart.
	s := newStore(t, c)
	if _, _, err := s.Load(ctx, "alice"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Errorf("Store.Load() of a grant's key: error = %v; want ErrNotFound", err)
	}
	other := bytes.Repeat([]byte{2}, 32)
	rotated := newGrantsWith(t, c, redisstore.Key("k2", other), redisstore.Key("k1", testKey))
	if got, _, err := rotated.Load(ctx, "alice"); err != nil || got != token {
		t.Errorf("rotated Load() = %.12q, %v; want the token the old key sealed", got, err)
	}
}

func newGrantsWith(t *testing.T, c redis.UniversalClient, opts ...redisstore.Option) *redisstore.Grants {
	t.Helper()
	g, err := redisstore.NewGrants(c, opts...)
	if err != nil {
		t.Fatalf("NewGrants() error = %v", err)
	}
	return g
}

// TestGrants_Down kills Redis: the calls fail within their Timeout, with an
// error that is neither a miss nor a conflict; once a server is back on the
// port, they work again. (The tests' Redis has no persistence: the data
// does not survive; a production one must have it, see Grants.)
func TestGrants_Down(t *testing.T) {
	r := startRedis(t)
	const timeout = 300 * time.Millisecond
	g := newGrants(t, r.client(t), redisstore.Timeout(timeout))
	ctx := context.Background()
	if _, err := g.Swap(ctx, "alice", 0, "rt-1"); err != nil {
		t.Fatal(err)
	}
	r.kill()
	grantstoretest.Down(t, g, timeout, "redisstore: ")
	r.start()
	testkit.Eventually(t, "Swap() with Redis back", func() bool {
		_, err := g.Swap(ctx, "alice", 0, "rt-new")
		return err == nil
	})
	if got, v, err := g.Load(ctx, "alice"); got != "rt-new" || v != 1 || err != nil {
		t.Errorf("Load() with Redis back = %q, %d, %v; want rt-new, 1, nil", got, v, err)
	}
}

func TestNewGrants(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	tests := []struct {
		name string
		opts []redisstore.Option
		want string // what an error wrapping ErrInvalid names; "" for none
	}{
		{"key", []redisstore.Option{redisstore.Key("k", testKey), redisstore.Prefix("app"), redisstore.Timeout(time.Second)}, ""},
		{"plaintext", []redisstore.Option{redisstore.InsecurePlaintextTokens()}, ""},
		{"no key", nil, "redisstore: no encryption key"},
		{"short key", []redisstore.Option{redisstore.Key("k", testKey[:31])}, `redisstore: Key("k"): the key has 31 bytes; want 32`},
		{"key and plaintext", []redisstore.Option{redisstore.Key("k", testKey), redisstore.InsecurePlaintextTokens()}, "both a Key and InsecurePlaintextTokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstore.NewGrants(c, tt.opts...)
			testkit.WantInvalid(t, "NewGrants", err, tt.want)
		})
	}
	_, err := redisstore.NewGrants(nil, redisstore.Key("k", testKey))
	testkit.WantInvalid(t, "NewGrants(nil)", err, "nil client")
}
