package jwtcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// TestCache_FetchesPerLifetime runs a cache on its defaults for 20 token
// lifetimes at each of the lifetimes users meet, on a fake clock, with calls
// every 1/400 of a lifetime, and checks the refresh schedule's promises:
//   - at most one fetch per 0.75 of a token's local life (the expiry the cache
//     computes, from the fetch's start);
//   - no caller waits after the first, even when a fetch takes a tenth of the
//     lifetime (every call is made with a cancelled context, so a call that
//     would wait fails).
//
// The test is internal so that it can tell, after each call, whether that call
// was due to start a refresh, and wait for the refresh to reach the token
// function before it moves the clock: the schedule is then measured exactly,
// however slowly the race detector runs the background fetch.
func TestCache_FetchesPerLifetime(t *testing.T) {
	lifetimes := []time.Duration{5 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour}
	for _, latency := range []float64{0, 0.1} {
		for _, life := range lifetimes {
			t.Run(fmt.Sprintf("%s/latency=%.0f%%", life, latency*100), func(t *testing.T) {
				perLife := runSchedule(t, life, time.Duration(float64(life)*latency))
				t.Logf("lifetime %s, fetch latency %.0f%% of it: %.2f fetches per local life", life, latency*100, perLife)
			})
		}
	}
}

// runSchedule runs the schedule for one lifetime and fetch latency (in fake
// time), and returns the fetches per local life in steady state.
func runSchedule(t *testing.T, life, latency time.Duration) float64 {
	t.Helper()
	clk := testkit.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	started := make(chan time.Time, 1)
	release := make(chan struct{})
	c := NewCache(Name("schedule"), Logger(nil), Clock(clk.Now),
		TokenFunction(func(context.Context) (string, error) {
			started <- clk.Now()
			<-release
			return minter.Mint(clk.Now(), life, nil), nil
		}))

	// The first call waits, as it must: there is no token yet.
	first := make(chan error, 1)
	go func() { _, err := c.EnsureToken(context.Background()); first <- err }()
	starts := []time.Time{<-started}
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatalf("first EnsureToken() error = %v", err)
	}
	lives := []time.Duration{c.load().expiry.Sub(starts[0])}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	step := life / 400
	end := clk.Now().Add(20 * life)
	var pending *time.Time // the start of a fetch waiting for its latency to pass
	for clk.Now().Before(end) {
		clk.Advance(step)
		now := clk.Now()
		e := c.load()
		due := c.clock.Elapsed() >= e.freshFor && pending == nil && !e.Waiting(now)
		tok, err := c.EnsureToken(cancelled)
		if err != nil {
			t.Fatalf("EnsureToken() at %v into the run = %v; want a token without waiting",
				now.Sub(starts[0]), err)
		}
		if !now.Before(testkit.Claims(t, tok).Expiration()) {
			t.Fatalf("EnsureToken() returned a token expired at %v", now)
		}
		if due {
			// The call started a refresh in the background: wait until it
			// reaches the token function.
			select {
			case s := <-started:
				pending = &s
			case <-time.After(10 * time.Second):
				t.Fatalf("a call in the refresh window started no fetch")
			}
		}
		if pending != nil && !now.Before(pending.Add(latency)) {
			old := e.expiry
			release <- struct{}{}
			waitPublished(t, c, old)
			// The fetch has published; let it leave the group too, or the
			// next due call may join it as it ends and start none.
			c.flight.Wait(context.Background(), func() (any, error) { return nil, nil })
			starts = append(starts, *pending)
			lives = append(lives, c.load().expiry.Sub(*pending))
			pending = nil
		}
	}
	if pending != nil {
		old := c.load().expiry // before the release: the fetch may publish at once
		release <- struct{}{}
		waitPublished(t, c, old)
	}
	select {
	case <-started:
		t.Fatalf("a fetch started that the test did not see coming")
	default:
	}
	if got := c.Stats().Misses; got != 1 {
		t.Errorf("Stats().Misses = %d; want 1 (only the first call waits)", got)
	}
	for i := 1; i < len(starts); i++ {
		if gap, min := starts[i].Sub(starts[i-1]), time.Duration(0.75*float64(lives[i-1])); gap < min {
			t.Errorf("fetch %d came %v after the one before; want at least 0.75 of its local life %v (%v)",
				i, gap, lives[i-1], min)
		}
	}
	elapsed := starts[len(starts)-1].Sub(starts[0])
	return float64(len(starts)-1) / (float64(elapsed) / float64(lives[0]))
}

