// Package grantstoretest is the conformance suite of [provider.GrantStore]:
// the one set of tests that every implementation (redisstore's, sqlstore's)
// passes, so that the contract is written once, as checks.
package grantstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// prompt is how long a call on a context that has ended may take.
const prompt = time.Second

// Run runs the suite, each check a subtest of t with a store from open. The
// stores open returns may share their data (one server): the suite's keys
// are its own, random for each Run. Keys are valid UTF-8 without NUL, up to
// 1024 bytes.
func Run(t *testing.T, open func(t *testing.T) provider.GrantStore) {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	run := hex.EncodeToString(b[:])
	tests := []struct {
		name string
		test func(t *testing.T, s provider.GrantStore, key func(string) string)
	}{
		{"LoadMissing", testLoadMissing},
		{"SwapCreates", testSwapCreates},
		{"VersionsIncrease", testVersionsIncrease},
		{"StaleSwap", testStaleSwap},
		{"CreateExisting", testCreateExisting},
		{"SwapMissing", testSwapMissing},
		{"StaleDelete", testStaleDelete},
		{"Delete", testDelete},
		{"Keys", testKeys},
		{"Tokens", testTokens},
		{"ConcurrentSwaps", testConcurrentSwaps},
		{"ConcurrentCreates", testConcurrentCreates},
		{"ContextEnded", testContextEnded},
		{"Invalid", testInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := func(k string) string { return "grantstoretest:" + run + ":" + tt.name + ":" + k }
			tt.test(t, open(t), key)
		})
	}
}

var ctx = context.Background()

// mustSwap swaps and fails the test unless it gives version+1.
func mustSwap(t *testing.T, s provider.GrantStore, key string, version int64, token string) {
	t.Helper()
	if v, err := s.Swap(ctx, key, version, token); err != nil || v != version+1 {
		t.Fatalf("Swap(%.40q, %d) = %d, %v; want %d, nil", key, version, v, err, version+1)
	}
}

// wantLoad fails the test unless key holds token at version.
func wantLoad(t *testing.T, s provider.GrantStore, key, token string, version int64) {
	t.Helper()
	got, v, err := s.Load(ctx, key)
	if err != nil || got != token || v != version {
		t.Errorf("Load(%.40q) = %.40q, %d, %v; want %.40q, %d, nil", key, got, v, err, token, version)
	}
}

// wantMissing fails the test unless key has never held a token.
func wantMissing(t *testing.T, s provider.GrantStore, key string) {
	t.Helper()
	wantDeleted(t, s, key, 0)
}

// wantDeleted fails the test unless key holds no token, at version.
func wantDeleted(t *testing.T, s provider.GrantStore, key string, version int64) {
	t.Helper()
	if got, v, err := s.Load(ctx, key); !errors.Is(err, jwtcache.ErrNotFound) || v != version {
		t.Errorf("Load(%.40q) = %.40q, %d, %v; want version %d, ErrNotFound", key, got, v, err, version)
	}
}

// wantConflict fails the test unless err wraps provider.ErrGrantConflict.
func wantConflict(t *testing.T, call string, v int64, err error) {
	t.Helper()
	if !errors.Is(err, provider.ErrGrantConflict) {
		t.Errorf("%s = %d, %v; want ErrGrantConflict", call, v, err)
	}
}

func testLoadMissing(t *testing.T, s provider.GrantStore, key func(string) string) {
	wantMissing(t, s, key("missing"))
}

func testSwapCreates(t *testing.T, s provider.GrantStore, key func(string) string) {
	mustSwap(t, s, key("k"), 0, "rt-1")
	wantLoad(t, s, key("k"), "rt-1", 1)
}

func testVersionsIncrease(t *testing.T, s provider.GrantStore, key func(string) string) {
	for v := range int64(5) {
		token := fmt.Sprintf("rt-%d", v+1)
		mustSwap(t, s, key("k"), v, token)
		wantLoad(t, s, key("k"), token, v+1)
	}
}

func testStaleSwap(t *testing.T, s provider.GrantStore, key func(string) string) {
	mustSwap(t, s, key("k"), 0, "rt-1")
	mustSwap(t, s, key("k"), 1, "rt-2")
	for _, stale := range []int64{1, 3} { // older, and newer than stored
		v, err := s.Swap(ctx, key("k"), stale, "rt-stale")
		wantConflict(t, fmt.Sprintf("Swap(%d) of version 2", stale), v, err)
	}
	wantLoad(t, s, key("k"), "rt-2", 2)
}

func testCreateExisting(t *testing.T, s provider.GrantStore, key func(string) string) {
	mustSwap(t, s, key("k"), 0, "rt-1")
	v, err := s.Swap(ctx, key("k"), 0, "rt-other")
	wantConflict(t, "Swap(0) of an existing key", v, err)
	wantLoad(t, s, key("k"), "rt-1", 1)
}

