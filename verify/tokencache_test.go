package verify_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestVerifier_CacheHit(t *testing.T) {
	keys := newKeys(t)
	v := newVerifier(t, keys, testkit.NewClock(t0))
	token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(nil))
	first, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	calls := keys.calls.Load()
	for range 3 {
		c, err := v.Verify(context.Background(), token)
		if err != nil || c != first {
			t.Fatalf("Verify() again = %p, %v; want %p, nil (the same *Claims)", c, err, first)
		}
	}
	if got := keys.calls.Load(); got != calls {
		t.Errorf("KeySource calls = %d after hits; want %d", got, calls)
	}
	if got := v.Len(); got != 1 {
		t.Errorf("Len() = %d; want 1", got)
	}
}

func TestVerifier_CacheOff(t *testing.T) {
	keys := newKeys(t)
	v := newVerifier(t, keys, testkit.NewClock(t0), verify.CacheSize(jwtcache.Off))
	token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(nil))
	for range 3 {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if got := keys.calls.Load(); got != 3 {
		t.Errorf("KeySource calls = %d; want 3 with the cache off", got)
	}
	if got := v.Len(); got != 0 {
		t.Errorf("Len() = %d; want 0 with the cache off", got)
	}
}

func TestVerifier_CacheExpiry(t *testing.T) {
	clock := testkit.NewClock(t0)
	keys := newKeys(t)
	v := newVerifier(t, keys, clock)
	token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(nil))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(time.Hour + 30*time.Second - time.Nanosecond))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify() a hit just before exp plus leeway = %v; want success", err)
	}
	clock.Advance(time.Nanosecond)
	calls := keys.calls.Load()
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, verify.ErrExpired) {
		t.Fatalf("Verify() a hit at exp plus leeway = %v; want ErrExpired", err)
	}
	if got := v.Len(); got != 0 {
		t.Errorf("Len() = %d after expiry; want 0", got)
	}
	if got := keys.calls.Load(); got != calls {
		t.Errorf("KeySource calls = %d for an expired hit; want %d", got, calls)
	}
	// And a verified token is never admitted if the clock goes back before nbf.
	token = sign(t, "ES256", "p256", testKeys().p256, nil, claims(map[string]any{"nbf": t0.Unix(), "exp": t0.Add(2 * time.Hour).Unix(), "iat": nil}))
	clock.Set(t0)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(-31 * time.Second))
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, verify.ErrNotYetValid) {
		t.Errorf("Verify() a hit before nbf = %v; want ErrNotYetValid", err)
	}
}

func TestVerifier_CacheKeyRemoved(t *testing.T) {
	tests := []struct {
		name     string
		presence bool
		wantErr  error
	}{
		{"with KeyPresence: refused", true, verify.ErrUnknownKey},
		{"without KeyPresence: accepted until exp", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := newKeys(t)
			var src verify.KeySource = keys
			if tt.presence {
				src = presentKeys{keys}
			}
			v := newVerifier(t, src, testkit.NewClock(t0))
			token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(nil))
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Fatal(err)
			}
			keys.remove("p256")
			if _, err := v.Verify(context.Background(), token); !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify() after the key left = %v; want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifier_CacheBound(t *testing.T) {
	n, size := 100_000, 1_000
	if testing.Short() {
		n = 5_000
	}
	keys := newKeys(t)
	v := newVerifier(t, keys, testkit.NewClock(t0), verify.CacheSize(size))
	ed := testKeys().ed
	for i := range n {
		token := sign(t, "EdDSA", "ed", ed, nil, claims(map[string]any{"jti": fmt.Sprint(i)}))
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatalf("Verify(token %d) = %v", i, err)
		}
		if i%1000 == 999 {
			if got := v.Len(); got > size {
				t.Fatalf("Len() = %d after %d tokens; want at most %d", got, i+1, size)
			}
		}
	}
	if got := v.Len(); got != size {
		t.Errorf("Len() = %d after %d tokens; want %d", got, n, size)
	}
}

func TestVerifier_CacheBoundSmall(t *testing.T) {
	for _, size := range []int{1, 2, 15, 300} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0), verify.CacheSize(size))
			for i := range 2*size + 3 {
				token := sign(t, "EdDSA", "ed", testKeys().ed, nil, claims(map[string]any{"jti": fmt.Sprint(i)}))
				if _, err := v.Verify(context.Background(), token); err != nil {
					t.Fatal(err)
				}
			}
			if got := v.Len(); got != size {
				t.Errorf("Len() = %d; want %d", got, size)
			}
		})
	}
}

func TestVerifier_CacheEvictsExpiredFirst(t *testing.T) {
	clock := testkit.NewClock(t0)
	keys := newKeys(t)
	v := newVerifier(t, keys, clock, verify.CacheSize(4), verify.Leeway(jwtcache.Off))
	ed := testKeys().ed
	long := sign(t, "EdDSA", "ed", ed, nil, claims(map[string]any{"exp": t0.Add(2 * time.Hour).Unix()}))
	if _, err := v.Verify(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		short := sign(t, "EdDSA", "ed", ed, nil, claims(map[string]any{"jti": fmt.Sprint(i), "exp": t0.Add(time.Minute).Unix()}))
		if _, err := v.Verify(context.Background(), short); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Hour)
	for i := range 3 {
		fresh := sign(t, "EdDSA", "ed", ed, nil, claims(map[string]any{"jti": fmt.Sprint("new", i), "exp": t0.Add(3 * time.Hour).Unix()}))
		if _, err := v.Verify(context.Background(), fresh); err != nil {
			t.Fatal(err)
		}
	}
	calls := keys.calls.Load()
	if _, err := v.Verify(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	if got := keys.calls.Load(); got != calls {
		t.Errorf("the live token was evicted before the expired ones: KeySource calls = %d; want %d", got, calls)
	}
}

func TestVerifier_Concurrent(t *testing.T) {
	keys := presentKeys{newKeys(t)}
	v := newVerifier(t, keys, testkit.NewClock(t0), verify.CacheSize(8))
	k := testKeys()
	tokens := make([]string, 16)
	for i := range tokens {
		tokens[i] = sign(t, "ES256", "p256", k.p256, nil, claims(map[string]any{"jti": fmt.Sprint(i)}))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 64 {
				if _, err := v.Verify(context.Background(), tokens[(g+i)%len(tokens)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := v.Len(); got > 8 {
		t.Errorf("Len() = %d; want at most 8", got)
	}
}

// TestVerifier_CacheKeyIsTheWholeToken: once a token is cached, no token that
// differs from it in one byte, anywhere, nor one cut short or made longer, is
// accepted on its cache entry: the key covers every byte of the text.
func TestVerifier_CacheKeyIsTheWholeToken(t *testing.T) {
	v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
	token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(nil))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	variants := []string{token[:len(token)-1], token + "A", token + "."}
	for i := range len(token) {
		b := []byte(token)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		variants = append(variants, string(b))
	}
	for _, tok := range variants {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatalf("Verify(a token unlike the cached one at %d) = nil error; want it refused", firstDiff(tok, token))
		}
	}
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("Verify(the cached token) error = %v", err)
	}
}

// firstDiff returns the index of the first byte where a and b differ.
func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
