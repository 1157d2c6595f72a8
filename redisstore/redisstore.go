// Package redisstore implements [jwtcache.Store] on Redis, so that a fleet of
// replicas fetches one token, not one each, and, as [Grants],
// [provider.GrantStore], the durable home of users' refresh tokens.
//
// Tokens are stored encrypted and authenticated with AES-256-GCM under a key
// the user supplies; each value names its key's ID, so keys can rotate, and is
// bound to its Redis key, so a value copied to another key does not decrypt.
// The lease that lets one replica fetch while the others wait is a SET NX PX
// with a random owner, released (or, after a failed fetch, kept a little
// longer) by a script that checks the owner first; a rejected token is
// deleted by a compare-and-delete script too. A token and its lease share a
// hash tag, so they live in one Redis Cluster slot, and each script touches
// one key.
package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/seal"
)

// ErrCorrupt is what Load returns for a value it cannot read back: truncated,
// tampered with, copied from another key, or encrypted under a key ID it does
// not have. The cache treats it as a miss, and logs it.
var ErrCorrupt = errors.New("redisstore: value cannot be read back")

// Store is a [jwtcache.Store] on Redis. It is safe for concurrent use.
type Store struct {
	config
}

var _ jwtcache.Store = (*Store)(nil)

// config is what a [Store] and [Grants] share: their client and what the
// options set. It is not modified after the constructor returns.
type config struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	ring    *seal.Ring // seals the values
}

// Option configures a [Store] or [Grants].
type Option interface {
	apply(*config) error
}

type optionFunc func(*config) error

func (f optionFunc) apply(c *config) error { return f(c) }

// Key adds an AES-256 key (32 bytes) with an ID that is stored, in clear, with
// every value it seals. The first Key seals new values; the others only open
// old ones, so a key can be rotated out: add the new one first, keep the old
// one until the values it sealed are gone (for a [Store], a token's lifetime;
// [Grants] never expire, so until every grant has been swapped since), then
// drop it. Its errors wrap [jwtcache.ErrInvalid].
func Key(id string, key []byte) Option {
	return optionFunc(func(c *config) error { return c.ring.Add(id, key) })
}

// InsecurePlaintextTokens stores tokens unencrypted, readable by anyone who
// can read the Redis keys. It exists for development setups only; a store
// needs either it or a [Key].
func InsecurePlaintextTokens() Option {
	return optionFunc(func(c *config) error { c.ring.Plaintext(); return nil })
}

// Prefix sets the prefix of every Redis key the store writes. The default is
// "jwtcache".
func Prefix(p string) Option {
	return optionFunc(func(c *config) error { c.prefix = p; return nil })
}

// Timeout bounds every Redis call: past it, a [Store]'s cache fetches on its
// own, and a call of [Grants] fails. Zero or less is taken as the default.
// The default is 200 milliseconds for a Store, 2 seconds for Grants.
func Timeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d > 0 {
			c.timeout = d
		}
		return nil
	})
}

// New returns a store on client: a single server, Sentinel or Cluster client.
// It needs a [Key], or [InsecurePlaintextTokens].
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	c, err := configure(client, 200*time.Millisecond, opts)
	if err != nil {
		return nil, err
	}
	return &Store{config: c}, nil
}

// configure returns the configuration opts give, for client, with timeout
// by default.
func configure(client redis.UniversalClient, timeout time.Duration, opts []Option) (config, error) {
	if client == nil {
		return config{}, fmt.Errorf("redisstore: nil client: %w", jwtcache.ErrInvalid)
	}
	c := config{client: client, prefix: "jwtcache", timeout: timeout, ring: seal.NewRing("redisstore", ErrCorrupt)}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(&c); err != nil {
			return config{}, err
		}
	}
	if err := c.ring.Ready(); err != nil {
		return config{}, err
	}
	return c, nil
}

// tag returns the prefix and hash tag of the Redis keys of key. The key is
// hashed into the hash tag, so that any key is a valid tag and tenant ids do
// not show in Redis.
func (c *config) tag(key string) string {
	sum := sha256.Sum256([]byte(key))
	return c.prefix + ":{" + hex.EncodeToString(sum[:12]) + "}"
}

// redisKeys returns the Redis keys of a cache key's token and lease.
func (s *Store) redisKeys(key string) (token, lease string) {
	tag := s.tag(key)
	return tag + ":token", tag + ":lease"
}

// A value is the sealed payload (see package seal), bound to its Redis
// key. The payload is the expiry in Unix milliseconds (8 bytes, big-endian)
// and the token.