// TestCache_Recovery takes the provider down and brings it back at points of
// a one-minute token's life, with a call every 100ms on a fake clock, and
// checks the retry policy's promises: a provider that answers again while the
// token lives (2s or more before its expiry) finds the cache with a fresh token
// before the old one expires; one that answers after the token has expired
// serves callers within 2s; and while it is down, it sees at most one call a
// second.
func TestCache_Recovery(t *testing.T) {
	const life = time.Minute // 59s of local life; refreshed from 44.25s on, so down before that
	tests := []struct {
		name         string
		down, up     time.Duration // since the first fetch
		wantNeverDry bool
	}{
		{"back within the refresh window", 40 * time.Second, 50 * time.Second, true},
		{"back 2s before expiry", 40 * time.Second, 57 * time.Second, true},
		{"back just after expiry", 40 * time.Second, 60 * time.Second, false},
		{"back 20s after expiry", 40 * time.Second, 80 * time.Second, false},
		{"ten minutes down", 40 * time.Second, 10*time.Minute + 40*time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testkit.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			origin := clk.Now()
			var mu sync.Mutex
			var calls []time.Duration // when the provider was called while down
			c := NewCache(Name("recovery"), Logger(nil), Clock(clk.Now),
				TokenFunction(func(context.Context) (string, error) {
					now := clk.Now()
					if at := now.Sub(origin); at >= tt.down && at < tt.up {
						mu.Lock()
						calls = append(calls, at)
						mu.Unlock()
						return "", errors.New("idp down")
					}
					return minter.Mint(now, life, nil), nil
				}))
			// barrier waits for a fetch the last call started, if any: the
			// call registered it in the group before it returned, so this
			// joins it (or runs a no-op when there is none).
			barrier := func() { c.flight.Wait(context.Background(), func() (any, error) { return nil, nil }) }

			var dry, served time.Duration = -1, -1 // first failing call; first served call after up
			for at := time.Duration(0); at < tt.up+time.Minute; at += 100 * time.Millisecond {
				clk.Set(origin.Add(at))
				_, err := c.EnsureToken(context.Background())
				barrier()
				switch {
				case err != nil && dry < 0:
					dry = at
				case err == nil && at >= tt.up && served < 0:
					served = at
				}
				if err != nil && at < tt.down {
					t.Fatalf("EnsureToken() at %v, before the outage: %v", at, err)
				}
			}
			if tt.wantNeverDry && dry >= 0 {
				t.Errorf("callers failed from %v, with the provider back at %v and the token live until 59s", dry, tt.up)
			}
			if recovery := served - tt.up; served < 0 || recovery > 2*time.Second {
				t.Errorf("first caller served %v after the provider came back; want within 2s", recovery)
			}
			outage := tt.up - tt.down
			if max := int(outage/time.Second) + 1; len(calls) > max {
				t.Errorf("provider calls during %v of outage = %d; want at most one a second (%d)", outage, len(calls), max)
			}
			t.Logf("outage %v: %d provider calls; callers failing from %v; first served %v after recovery",
				outage, len(calls), dry, served-tt.up)
		})
	}
}

// waitPublished waits until the cache holds a token expiring later than old.
func waitPublished(t *testing.T, c *Cache, old time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.load().expiry.After(old) {
		if time.Now().After(deadline) {
			t.Fatal("the refreshed token was not published within 10s")
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// minter signs the internal tests' tokens; the cache parses them without
// verifying them.
var minter = testkit.NewMinter("jwtcache-internal-test")
