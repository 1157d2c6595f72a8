package verify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/shardmap"
	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// tokenCache is the verified-token cache: the tokens verified, by a keyed
// hash of their text (see key), which keeps the tokens themselves out of
// memory. A hit is a lookup in a [shardmap.Map], which takes no lock and
// writes no shared memory, so that parallel hits of one token scale as the
// KeySet's lookups do; the writes (a token added, evicted or dropped) copy
// one shard of the map.
type tokenCache struct {
	// m holds the tokens; its entries are never modified once stored.
	m shardmap.Map[[sha256.Size]byte, cacheEntry]
	// mac and max are written once by newTokenCache and only read after.
	// mac is nil where GCM is refused (FIPS 140-only mode): keys are then
	// SHA-256 sums.
	mac cipher.AEAD
	max int
	// tags holds the buffers mac.Seal writes a tag to, which would escape
	// to the heap on every call: the method is called through an interface.
	tags sync.Pool // of *tagBuffer

	mu sync.Mutex // serializes the writers of m and n, add and remove
	// n is the number of tokens in m, written under mu with m, so that add
	// never lets it pass max; atomic, so that len reads it without mu.
	n atomic.Int64
}

// tagBuffer is a buffer of tokenCache.tags, padded to two cache lines: bare
// 16-byte buffers share a line with each other and with the small strings
// (a kid) that hits read, and two processors writing their tags to one line
// made parallel hits no faster than serial ones.
type tagBuffer struct {
	tag [16]byte
	_   [128 - 16]byte
}

// cacheNonce is the nonce of every tag of a tokenCache's mac: see key.
var cacheNonce [12]byte

// cacheEntry is a verified token. It is never modified once in the cache.
type cacheEntry struct {
	claims *Claims
	kid    string // of the key that verified it
}

// cacheSample is how many tokens eviction compares.
const cacheSample = 8

// newTokenCache returns a cache of at most size tokens, size > 0.
func newTokenCache(size int) *tokenCache {
	c := &tokenCache{max: size}
	c.tags.New = func() any { return new(tagBuffer) }
	var k [32]byte
	_, _ = rand.Read(k[:]) // never fails, says crypto/rand
	if b, err := aes.NewCipher(k[:]); err == nil {
		c.mac, _ = cipher.NewGCM(b) // nil in FIPS 140-only mode
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
	buf := c.tags.Get().(*tagBuffer)
	copy(k[:], c.mac.Seal(buf.tag[:0], cacheNonce[:], nil, jose.Bytes(token)))
	c.tags.Put(buf)
	return k
}

// hash returns the shardmap hash of the token whose key is sum: its first 8
// bytes, which are uniform (a tag under a secret key, or a SHA-256), with a
// bit set, as shardmap requires.
func hash(sum *[sha256.Size]byte) uint64 {
	return binary.LittleEndian.Uint64(sum[:8]) | 1<<63
}

// get returns the token whose key is sum. It takes no lock and writes
// nothing.
func (c *tokenCache) get(sum *[sha256.Size]byte) (*cacheEntry, bool) {
	return c.m.Load(hash(sum), *sum)
}

// remove drops e, the token whose key is sum, unless another entry took its
// place. It is the path of a hit that fails (an expired token, or one whose
// key left), once per token: it may take a lock.
func (c *tokenCache) remove(sum *[sha256.Size]byte, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m.Delete(hash(sum), *sum, e) {
		c.n.Add(-1)
	}
}

// add adds e, the token whose key is sum, and returns its claims; if a
// concurrent call added the token first, it keeps that entry and returns its
// claims, so that every caller after the first gets the same. In a full
// cache, it first drops the tokens, of cacheSample taken at random, that are
// expired at now with leeway d, or else the one that expires soonest: the
// eviction is the writer's work, never a reader's.
func (c *tokenCache) add(sum *[sha256.Size]byte, e *cacheEntry, d time.Duration, now time.Time) *Claims {
	h := hash(sum)
	c.mu.Lock()
	defer c.mu.Unlock()
	if x, ok := c.m.Load(h, *sum); ok {
		return x.claims
	}
	if c.n.Load() >= int64(c.max) {
		c.evict(d, now)
	}
	x, loaded := c.m.LoadOrStore(h, *sum, e)
	if !loaded {
		c.n.Add(1)
	}
	return x.claims
}

// evict drops the tokens, of cacheSample from a random one on, that are
// expired at now with leeway d, or if none is, the one of them that expires
// soonest. It is called with mu held.
func (c *tokenCache) evict(d time.Duration, now time.Time) {
	type entry = shardmap.Entry[[sha256.Size]byte, cacheEntry]
	var expired []entry
	var soonest entry
	var soonestAt time.Time
	n := 0
	c.m.RangeFrom(mrand.Uint64(), func(x entry) bool {
		at := x.Value.claims.expiry.Add(d)
		switch {
		case !now.Before(at):
			expired = append(expired, x)
		case soonest.Hash == 0 || at.Before(soonestAt):
			soonest, soonestAt = x, at
		}
		n++
		return n < cacheSample
	})
	if len(expired) == 0 && soonest.Hash != 0 {
		expired = append(expired, soonest)
	}
	if len(expired) > 0 {
		c.n.Add(-int64(len(c.m.DeleteAll(expired))))
	}
}

// len returns the number of tokens in c.
func (c *tokenCache) len() int { return int(c.n.Load()) }