// Load implements [jwtcache.Store].
func (s *Store) Load(ctx context.Context, key string) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rk, _ := s.redisKeys(key)
	b, err := s.client.Get(ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		return "", time.Time{}, jwtcache.ErrNotFound
	}
	if err != nil {
		return "", time.Time{}, s.failed("load", err)
	}
	payload, err := s.ring.Open(b, []byte(rk))
	if err != nil {
		return "", time.Time{}, err
	}
	if len(payload) < 8 {
		return "", time.Time{}, fmt.Errorf("%w: short payload", ErrCorrupt)
	}
	expiry := time.UnixMilli(int64(binary.BigEndian.Uint64(payload)))
	return string(payload[8:]), expiry, nil
}

// Save implements [jwtcache.Store]. The value lives in Redis until expiry.
func (s *Store) Save(ctx context.Context, key, token string, expiry time.Time) error {
	ttl := time.Until(expiry)
	if ttl < time.Millisecond {
		return nil // nothing left to share
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rk, _ := s.redisKeys(key)
	payload := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(token)), uint64(expiry.UnixMilli()))
	payload = append(payload, token...)
	value, err := s.ring.Seal(payload, []byte(rk))
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, rk, value, ttl).Err(); err != nil {
		return s.failed("save", err)
	}
	return nil
}

// Scripts that act on a key only if it still holds the value the caller
// expects, so that a check and its action are one atomic step.
var (
	// compareAndDelete deletes KEYS[1] if it holds ARGV[1]: a lease's
	// release by its owner, or a rejected token's value.
	compareAndDelete = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)
	// compareAndExpire sets KEYS[1] to expire in ARGV[2] milliseconds if it
	// holds ARGV[1]: a lease its owner keeps after a failed fetch.
	compareAndExpire = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end return 0`)
)

// CompareAndDelete implements [jwtcache.Store]. Values are sealed with a
// random nonce, so Redis cannot compare tokens: the store reads the value,
// opens it, and if it holds token, deletes it only if it still holds those
// very bytes (one atomic script), so that a replacement saved meanwhile stays.
func (s *Store) CompareAndDelete(ctx context.Context, key, token string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rk, _ := s.redisKeys(key)
	b, err := s.client.Get(ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, s.failed("compare and delete", err)
	}
	if payload, err := s.ring.Open(b, []byte(rk)); err != nil || len(payload) < 8 || string(payload[8:]) != token {
		return false, nil // another token, or one nobody can adopt
	}
	n, err := compareAndDelete.Run(ctx, s.client, []string{rk}, b).Int()
	if err != nil {
		return false, s.failed("compare and delete", err)
	}
	return n == 1, nil
}

// Lease implements [jwtcache.Store]: SET NX PX with a random owner. A holder
// that dies loses the lease when ttl runs out. Its release runs a script that
// deletes the lease, or with a positive keep sets it to expire keep later,
// only if the owner still holds it.
func (s *Store) Lease(ctx context.Context, key string, ttl time.Duration) (func(context.Context, time.Duration) error, bool, error) {
	var owner [16]byte
	if _, err := rand.Read(owner[:]); err != nil {
		return nil, false, fmt.Errorf("redisstore: lease: %w", err)
	}
	ownerID := hex.EncodeToString(owner[:])
	_, lk := s.redisKeys(key)
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ok, err := s.client.SetNX(lctx, lk, ownerID, ttl).Result()
	if err != nil {
		return nil, false, s.failed("lease", err)
	}
	if !ok {
		return nil, false, nil
	}
	release := func(ctx context.Context, keep time.Duration) error {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		var err error
		if keep > 0 {
			err = compareAndExpire.Run(ctx, s.client, []string{lk}, ownerID, max(keep.Milliseconds(), 1)).Err()
		} else {
			err = compareAndDelete.Run(ctx, s.client, []string{lk}, ownerID).Err()
		}
		if err != nil {
			return s.failed("release lease", err)
		}
		return nil
	}
	return release, true, nil
}

// failed wraps the error of a Redis call that op made. On a Cluster, it also
// has the client reload the cluster's layout (in the background, once however
// many calls fail): go-redis otherwise learns that a replica took over a
// failed master only from a MOVED reply, which no live node sends for the dead
// master's slots, or when its ClusterStateReloadInterval (60 seconds by
// default) has passed, and the fleet would fetch alone until then.
func (c *config) failed(op string, err error) error {
	if cc, ok := c.client.(*redis.ClusterClient); ok {
		cc.ReloadState(context.Background())
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}
