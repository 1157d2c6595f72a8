package redisstore_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/redisstore"
)

// newBillingCache holds the snippet of docs/fleet.md, which
// TestDocs_FleetSnippet runs: a cache whose tokens the replicas share
// through Redis, sealed with tokenKey, and opened with oldKey too while
// values sealed before the rotation live.
func newBillingCache(redisClient redis.UniversalClient, tokenKey, oldKey []byte, fetchToken jwtcache.TokenFunc) (*jwtcache.Cache, error) {
	store, err := redisstore.New(redisClient,
		redisstore.Key("2026-11", tokenKey), // AES-256: 32 bytes, from your secret store
		redisstore.Key("2026-10", oldKey),   // still opens values sealed before rotation
	)
	if err != nil {
		return nil, err
	}
	cache := jwtcache.NewCache(
		jwtcache.Name("billing"),
		jwtcache.TokenFunction(fetchToken),
		jwtcache.SharedStore(store),
	)
	return cache, nil
}

// TestDocs_FleetSnippet runs the snippet of docs/fleet.md: two replicas,
// each with its own Redis client, get one token, fetched once.
func TestDocs_FleetSnippet(t *testing.T) {
	r := startRedis(t)
	var fetches atomic.Int32
	fetchToken := func(context.Context) (string, error) {
		fetches.Add(1)
		return minter.Mint(time.Now(), time.Hour, nil), nil
	}
	tokenKey, oldKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	var tokens []string
	for range 2 {
		cache, err := newBillingCache(r.client(t), tokenKey, oldKey, fetchToken)
		if err != nil {
			t.Fatalf("newBillingCache() error = %v", err)
		}
		tok, err := cache.EnsureToken(context.Background())
		if err != nil {
			t.Fatalf("EnsureToken() error = %v", err)
		}
		tokens = append(tokens, tok)
	}
	if tokens[0] != tokens[1] || fetches.Load() != 1 {
		t.Errorf("replicas got the same token: %t, with %d fetches; want true, with 1", tokens[0] == tokens[1], fetches.Load())
	}
}