func testSwapMissing(t *testing.T, s provider.GrantStore, key func(string) string) {
	v, err := s.Swap(ctx, key("k"), 1, "rt-1")
	wantConflict(t, "Swap(1) of a missing key", v, err)
	wantMissing(t, s, key("k"))
}

func testStaleDelete(t *testing.T, s provider.GrantStore, key func(string) string) {
	if deleted, err := s.Delete(ctx, key("k"), 0); deleted || err != nil {
		t.Errorf("Delete(0) of a missing key = %v, %v; want false, nil", deleted, err)
	}
	mustSwap(t, s, key("k"), 0, "rt-1")
	mustSwap(t, s, key("k"), 1, "rt-2")
	for _, stale := range []int64{0, 1, 3} {
		if deleted, err := s.Delete(ctx, key("k"), stale); deleted || err != nil {
			t.Errorf("Delete(%d) of version 2 = %v, %v; want false, nil", stale, deleted, err)
		}
	}
	wantLoad(t, s, key("k"), "rt-2", 2)
}

func testDelete(t *testing.T, s provider.GrantStore, key func(string) string) {
	mustSwap(t, s, key("k"), 0, "rt-1")
	mustSwap(t, s, key("k"), 1, "rt-2")
	if deleted, err := s.Delete(ctx, key("k"), 2); !deleted || err != nil {
		t.Fatalf("Delete(2) of version 2 = %v, %v; want true, nil", deleted, err)
	}
	// The version is never used again: a swap prepared before the delete,
	// or one from 0, finds no grant to land on.
	wantDeleted(t, s, key("k"), 3)
	for _, stale := range []int64{2, 3} {
		if deleted, err := s.Delete(ctx, key("k"), stale); deleted || err != nil {
			t.Errorf("Delete(%d) after the delete = %v, %v; want false, nil", stale, deleted, err)
		}
	}
	for _, stale := range []int64{0, 1, 2} {
		v, err := s.Swap(ctx, key("k"), stale, "rt-stale")
		wantConflict(t, fmt.Sprintf("Swap(%d) after the delete", stale), v, err)
	}
	mustSwap(t, s, key("k"), 3, "rt-new")
	wantLoad(t, s, key("k"), "rt-new", 4)
}

