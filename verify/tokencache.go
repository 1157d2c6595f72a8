package verify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// tokenCache is the verified-token cache: the tokens verified, by a keyed
// hash of their text (see key), which keeps the tokens themselves out of
// memory, in shards of their own lock, so that concurrent hits do not contend
// on one.
type tokenCache struct {
	// shards and mac are written once by newTokenCache and only read
	// after. mac is nil where GCM is refused (FIPS 140-only mode): keys are
	// then SHA-256 sums.
	shards []cacheShard
	mac    cipher.AEAD
	// tags holds the buffers mac.Seal writes a tag to, which would escape
	// to the heap on every call: the method is called through an interface.
	tags sync.Pool
}

// cacheNonce is the nonce of every tag of a tokenCache's mac: see key.
var cacheNonce [12]byte

// cacheShard is a part of a tokenCache.
type cacheShard struct {
	mu sync.RWMutex
	// guards m
	m   map[[sha256.Size]byte]cacheEntry
	max int // written once by newTokenCache
	_   [64]byte
}

// cacheEntry is a verified token. It is never modified once in the cache.
type cacheEntry struct {
	claims *Claims
	kid    string // of the key that verified it
}

// cacheShards is the number of shards of a cache of cacheShardMin
// tokens or more; a smaller cache has one.
const (
	cacheShards   = 16
	cacheShardMin = 16 * cacheShards
)

// cacheSample is how many tokens eviction compares.
const cacheSample = 8

// newTokenCache returns a cache of at most size tokens.
func newTokenCache(size int) *tokenCache {
	n := 1
	if size >= cacheShardMin {
		n = cacheShards
	}
	c := &tokenCache{shards: make([]cacheShard, n)}
	c.tags.New = func() any { return new([16]byte) }
	var k [32]byte
	_, _ = rand.Read(k[:]) // never fails, says crypto/rand
	if b, err := aes.NewCipher(k[:]); err == nil {
		c.mac, _ = cipher.NewGCM(b) // nil in FIPS 140-only mode
	}
	for i := range c.shards {
		c.shards[i].max = size / n
		if i < size%n {
			c.shards[i].max++
		}
		c.shards[i].m = make(map[[sha256.Size]byte]cacheEntry)
	}
	return c
}

// key returns the key of token in c: its GMAC tag under c's secret key (the
// GCM tag of an empty plaintext with token as additional data), or without
// one, its SHA-256.
//
// The key must be collision-resistant: a token with the key of one verified
// is accepted without its signature being checked. SHA-256 is, but at 30 ns
// a block it was most of a hit, and twice the cost of an RS256 token's
// (11 blocks) as a short ES256 one's. GHASH, under a key unknown to the
// sender, is almost XOR-universal: two different tokens of at most L blocks
// share a tag with a probability of at most (L+1)/2^128 (McGrew and Viega,
// "The Security and Performance of the Galois/Counter Mode", section 3,
// https://eprint.iacr.org/2004/193), whatever their choice, provided they
// cannot see tags. Tags never leave the process (no error, log or metric
// carries one; a miss tells nothing of them), so one fixed nonce serves
// every tag: what GCM's unique nonces protect is tags that an adversary
// sees. A reader of the process's memory could make tokens with the tags of
// those cached, as it could take the tokens the caches of the root package
// hold; with SHA-256 keys, it could not.
func (c *tokenCache) key(token string) (k [sha256.Size]byte) {
	if c.mac == nil {
		return sha256.Sum256(jose.Bytes(token))
	}
	buf := c.tags.Get().(*[16]byte)
	copy(k[:], c.mac.Seal(buf[:0], cacheNonce[:], nil, jose.Bytes(token)))
	c.tags.Put(buf)
	return k
}

// shard returns the shard of the token whose key is sum.
func (c *tokenCache) shard(sum *[sha256.Size]byte) *cacheShard {
	return &c.shards[int(sum[0])%len(c.shards)]
}

// get returns the token whose key is sum.
func (c *tokenCache) get(sum *[sha256.Size]byte) (cacheEntry, bool) {
	s := c.shard(sum)
	s.mu.RLock()
	e, ok := s.m[*sum]
	s.mu.RUnlock()
	return e, ok
}

// remove drops the token whose key is sum.
func (c *tokenCache) remove(sum *[sha256.Size]byte) {
	s := c.shard(sum)
	s.mu.Lock()
	delete(s.m, *sum)
	s.mu.Unlock()
}

// add adds e, the token whose key is sum, and returns its claims; if a
// concurrent call added the token first, it keeps that entry and returns its
// claims, so that every caller after the first gets the same. In a full
// shard, it first drops the tokens, of cacheSample taken at random, that
// are expired at now with leeway d, or else the one that expires soonest.
func (c *tokenCache) add(sum *[sha256.Size]byte, e cacheEntry, d time.Duration, now time.Time) *Claims {
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.m[*sum]; ok {
		return x.claims
	}
	if len(s.m) >= s.max {
		var soonest [sha256.Size]byte
		var soonestAt time.Time
		dropped, n := false, 0
		// Map iteration starts at random.
		for k, x := range s.m {
			at := x.claims.expiry.Add(d)
			if !now.Before(at) {
				delete(s.m, k)
				dropped = true
			} else if n == 0 || at.Before(soonestAt) {
				soonest, soonestAt = k, at
			}
			if n++; n == cacheSample {
				break
			}
		}
		if !dropped {
			delete(s.m, soonest)
		}
	}
	s.m[*sum] = e
	return e.claims
}

// len returns the number of tokens in c.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
