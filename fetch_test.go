package jwtcache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// The tests of a fetch (fetch.go): one at a time however many callers miss,
// on a context no caller can cancel, bounded by the fetch timeout, with a
// panic contained.

// TestCache_FetchTimeout bounds a fetch by FetchTimeout (real time). Whether
// the token function honours its context (a provider that never answers) or
// ignores it (a token function that hangs), the caller gets the deadline's
// error. One that honours it sees its context end at the timeout; one that
// ignores it is abandoned, and no second call piles up behind it while it
// hangs. Either way the cache serves again once the token function returns.
func TestCache_FetchTimeout(t *testing.T) {
	for _, honours := range []bool{true, false} {
		name := "token function ignores its context"
		if honours {
			name = "token function honours its context"
		}
		t.Run(name, func(t *testing.T) {
			clk := newClock()
			release := make(chan struct{})
			fetchErr := make(chan error, 1) // how the first call's context ended
			var calls, running atomic.Int64
			c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
				jwtcache.FetchTimeout(10*time.Millisecond), jwtcache.Backoff(time.Second, time.Second),
				jwtcache.TokenFunction(func(ctx context.Context) (string, error) {
					n := calls.Add(1)
					running.Add(1)
					defer running.Add(-1)
					if !honours {
						<-release
						return minter.Mint(clk.Now(), time.Hour, nil), nil
					}
					select {
					case <-release:
						return minter.Mint(clk.Now(), time.Hour, nil), nil
					case <-ctx.Done():
						if n == 1 {
							fetchErr <- ctx.Err()
						}
						return "", ctx.Err()
					}
				}))
			if _, err := c.EnsureToken(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("EnsureToken() error = %v; want the fetch timeout", err)
			}
			if honours {
				if err := <-fetchErr; !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("the token function's context ended with %v; want the fetch's deadline", err)
				}
			}
			for range 5 {
				clk.Advance(2 * time.Second) // past the backoff
				if _, err := c.EnsureToken(context.Background()); err == nil {
					t.Fatalf("EnsureToken() = nil error while the token function hangs")
				}
			}
			if got := calls.Load(); !honours && got != 1 {
				t.Errorf("token function calls while one hangs = %d; want 1", got)
			} else if got > 6 {
				t.Errorf("token function calls = %d for 6 calls a backoff apart; want at most 6", got)
			}
			close(release)
			// Once the hung call has returned (and the cache has seen it
			// return, which comes just after), a call past the backoff
			// fetches again and gets a token.
			testkit.Eventually(t, "a token once the hung call returned", func() bool {
				clk.Advance(2 * time.Second)
				_, err := c.EnsureToken(context.Background())
				return running.Load() == 0 && err == nil
			})
		})
	}
}

func TestCache_Stampede(t *testing.T) {
	c, p, _ := newTestCache(time.Hour)
	gate := make(chan struct{})
	p.setGate(gate)
	const callers = 1000
	var wg sync.WaitGroup
	tokens := make([]string, callers)
	errs := make([]error, callers)
	var entered atomic.Int64
	for i := range callers {
		wg.Go(func() {
			entered.Add(1)
			tokens[i], errs[i] = c.EnsureToken(context.Background())
		})
	}
	// Every caller is on its way in before the one fetch may finish.
	testkit.Eventually(t, "all callers to start", func() bool { return entered.Load() == callers && p.calls.Load() > 0 })
	close(gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || tokens[i] != tokens[0] {
			t.Fatalf("caller %d got %q, %v; want the one token", i, tokens[i], errs[i])
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("token function calls = %d; want 1", got)
	}
}

func TestCache_CancelledCaller(t *testing.T) {
	clk := newClock()
	started := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int64
	c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(ctx context.Context) (string, error) {
			calls.Add(1)
			close(started)
			<-release
			if err := ctx.Err(); err != nil {
				return "", fmt.Errorf("fetch context ended: %w", err)
			}
			return minter.Mint(clk.Now(), time.Hour, nil), nil
		}))

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.EnsureToken(ctx)
		first <- err
	}()
	<-started
	other := make(chan error, 1)
	go func() {
		_, err := c.EnsureToken(context.Background())
		other <- err
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller's error = %v; want context.Canceled", err)
	}
	close(release)
	if err := <-other; err != nil {
		t.Errorf("other caller's error = %v; want the token from the same fetch", err)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("token function calls = %d; want 1", got)
	}
}

func TestCache_PanicLeavesCacheUsable(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				panic("first call panics")
			}
			return minter.Mint(clk.Now(), time.Hour, nil), nil
		}))
	if _, err := c.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrPanic) {
		t.Fatalf("EnsureToken() error = %v; want ErrPanic", err)
	}
	clk.Advance(time.Minute) // past any backoff
	mustToken(t, c)
}