// oddKeys are keys that differ from each other by little, or that a careless
// store would mangle (quote, split, escape, truncate).
var oddKeys = []string{
	"a", "A", "a ", " a", "a:b", "a:b:", "a/b", "{a}", "{a}b", "a*", "a%", "a_", "'a'", `"a"`, `a\`,
	"'; DROP TABLE grants; --", "key with spaces", "tab\tnew\nline",
	"ключ", "鍵", "🔑", "e\u0301", "é", // é twice: decomposed and composed
	strings.Repeat("x", 1024), strings.Repeat("x", 1023) + "y",
}

func testKeys(t *testing.T, s provider.GrantStore, key func(string) string) {
	for i, k := range oddKeys {
		mustSwap(t, s, key(k), 0, fmt.Sprintf("rt-%d", i))
	}
	mustSwap(t, s, key(oddKeys[0]), 1, "rt-0b") // one key moves on alone
	for i, k := range oddKeys {
		if i == 0 {
			wantLoad(t, s, key(k), "rt-0b", 2)
			continue
		}
		wantLoad(t, s, key(k), fmt.Sprintf("rt-%d", i), 1)
	}
	if deleted, err := s.Delete(ctx, key(oddKeys[1]), 1); !deleted || err != nil {
		t.Fatalf("Delete(%q) = %v, %v; want true, nil", oddKeys[1], deleted, err)
	}
	wantDeleted(t, s, key(oddKeys[1]), 2)
	wantLoad(t, s, key(oddKeys[2]), "rt-2", 1)
}

func testTokens(t *testing.T, s provider.GrantStore, key func(string) string) {
	tokens := []string{
		"x", "v1.Mz-_~+/=", "a token with spaces", "ключ🔑", "\x00\xff binary \x01",
		strings.Repeat("0123456789abcdef", 512), // 8 KiB
	}
	for i, token := range tokens {
		k := key(fmt.Sprint(i))
		mustSwap(t, s, k, 0, token)
		wantLoad(t, s, k, token, 1)
	}
}

// concurrently runs n calls of f at once (a barrier releases them), and
// returns how many succeeded; a call that fails for another reason than a
// conflict fails the test.
func concurrently(t *testing.T, n int, f func(i int) (int64, error)) (wins int, winner int) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards wins, winner
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := f(i)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				winner = i
				mu.Unlock()
			case !errors.Is(err, provider.ErrGrantConflict):
				t.Errorf("concurrent Swap #%d = %d, %v; want a version or ErrGrantConflict", i, v, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins, winner
}

func testConcurrentSwaps(t *testing.T, s provider.GrantStore, key func(string) string) {
	mustSwap(t, s, key("k"), 0, "rt-1")
	wins, winner := concurrently(t, 20, func(i int) (int64, error) {
		return s.Swap(ctx, key("k"), 1, fmt.Sprintf("rt-2-%d", i))
	})
	if wins != 1 {
		t.Fatalf("20 concurrent Swap(1): %d won; want exactly 1", wins)
	}
	wantLoad(t, s, key("k"), fmt.Sprintf("rt-2-%d", winner), 2)
}

func testConcurrentCreates(t *testing.T, s provider.GrantStore, key func(string) string) {
	wins, winner := concurrently(t, 20, func(i int) (int64, error) {
		return s.Swap(ctx, key("k"), 0, fmt.Sprintf("rt-1-%d", i))
	})
	if wins != 1 {
		t.Fatalf("20 concurrent Swap(0) of a missing key: %d won; want exactly 1", wins)
	}
	wantLoad(t, s, key("k"), fmt.Sprintf("rt-1-%d", winner), 1)
}

func testContextEnded(t *testing.T, s provider.GrantStore, key func(string) string) {
	mustSwap(t, s, key("k"), 0, "rt-1")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{{"cancelled", cancelled, context.Canceled}, {"expired", expired, context.DeadlineExceeded}} {
		calls := []struct {
			name string
			call func() error
		}{
			{"Load", func() error { _, _, err := s.Load(c.ctx, key("k")); return err }},
			{"Swap", func() error { _, err := s.Swap(c.ctx, key("k"), 1, "rt-2"); return err }},
			{"Delete", func() error { _, err := s.Delete(c.ctx, key("k"), 1); return err }},
		}
		for _, call := range calls {
			begin := time.Now()
			err := call.call()
			if took := time.Since(begin); !errors.Is(err, c.want) || took > prompt {
				t.Errorf("%s on a %s context: error = %v after %v; want %v within %v", call.name, c.name, err, took, c.want, prompt)
			}
		}
	}
}

func testInvalid(t *testing.T, s provider.GrantStore, key func(string) string) {
	if _, _, err := s.Load(ctx, ""); !errors.Is(err, jwtcache.ErrInvalid) {
		t.Errorf("Load(\"\") error = %v; want ErrInvalid", err)
	}
	if v, err := s.Swap(ctx, "", 0, "rt-1"); !errors.Is(err, jwtcache.ErrInvalid) {
		t.Errorf("Swap(\"\") = %d, %v; want ErrInvalid", v, err)
	}
	if deleted, err := s.Delete(ctx, "", 0); !errors.Is(err, jwtcache.ErrInvalid) {
		t.Errorf("Delete(\"\") = %v, %v; want ErrInvalid", deleted, err)
	}
	if v, err := s.Swap(ctx, key("k"), 0, ""); !errors.Is(err, jwtcache.ErrInvalid) {
		t.Errorf("Swap() of an empty refresh token = %d, %v; want ErrInvalid", v, err)
	}
	if v, err := s.Swap(ctx, key("k"), -1, "rt-1"); !errors.Is(err, jwtcache.ErrInvalid) {
		t.Errorf("Swap(-1) = %d, %v; want ErrInvalid", v, err)
	}
	wantMissing(t, s, key("k"))
}

// Down checks s while its server is down, the key "alice" stored at version
// 1: each call fails, within timeout and a margin for a busy machine, with an
// error of s's own, its message starting with prefix, that is neither a miss
// nor a conflict.
func Down(t *testing.T, s provider.GrantStore, timeout time.Duration, prefix string) {
	t.Helper()
	ctx := context.Background()
	calls := map[string]func() error{
		"Load":   func() error { _, _, err := s.Load(ctx, "alice"); return err },
		"Swap":   func() error { _, err := s.Swap(ctx, "alice", 1, "rt-2"); return err },
		"Delete": func() error { _, err := s.Delete(ctx, "alice", 1); return err },
	}
	for name, call := range calls {
		begin := time.Now()
		err := call()
		took := time.Since(begin)
		if err == nil || errors.Is(err, jwtcache.ErrNotFound) || errors.Is(err, provider.ErrGrantConflict) || !strings.HasPrefix(err.Error(), prefix) {
			t.Errorf("%s with the server down: error = %v; want the server's, starting %q", name, err, prefix)
		}
		// A bound against hanging, not a speed target: the margin is wide.
		if took > timeout+2*time.Second {
			t.Errorf("%s with the server down took %v; want about the Timeout, %v, at most", name, took, timeout)
		}
	}
}
