package verify

import (
	"crypto/sha256"
	"testing"
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
