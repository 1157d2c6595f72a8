package jwtcache_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// The tests' scaffolding is internal/testkit's: its clock, minter and log
// buffer. What follows is this package's own: the fixed start of the clock,
// a provider on it, and a cache on that.

// minter signs the tests' tokens. A cache parses them without verifying
// them, unless a test gives it minter.ParseOption().
var minter = testkit.NewMinter("jwtcache-test")

// newClock returns the tests' clock, at a fixed start.
func newClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
}

// provider is a token function that mints a token on the fake clock for each
// call, counting the calls, and can be made to fail or to block.
type provider struct {
	clock *testkit.Clock
	life  time.Duration
	calls atomic.Int64

	mu sync.Mutex
	// guards fail and gate
	fail error
	gate chan struct{} // when not nil, each call waits for it to close
}

func (p *provider) token(ctx context.Context) (string, error) {
	p.calls.Add(1)
	p.mu.Lock()
	fail, gate := p.fail, p.gate
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if fail != nil {
		return "", fail
	}
	return minter.Mint(p.clock.Now(), p.life, nil), nil
}

func (p *provider) setFail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = err
}

func (p *provider) setGate(g chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = g
}

// newTestCache returns a cache on a fake clock backed by a provider of tokens
// that live for life.
func newTestCache(life time.Duration, opts ...jwtcache.Option) (*jwtcache.Cache, *provider, *testkit.Clock) {
	clk := newClock()
	p := &provider{clock: clk, life: life}
	base := []jwtcache.Option{
		jwtcache.TokenFunction(p.token),
		jwtcache.Clock(clk.Now),
		jwtcache.Logger(nil),
	}
	return jwtcache.NewCache(append(base, opts...)...), p, clk
}

func mustToken(t *testing.T, c *jwtcache.Cache) string {
	t.Helper()
	tok, err := c.EnsureToken(context.Background())
	if err != nil {
		t.Fatalf("EnsureToken() error = %v", err)
	}
	return tok
}
