package verify

import (
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/shardmap"
)

// TestTokenCache_Key: a cache's key of a token is the same every time, and
// differs for another token, for another cache (whose secret key is its own),
// and, where GCM is refused, is the token's SHA-256.
func TestTokenCache_Key(t *testing.T) {
	const tok, other = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", "eyJhbGciOiJFUzI1NiJ9.e30.c2lo"
	a, b := newTokenCache(10), newTokenCache(10)
	if a.mac == nil { // GCM refused (FIPS 140-only mode)
		if got, want := a.key(tok), sha256.Sum256([]byte(tok)); got != want {
			t.Errorf("key(tok) without GCM = %x; want its SHA-256 %x", got, want)
		}
		return
	}
	if first, again := a.key(tok), a.key(tok); first != again {
		t.Errorf("key(tok) = %x, then %x; want one key", first, again)
	}
	if a.key(tok) == a.key(other) {
		t.Errorf("key(tok) = key(other)")
	}
	if a.key(tok) == b.key(tok) {
		t.Errorf("two caches have the same key for tok; want each its own secret")
	}
	var zero [16]byte
	if k := a.key(tok); [16]byte(k[16:]) != zero || [16]byte(k[:16]) == zero {
		t.Errorf("key(tok) = %x; want a 16-byte tag and 16 zero bytes", k)
	}
	a.mac = nil
	if got, want := a.key(tok), sha256.Sum256([]byte(tok)); got != want {
		t.Errorf("key(tok) without GCM = %x; want its SHA-256 %x", got, want)
	}
}

// TestTokenCache_CountUnderConcurrency: however adds and removes interleave,
// the cache never holds more than its bound, and its count is what it holds.
func TestTokenCache_CountUnderConcurrency(t *testing.T) {
	const size = 50
	c := newTokenCache(size)
	now := time.Unix(1_700_000_000, 0)
	claims := &Claims{expiry: now.Add(time.Hour)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				sum := c.key(fmt.Sprintf("token %d-%d", g, i%300))
				c.add(&sum, &cacheEntry{claims: claims}, 0, now)
				if i%3 == 0 {
					if e, ok := c.get(&sum); ok {
						c.remove(&sum, e)
					}
				}
				if n := c.len(); n > size {
					t.Errorf("len() = %d; want at most %d", n, size)
					return
				}
			}
		})
	}
	wg.Wait()
	held := 0
	c.m.Range(func(shardmap.Entry[[sha256.Size]byte, cacheEntry]) bool { held++; return true })
	if got := c.len(); got != held || got > size {
		t.Errorf("len() = %d, holding %d; want them equal, at most %d", got, held, size)
	}
}
