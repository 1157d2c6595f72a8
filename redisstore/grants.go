package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/seal"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// Grants is a [provider.GrantStore] on Redis: the refresh tokens a fleet
// holds for its users. It is safe for concurrent use.
//
// Each key's refresh token is a Redis hash of two fields, its version (v)
// and the token sealed as a [Store] seals its values (t), bound to the key
// and the version, so that a value copied to another key, or set back to
// another version, does not open. A Swap or Delete is one script that
// compares the version and acts on one Redis key, so they work on a Cluster
// too. A Delete keeps the hash, one version on, with an empty t, so that no
// version is used twice under a key. Nothing expires: the Redis keys have no
// TTL.
//
// A GrantStore must not lose what it holds, and Redis keeps what it is told
// to: run it with persistence (appendonly yes, appendfsync everysec or
// always) and a maxmemory-policy that never evicts a key without a TTL
// (noeviction, or a volatile- policy).
type Grants struct {
	config
}

var _ provider.GrantStore = (*Grants)(nil)

// NewGrants returns the grants stored on client: a single server, Sentinel
// or Cluster client. It takes the options of [New], and needs a [Key] or
// [InsecurePlaintextTokens]; a [Store] and Grants may share a [Prefix].
func NewGrants(client redis.UniversalClient, opts ...Option) (*Grants, error) {
	c, err := configure(client, 2*time.Second, opts)
	if err != nil {
		return nil, err
	}
	return &Grants{config: c}, nil
}

// Scripts on a grant's hash: its version is compared and acted on in one
// atomic step.
var (
	// swapGrant sets KEYS[1]'s fields v to ARGV[2] and t to ARGV[3] if its
	// v is ARGV[1] ("0": if it has none), and returns 1; else 0.
	swapGrant = redis.NewScript(`local v = redis.call("HGET", KEYS[1], "v")
if (v or "0") ~= ARGV[1] then return 0 end
redis.call("HSET", KEYS[1], "v", ARGV[2], "t", ARGV[3])
return 1`)
	// deleteGrant empties KEYS[1]'s t and moves its v on by one if its v is
	// ARGV[1] and it has a t, and returns 1; else 0. The hash stays: a
	// version is never used twice under a key.
	deleteGrant = redis.NewScript(`local f = redis.call("HMGET", KEYS[1], "v", "t")
if f[1] ~= ARGV[1] or not f[2] or f[2] == "" then return 0 end
redis.call("HSET", KEYS[1], "v", tonumber(f[1]) + 1, "t", "")
return 1`)
)

// redisKey returns the Redis key of a grant's hash.
func (g *Grants) redisKey(key string) string { return g.tag(key) + ":grant" }

// Load implements [provider.GrantStore]. A value that does not open is an
// error wrapping [ErrCorrupt].
func (g *Grants) Load(ctx context.Context, key string) (string, int64, error) {
	if key == "" {
		return "", 0, fmt.Errorf("redisstore: Grants.Load: empty key: %w", jwtcache.ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	fields, err := g.client.HMGet(ctx, g.redisKey(key), "v", "t").Result()
	if err != nil {
		return "", 0, g.failed("load grant", err)
	}
	if fields[0] == nil {
		return "", 0, fmt.Errorf("redisstore: load grant: %w", jwtcache.ErrNotFound)
	}
	vs, _ := fields[0].(string)
	ts, _ := fields[1].(string)
	version, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || version < 1 {
		return "", 0, fmt.Errorf("redisstore: load grant: %w: version %q", ErrCorrupt, vs)
	}
	if ts == "" {
		return "", version, fmt.Errorf("redisstore: load grant: deleted: %w", jwtcache.ErrNotFound)
	}
	token, err := g.ring.Open([]byte(ts), seal.Binding(key, version))
	if err != nil {
		return "", version, fmt.Errorf("redisstore: load grant: %w", err)
	}
	return string(token), version, nil
}

// Swap implements [provider.GrantStore].
func (g *Grants) Swap(ctx context.Context, key string, version int64, refreshToken string) (int64, error) {
	if key == "" || version < 0 || refreshToken == "" {
		return 0, fmt.Errorf("redisstore: Grants.Swap(a key of %d bytes, version %d, a refresh token of %d bytes): want a key, a version of 0 or more and a refresh token: %w",
			len(key), version, len(refreshToken), jwtcache.ErrInvalid)
	}
	sealed, err := g.ring.Seal([]byte(refreshToken), seal.Binding(key, version+1))
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	n, err := swapGrant.Run(ctx, g.client, []string{g.redisKey(key)}, version, version+1, sealed).Int()
	if err != nil {
		return 0, g.failed("swap grant", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("redisstore: swap grant from version %d: %w", version, provider.ErrGrantConflict)
	}
	return version + 1, nil
}

// Delete implements [provider.GrantStore].
func (g *Grants) Delete(ctx context.Context, key string, version int64) (bool, error) {
	if key == "" {
		return false, fmt.Errorf("redisstore: Grants.Delete: empty key: %w", jwtcache.ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	n, err := deleteGrant.Run(ctx, g.client, []string{g.redisKey(key)}, version).Int()
	if err != nil {
		return false, g.failed("delete grant", err)
	}
	return n == 1, nil
}
