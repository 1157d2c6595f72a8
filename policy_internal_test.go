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
// a token's life, and before the cache has a token at all, with four
// concurrent calls every 100ms on a fake clock, and checks the retry policy's
// promises (engine.RetryDelay, with a Backoff from 1s):
//   - while the provider is down, callers are served the token they have
//     until it expires, and get the provider's error once it has: never an
//     expired token, never a wait; with a token to serve, the backoff grows;
//   - the provider sees at most one call a second, however many callers
//     there are (a gap of at least the backoff's 1s floor between two failed
//     calls), and, with no token to serve, at least one every 2s;
//   - one that answers again while the token lives (2s or more before its
//     expiry) finds the cache with a fresh token before the old one expires;
//     one that answers later serves callers within 2s;
//   - its first good token is cached: one call, then none until that token's
//     refresh.
func TestCache_Recovery(t *testing.T) {
	const (
		step    = 100 * time.Millisecond
		callers = 4
	)
	errDown := errors.New("idp down")
	tests := []struct {
		name         string
		life         time.Duration // of the provider's tokens
		down, up     time.Duration // since the first call
		opts         []Option
		wantNeverDry bool
		maxLive      int // if not 0, the most failed calls while the token lives
	}{
		// A one-minute token has 59s of local life, refreshed from 44.25s
		// on: down before that.
		{name: "back within the refresh window", life: time.Minute, down: 40 * time.Second, up: 50 * time.Second, wantNeverDry: true},
		{name: "back 2s before expiry", life: time.Minute, down: 40 * time.Second, up: 57 * time.Second, wantNeverDry: true},
		{name: "back just after expiry", life: time.Minute, down: 40 * time.Second, up: 60 * time.Second},
		{name: "back 20s after expiry", life: time.Minute, down: 40 * time.Second, up: 80 * time.Second},
		{name: "ten minutes down", life: time.Minute, down: 40 * time.Second, up: 10*time.Minute + 40*time.Second},
		// Down through the whole refresh window (from 7m29.25s) and
		// headroom of a 10-minute token, to a minute past its expiry, with
		// a backoff that grows to 5s while the token lives: far fewer
		// calls than one a second.
		{name: "10-minute token, down through its expiry", life: 10 * time.Minute, down: time.Second, up: 11 * time.Minute,
			opts: []Option{Backoff(time.Second, 5*time.Second)}, maxLive: 200},
		// The first fetch fails: callers have nothing to serve.
		{name: "no token yet, back after one failure", life: time.Minute, up: 500 * time.Millisecond},
		{name: "no token yet, ten minutes down", life: time.Minute, up: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := testkit.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
			origin := clk.Now()
			var mu sync.Mutex
			var calls, failed []time.Duration // when the provider was called; when it failed
			c := NewCache(append([]Option{Name("recovery"), Logger(nil), Clock(clk.Now),
				TokenFunction(func(context.Context) (string, error) {
					now := clk.Now()
					at := now.Sub(origin)
					mu.Lock()
					defer mu.Unlock()
					calls = append(calls, at)
					if at >= tt.down && at < tt.up {
						failed = append(failed, at)
						return "", errDown
					}
					return minter.Mint(now, tt.life, nil), nil
				})}, tt.opts...)...)
			// barrier waits for a fetch the last calls started, if any: a
			// call registered it in the group before it returned, so this
			// joins it (or runs a no-op when there is none).
			barrier := func() { c.flight.Wait(context.Background(), func() (any, error) { return nil, nil }) }

			var first string                       // the token held when the provider went down, if any
			var expiry time.Duration = -1          // its local expiry, since the first call
			var dry, served time.Duration = -1, -1 // first failing call; first served call after up
			exps := map[string]time.Time{}         // the exp claims of the tokens served
			for at := time.Duration(0); at < tt.up+time.Minute; at += step {
				clk.Set(origin.Add(at))
				toks, errs := make([]string, callers), make([]error, callers)
				var wg sync.WaitGroup
				for i := range callers {
					wg.Go(func() { toks[i], errs[i] = c.EnsureToken(context.Background()) })
				}
				wg.Wait()
				barrier()
				if at == 0 && tt.down > 0 {
					first, expiry = toks[0], c.load().expiry.Sub(origin)
				}
				for i, err := range errs {
					if err == nil {
						exp, ok := exps[toks[i]]
						if !ok {
							exp = testkit.Claims(t, toks[i]).Expiration()
							exps[toks[i]] = exp
						}
						if !clk.Now().Before(exp) {
							t.Fatalf("EnsureToken() at %v returned a token that expired at %v", at, exp.Sub(origin))
						}
					}
					switch {
					case err != nil && dry < 0:
						dry = at
					case err == nil && at >= tt.up && served < 0:
						served = at
					}
					switch outage, live := at >= tt.down && at < tt.up, expiry >= 0 && at < expiry; {
					case at < tt.down && err != nil:
						t.Fatalf("EnsureToken() at %v, before the outage: %v", at, err)
					case outage && live && (err != nil || toks[i] != first):
						t.Fatalf("EnsureToken() at %v, down, the token live until %v: new token %v, error %v; want the token held",
							at, expiry, toks[i] != first, err)
					case outage && !live && (!errors.Is(err, errDown) || toks[i] != ""):
						t.Fatalf("EnsureToken() at %v, down, no live token = %q, %v; want no token and the provider's error", at, toks[i], err)
					}
				}
			}

			if tt.wantNeverDry && dry >= 0 {
				t.Errorf("callers failed from %v, with the provider back at %v and the token live until %v", dry, tt.up, expiry)
			}
			if recovery := served - tt.up; served < 0 || recovery > 2*time.Second {
				t.Errorf("first caller served %v after the provider came back; want within 2s", recovery)
			}
			for i := 1; i < len(failed); i++ {
				a, b := failed[i-1], failed[i]
				if b-a < time.Second {
					t.Errorf("failed calls at %v and %v; want at least the backoff's 1s between them", a, b)
				}
				if (expiry < 0 || a >= expiry) && b-a > 2*time.Second {
					t.Errorf("failed calls at %v and %v with no token to serve; want at most 2s between them", a, b)
				}
			}
			if live := countBefore(failed, expiry); tt.maxLive > 0 && live > tt.maxLive {
				t.Errorf("provider calls during the outage while the token lived = %d; want at most %d, the backoff growing", live, tt.maxLive)
			}
			outage := tt.up - tt.down
			if most := int(outage/time.Second) + 1; len(failed) > most {
				t.Errorf("provider calls during %v of outage = %d; want at most one a second (%d)", outage, len(failed), most)
			}
			if dryFor := tt.up - max(tt.down, expiry); dryFor > 0 {
				if least := int(dryFor/(2*time.Second)) - 1; len(failed) < least {
					t.Errorf("provider calls during %v of outage with no token = %d; want at least one every 2s (%d)", dryFor, len(failed), least)
				}
			}
			// The first good token is cached until its refresh: 0.75 of
			// its local life at the soonest; the run ends a minute after up.
			var after int
			for _, at := range calls {
				if at >= tt.up && at < tt.up+min(time.Minute, tt.life*7/10) {
					after++
				}
			}
			if after != 1 {
				t.Errorf("provider calls once it answered again = %d before its token's refresh; want 1", after)
			}
			t.Logf("outage %v: %d provider calls; callers failing from %v; first served %v after recovery",
				outage, len(failed), dry, served-tt.up)
		})
	}
}

// countBefore returns how many of ats, in order, are before end.
func countBefore(ats []time.Duration, end time.Duration) int {
	n := 0
	for n < len(ats) && ats[n] < end {
		n++
	}
	return n
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
