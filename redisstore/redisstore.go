// Package redisstore implements [jwtcache.Store] on Redis, so that a fleet of
// replicas fetches one token, not one each.
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
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
)

// ErrCorrupt is what Load returns for a value it cannot read back: truncated,
// tampered with, copied from another key, or encrypted under a key ID it does
// not have. The cache treats it as a miss, and logs it.
var ErrCorrupt = errors.New("redisstore: value cannot be read back")

// Store is a [jwtcache.Store] on Redis. It is safe for concurrent use.
type Store struct {
	client    redis.UniversalClient
	prefix    string
	timeout   time.Duration
	keys      map[string]cipher.AEAD // by key ID
	current   string                 // the ID of the key new values are sealed with
	plaintext bool
}

var _ jwtcache.Store = (*Store)(nil)

// Option configures a [Store].
type Option interface {
	apply(*Store) error
}

type optionFunc func(*Store) error

func (f optionFunc) apply(s *Store) error { return f(s) }

// Key adds an AES-256 key (32 bytes) with an ID that is stored, in clear, with
// every value it seals. The first Key seals new values; the others only open
// old ones, so a key can be rotated out: add the new one first, keep the old
// one until the values it sealed have expired (a token's lifetime), then drop
// it.
func Key(id string, key []byte) Option {
	return optionFunc(func(s *Store) error {
		if id == "" || len(id) > 255 {
			return errors.New("redisstore: a key ID must be 1 to 255 bytes")
		}
		if _, dup := s.keys[id]; dup {
			return fmt.Errorf("redisstore: key ID %q given twice", id)
		}
		if len(key) != 32 {
			return fmt.Errorf("redisstore: key %q has %d bytes; AES-256 needs 32", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return fmt.Errorf("redisstore: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return fmt.Errorf("redisstore: key %q: %w", id, err)
		}
		s.keys[id] = aead
		if s.current == "" {
			s.current = id
		}
		return nil
	})
}

// InsecurePlaintextTokens stores tokens unencrypted, readable by anyone who
// can read the Redis keys. It exists for development setups only; a store
// needs either it or a [Key].
func InsecurePlaintextTokens() Option {
	return optionFunc(func(s *Store) error { s.plaintext = true; return nil })
}

// Prefix sets the prefix of every Redis key the store writes. The default is
// "jwtcache".
func Prefix(p string) Option {
	return optionFunc(func(s *Store) error { s.prefix = p; return nil })
}

// Timeout bounds every Redis call: past it, the cache fetches on its own. Zero
// or less is taken as the default. The default is 200 milliseconds.
func Timeout(d time.Duration) Option {
	return optionFunc(func(s *Store) error {
		if d > 0 {
			s.timeout = d
		}
		return nil
	})
}

// New returns a store on client: a single server, Sentinel or Cluster client.
// It needs a [Key], or [InsecurePlaintextTokens].
func New(client redis.UniversalClient, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil client")
	}
	s := &Store{client: client, prefix: "jwtcache", timeout: 200 * time.Millisecond, keys: map[string]cipher.AEAD{}}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.apply(s); err != nil {
			return nil, err
		}
	}
	if s.current == "" && !s.plaintext {
		return nil, errors.New("redisstore: no encryption key: give redisstore.Key, or InsecurePlaintextTokens for development")
	}
	if s.current != "" && s.plaintext {
		return nil, errors.New("redisstore: both a key and InsecurePlaintextTokens given")
	}
	return s, nil
}

// redisKeys returns the Redis keys of a cache key's token and lease. The
// cache key is hashed into the hash tag, so that any key is a valid tag and
// tenant ids do not show in Redis.
func (s *Store) redisKeys(key string) (token, lease string) {
	sum := sha256.Sum256([]byte(key))
	tag := "{" + hex.EncodeToString(sum[:12]) + "}"
	return s.prefix + ":" + tag + ":token", s.prefix + ":" + tag + ":lease"
}

// Value layout: version (1), mode (0 sealed, 1 plain), then for sealed
// values the key ID's length, the key ID, the nonce and the sealed payload;
// for plain values the payload. The payload is the expiry in Unix
// milliseconds (8 bytes, big-endian) and the token.
const (
	version   = 1
	modeSeal  = 0
	modePlain = 1
)

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
	payload, err := s.open(rk, b)
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
	value, err := s.seal(rk, payload)
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
	if payload, err := s.open(rk, b); err != nil || len(payload) < 8 || string(payload[8:]) != token {
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
func (s *Store) failed(op string, err error) error {
	if c, ok := s.client.(*redis.ClusterClient); ok {
		c.ReloadState(context.Background())
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// seal returns the value that stores payload under the Redis key rk.
func (s *Store) seal(rk string, payload []byte) ([]byte, error) {
	if s.plaintext {
		return append([]byte{version, modePlain}, payload...), nil
	}
	aead := s.keys[s.current]
	out := make([]byte, 0, 3+len(s.current)+aead.NonceSize()+len(payload)+aead.Overhead())
	out = append(out, version, modeSeal, byte(len(s.current)))
	out = append(out, s.current...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("redisstore: save: %w", err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, payload, []byte(rk)), nil
}

// open returns the payload of the value b stored under the Redis key rk.
func (s *Store) open(rk string, b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != version {
		return nil, fmt.Errorf("%w: unknown format", ErrCorrupt)
	}
	switch b[1] {
	case modePlain:
		if !s.plaintext {
			return nil, fmt.Errorf("%w: an unencrypted value, and this store encrypts", ErrCorrupt)
		}
		return b[2:], nil
	case modeSeal:
		if len(b) < 3 || len(b) < 3+int(b[2]) {
			return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		id := string(b[3 : 3+int(b[2])])
		aead, ok := s.keys[id]
		if !ok {
			return nil, fmt.Errorf("%w: sealed with key ID %q, which this store does not have", ErrCorrupt, id)
		}
		rest := b[3+len(id):]
		if len(rest) < aead.NonceSize() {
			return nil, fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		payload, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], []byte(rk))
		if err != nil {
			return nil, fmt.Errorf("%w: it does not authenticate under key %q (tampered, truncated or copied)", ErrCorrupt, id)
		}
		return payload, nil
	}
	return nil, fmt.Errorf("%w: unknown mode", ErrCorrupt)
}
