package jwtcache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// The fault suite: each test drives a cache on the fake clock through a fault
// of its token function or of its clock, and checks the same three things: no
// call returns an expired token, the token function is called a bounded number
// of times however many calls there are, and once the fault is gone the cache
// serves a good token again.

// faultFunc answers the nth call of a token function since the fault was set
// (from 1), at the fake clock's now.
type faultFunc func(ctx context.Context, now time.Time, n int64) (string, error)

// faultProvider is a token function on the fake clock: without a fault, it
// mints a token that lives an hour; with one, it answers as the fault does.
type faultProvider struct {
	clk   *testkit.Clock
	calls atomic.Int64 // every call

	mu sync.Mutex
	// guards fault and n
	fault faultFunc
	n     int64 // calls since fault was set
}

func (p *faultProvider) token(ctx context.Context) (string, error) {
	p.calls.Add(1)
	p.mu.Lock()
	fault := p.fault
	p.n++
	n := p.n
	p.mu.Unlock()
	if fault == nil {
		return minter.Mint(p.clk.Now(), time.Hour, nil), nil
	}
	return fault(ctx, p.clk.Now(), n)
}

// set installs fault; nil removes it.
func (p *faultProvider) set(fault faultFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.n = fault, 0
}

// Backoff bounds of the fault suite: at most one failed call a second.
const (
	faultBackoffMin = time.Second
	faultBackoffMax = 2 * time.Second
)

// newFaultCache returns a cache on a fake clock backed by a faultProvider,
// backing off 1-2s after a failure.
func newFaultCache(t *testing.T, opts ...jwtcache.Option) (*jwtcache.Cache, *faultProvider, *testkit.Clock, *testkit.Buffer) {
	t.Helper()
	clk := newClock()
	p := &faultProvider{clk: clk}
	logger, logs := testkit.NewLogger()
	base := []jwtcache.Option{
		jwtcache.TokenFunction(p.token),
		jwtcache.Clock(clk.Now),
		jwtcache.Logger(logger),
		jwtcache.Backoff(faultBackoffMin, faultBackoffMax),
	}
	return jwtcache.NewCache(append(base, opts...)...), p, clk, logs
}

// expiries remembers the exp claims of the tokens a test has seen, so that a
// 1 MiB token is parsed once, not on every call.
type expiries struct {
	mu sync.Mutex
	// guards exp
	exp map[string]time.Time
}

// check reports, as a non-empty string, what is wrong with a call at now that
// returned tok and err: a token with an error, no token and no error, or a
// token that has expired.
// It may be called from any goroutine.
func (x *expiries) check(now time.Time, tok jwtcache.Token, err error) string {
	if err != nil {
		if tok != (jwtcache.Token{}) {
			return fmt.Sprintf("Token() = a token with error %v; want no token", err)
		}
		return ""
	}
	if tok.Value == "" {
		return "Token() = an empty token and no error"
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.exp == nil {
		x.exp = map[string]time.Time{}
	}
	exp, ok := x.exp[tok.Value]
	if !ok {
		t, err := jwt.ParseString(tok.Value, jwt.WithVerify(false), jwt.WithValidate(false))
		if err != nil {
			return fmt.Sprintf("Token() returned a token that does not parse: %v", err)
		}
		exp = t.Expiration()
		x.exp[tok.Value] = exp
	}
	switch {
	case exp.IsZero():
		return "Token() returned a token without exp"
	case !now.Before(exp):
		return fmt.Sprintf("Token() at %v returned a token that expired at %v", now, exp)
	case !now.Before(tok.Expiry) || tok.Expiry.After(exp):
		return fmt.Sprintf("Token() at %v returned Expiry %v; want after now, no later than exp %v", now, tok.Expiry, exp)
	}
	return ""
}

// recovers checks that, the fault gone, the cache serves a good token (one
// with more than 10 minutes to live, which no fault hands out) once the clock
// has moved on by at most limit, and then serves it from the cache.
func recovers(t *testing.T, c *jwtcache.Cache, p *faultProvider, clk *testkit.Clock, x *expiries, limit time.Duration) {
	t.Helper()
	p.set(nil)
	var tok jwtcache.Token
	var moved time.Duration
	// Polled, because a fetch the fault started may still be landing; each
	// attempt moves the clock on, past a backoff that fetch may have begun.
	testkit.Eventually(t, "a good token once the fault is gone", func() bool {
		if moved >= limit {
			t.Fatalf("no good token within %v of the fault's end; last got %+v", limit, tok)
		}
		clk.Advance(faultBackoffMax)
		moved += faultBackoffMax
		var err error
		tok, err = c.Token(context.Background())
		if msg := x.check(clk.Now(), tok, err); msg != "" {
			t.Fatal(msg)
		}
		return err == nil && tok.Expiry.Sub(clk.Now()) > 10*time.Minute
	})
	calls := p.calls.Load()
	if again, err := c.Token(context.Background()); err != nil || again != tok || p.calls.Load() != calls {
		t.Errorf("Token() after recovery = %+v, %v with %d new calls; want the cached token", again, err, p.calls.Load()-calls)
	}
}

// noLongRecords checks that no log record is longer than 1 KiB: a record that
// quotes a token (a 1 MiB one, say) would be.
func noLongRecords(t *testing.T, logs *testkit.Buffer) {
	t.Helper()
	for _, rec := range logs.Lines() {
		if len(rec) > 1024 {
			t.Errorf("log record of %d bytes; want no token text in logs: %.200s…", len(rec), rec)
		}
	}
}

// TestFaults_TokenFunction runs each fault of the token function for 30
// simulated seconds, with three concurrent callers every 100ms, against a
// cache that holds no token and against one that holds a token with 20
// seconds to live.
func TestFaults_TokenFunction(t *testing.T) {
	errIDP := errors.New("idp down")
	start := newClock().Now()
	pad := strings.Repeat("x", 1<<20)
	huge := minter.Mint(start, time.Hour, map[string]any{"pad": pad})
	garbage := strings.Repeat("A", 1<<20)
	fixed := func(tok string, err error) faultFunc {
		return func(context.Context, time.Time, int64) (string, error) { return tok, err }
	}

	tests := []struct {
		name  string
		fault faultFunc
		opts  []jwtcache.Option
		// wantErr is what every failed call wraps; nil: no call may fail.
		wantErr error
		// orErr is a message a failed call may carry instead, for an error
		// that has no sentinel.
		orErr string
		// maxCalls bounds the token function calls during the fault.
		maxCalls int64
	}{
		{name: "error", fault: fixed("", errIDP), wantErr: errIDP, maxCalls: 31},
		// A call that returns at the timeout may still count as abandoned
		// for an instant, and a fetch in that instant fails without calling
		// the token function (as TokenFunc documents).
		{name: "hangs past the fetch timeout", fault: func(ctx context.Context, _ time.Time, _ int64) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}, opts: []jwtcache.Option{jwtcache.FetchTimeout(5 * time.Millisecond)}, // real time
			wantErr: context.DeadlineExceeded, orErr: "has not returned since a call timed out", maxCalls: 31},
		{name: "panics", fault: func(context.Context, time.Time, int64) (string, error) {
			panic("token function bug")
		}, wantErr: jwtcache.ErrPanic, maxCalls: 31},
		{name: "expired token", fault: func(_ context.Context, now time.Time, _ int64) (string, error) {
			return minter.Mint(now.Add(-2*time.Hour), time.Hour, nil), nil
		}, wantErr: jwtcache.ErrExpired, maxCalls: 31},
		// An hour-long token with 5s left, less than the 10s headroom, on
		// every call: each is served for the first half of what it has
		// left, then replaced.
		{name: "token within the headroom", fault: func(_ context.Context, now time.Time, _ int64) (string, error) {
			return minter.Mint(now.Add(-time.Hour+5*time.Second), time.Hour, nil), nil
		}, maxCalls: 31},
		{name: "empty token", fault: fixed("", nil), wantErr: jwtcache.ErrEmptyToken, maxCalls: 31},
		{name: "1 MiB garbage, rejected", fault: fixed(garbage, nil), opts: []jwtcache.Option{jwtcache.RejectUnparsable(true)},
			wantErr: jwtcache.ErrUnparsable, maxCalls: 31},
		// Valid for an hour: cached, and fetched again by nobody.
		{name: "1 MiB token", fault: fixed(huge, nil), maxCalls: 1},
		{name: "valid token after 3 failures", fault: func(_ context.Context, now time.Time, n int64) (string, error) {
			if n <= 3 {
				return "", errIDP
			}
			return minter.Mint(now, time.Hour, nil), nil
		}, wantErr: errIDP, maxCalls: 4},
	}
	for _, tt := range tests {
		for _, warm := range []bool{false, true} {
			name := tt.name + "/no token"
			if warm {
				name = tt.name + "/token held"
			}
			t.Run(name, func(t *testing.T) {
				c, p, clk, logs := newFaultCache(t, tt.opts...)
				x := &expiries{}
				ctx := context.Background()
				if warm {
					held := minter.Mint(clk.Now(), 20*time.Second, nil)
					p.set(func(context.Context, time.Time, int64) (string, error) { return held, nil })
					if tok, err := c.Token(ctx); err != nil {
						t.Fatalf("Token() before the fault = %+v, %v", tok, err)
					}
				}
				p.set(tt.fault)
				before := p.calls.Load()

				for range 300 {
					clk.Advance(100 * time.Millisecond)
					var wg sync.WaitGroup
					errs := make(chan string, 3)
					for range 3 {
						wg.Go(func() {
							tok, err := c.Token(ctx)
							msg := x.check(clk.Now(), tok, err)
							wanted := tt.wantErr != nil && errors.Is(err, tt.wantErr) ||
								tt.orErr != "" && strings.Contains(fmt.Sprint(err), tt.orErr)
							if msg == "" && err != nil && !wanted {
								msg = fmt.Sprintf("Token() error = %v; want %v", err, tt.wantErr)
							}
							if msg != "" {
								errs <- msg
							}
						})
					}
					wg.Wait()
					close(errs)
					for msg := range errs {
						t.Fatalf("at +%v: %s", clk.Now().Sub(newClock().Now()), msg)
					}
				}
				if got := p.calls.Load() - before; got > tt.maxCalls {
					t.Errorf("token function calls in 30s with 900 callers = %d; want at most %d", got, tt.maxCalls)
				}
				recovers(t, c, p, clk, x, time.Hour)
				noLongRecords(t, logs)
			})
		}
	}
}

// TestFaults_ClockJump moves the clock forward and back, with a good
// provider, and checks that no expired token is served, that a jump back does
// not make the cache fetch, and that a jump past the expiry does. Refresh-ahead
// is off, so that every fetch is made by a call, at the clock's time.
func TestFaults_ClockJump(t *testing.T) {
	const century = 100 * 365 * 24 * time.Hour
	tests := []struct {
		name string
		// jumps move the clock in turn from when the first token was
		// fetched; the cache is called after each.
		jumps    []time.Duration
		maxCalls int64 // including the first fetch
	}{
		{"forward past the expiry", []time.Duration{2 * time.Hour}, 2},
		{"forward a century", []time.Duration{century}, 2},
		{"back an hour, then past the expiry", []time.Duration{-time.Hour, time.Hour, time.Hour + time.Minute}, 2},
		{"back a day, then back to the token's life", []time.Duration{-24 * time.Hour, 24*time.Hour + 30*time.Minute, 40 * time.Minute}, 2},
		{"back a century", []time.Duration{-century, century + 30*time.Minute}, 1},
		// Into the headroom (a fetch), back before the first token was
		// issued, then past both tokens' expiry.
		{"back and forth across the headroom", []time.Duration{59*time.Minute + 55*time.Second, -2 * time.Hour, 3 * time.Hour}, 3},
		{"many small steps back", repeat(-time.Minute, 120), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p, clk, _ := newFaultCache(t, jwtcache.RefreshAhead(jwtcache.Off))
			x := &expiries{}
			ctx := context.Background()
			if _, err := c.Token(ctx); err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			for i, d := range tt.jumps {
				calls := p.calls.Load()
				clk.Advance(d)
				tok, err := c.Token(ctx)
				if msg := x.check(clk.Now(), tok, err); msg != "" {
					t.Fatalf("after jump %d (%v): %s", i, d, msg)
				}
				if err != nil {
					t.Fatalf("after jump %d (%v): Token() error = %v; want a token from a good provider", i, d, err)
				}
				if d < 0 && p.calls.Load() != calls {
					t.Fatalf("after jump %d (%v): token function called; want the cached token", i, d)
				}
			}
			if got := p.calls.Load(); got > tt.maxCalls {
				t.Errorf("token function calls = %d; want at most %d", got, tt.maxCalls)
			}
			recovers(t, c, p, clk, x, time.Hour)
		})
	}
}

// settle waits for a fetch in the background to land: until a call of c at
// the clock's time starts none.
func settle(t *testing.T, c *jwtcache.Cache, calls func() int64) {
	t.Helper()
	testkit.Eventually(t, "the fetches to settle", func() bool {
		n := calls()
		_, _ = c.Token(context.Background())
		return calls() == n
	})
}

func repeat(d time.Duration, n int) []time.Duration {
	s := make([]time.Duration, n)
	for i := range s {
		s[i] = d
	}
	return s
}

// TestFaults_ClockJumpDuringFetch moves the clock while the token function
// runs, as an NTP step in the middle of a slow fetch would.
func TestFaults_ClockJumpDuringFetch(t *testing.T) {
	tests := []struct {
		name    string
		jump    time.Duration // during the first fetch, after the token is minted
		wantErr error         // from the first call
	}{
		{"back a minute", -time.Minute, nil},
		{"back a day", -24 * time.Hour, nil},
		{"forward into the headroom", 59*time.Minute + 55*time.Second, nil},
		{"forward past the expiry", 2 * time.Hour, jwtcache.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p, clk, _ := newFaultCache(t, jwtcache.RefreshAhead(jwtcache.Off))
			p.set(func(_ context.Context, now time.Time, n int64) (string, error) {
				tok := minter.Mint(now, time.Hour, nil)
				if n == 1 {
					clk.Advance(tt.jump)
				}
				return tok, nil
			})
			x := &expiries{}
			tok, err := c.Token(context.Background())
			if msg := x.check(clk.Now(), tok, err); msg != "" {
				t.Fatal(msg)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Token() error = %v; want %v", err, tt.wantErr)
			}
			// An hour of calls, a minute apart: the token minted before
			// the jump is replaced at most once, by a good one.
			for range 60 {
				clk.Advance(time.Minute)
				tok, err := c.Token(context.Background())
				if msg := x.check(clk.Now(), tok, err); msg != "" {
					t.Fatal(msg)
				}
			}
			if got := p.calls.Load(); got > 3 {
				t.Errorf("token function calls = %d; want at most 3", got)
			}
			recovers(t, c, p, clk, x, time.Hour)
		})
	}
}

// TestFaults_ClockBackDuringBackoff steps the clock back while the cache
// backs off after a failure with no token to serve. Callers keep getting the
// failure without a fetch each, and once the clock is back where the backoff
// was to end, the cache must recover. (The clock stays after the cache's
// creation: see TestFaults_ClockBackBeforeCreation.)
func TestFaults_ClockBackDuringBackoff(t *testing.T) {
	errIDP := errors.New("idp down")
	for _, back := range []time.Duration{time.Second, time.Minute, time.Hour} {
		t.Run(fmt.Sprintf("back %v", back), func(t *testing.T) {
			c, p, clk, _ := newFaultCache(t)
			clk.Advance(2 * time.Hour)
			p.set(func(context.Context, time.Time, int64) (string, error) { return "", errIDP })
			x := &expiries{}
			if _, err := c.Token(context.Background()); !errors.Is(err, errIDP) {
				t.Fatalf("Token() error = %v; want %v", err, errIDP)
			}
			clk.Advance(-back)
			for range 10 {
				clk.Advance(100 * time.Millisecond)
				tok, err := c.Token(context.Background())
				if msg := x.check(clk.Now(), tok, err); msg != "" {
					t.Fatal(msg)
				}
				if !errors.Is(err, errIDP) {
					t.Fatalf("Token() error = %v; want %v, from the backoff", err, errIDP)
				}
			}
			if got := p.calls.Load(); got > 2 {
				t.Errorf("token function calls = %d; want at most 2", got)
			}
			clk.Advance(back) // where the backoff ends, or later
			recovers(t, c, p, clk, x, 2*faultBackoffMax)
		})
	}
}

// TestFaults_ClockBackBeforeCreation steps an injected clock back to before
// the cache was made, as a wall clock corrected by NTP right after start-up
// may be. A cache or map with no token to serve must fetch one, not report
// success with an empty token.
func TestFaults_ClockBackBeforeCreation(t *testing.T) {
	tests := []struct {
		name string
		// prepare brings the cache to a state with no token to serve;
		// the clock then steps back an hour.
		prepare func(t *testing.T, c *jwtcache.Cache)
	}{
		{"nothing fetched yet", func(*testing.T, *jwtcache.Cache) {}},
		{"token invalidated", func(t *testing.T, c *jwtcache.Cache) {
			if _, err := c.Token(context.Background()); err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			c.Invalidate()
		}},
	}
	for _, tt := range tests {
		t.Run("Cache, "+tt.name, func(t *testing.T) {
			c, p, clk, _ := newFaultCache(t)
			x := &expiries{}
			tt.prepare(t, c)
			calls := p.calls.Load()
			clk.Advance(-time.Hour)
			tok, err := c.EnsureToken(context.Background())
			if err == nil && tok == "" {
				t.Fatalf(`EnsureToken() = "", nil; want a token or an error`)
			}
			if got := p.calls.Load(); got != calls+1 {
				t.Errorf("token function calls = %d; want %d", got, calls+1)
			}
			recovers(t, c, p, clk, x, time.Hour)
		})
	}
	t.Run("CacheMap, new key", func(t *testing.T) {
		clk := newClock()
		var calls atomic.Int64
		m := jwtcache.NewCacheMap(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
			jwtcache.MapTokenFunction(func(context.Context, string) (string, error) {
				calls.Add(1)
				return minter.Mint(clk.Now(), time.Hour, nil), nil
			}))
		clk.Advance(-time.Hour)
		for range 2 { // a miss, then the key's slot
			tok, err := m.EnsureToken(context.Background(), "tenant")
			if err != nil || tok == "" {
				t.Fatalf("EnsureToken() = %q, %v; want a token", tok, err)
			}
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("token function calls = %d; want 1", got)
		}
	})
}

// pausingHandler is a slog handler that holds up the first record whose
// message contains msg until release is closed: a slow log pipeline, which
// the cache calls from a fetch after the token has arrived.
type pausingHandler struct {
	msg     string
	paused  chan struct{} // closed when the record arrives
	release chan struct{}
	once    sync.Once
}

func (h *pausingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *pausingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *pausingHandler) WithGroup(string) slog.Handler            { return h }

func (h *pausingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.once.Do(func() {
			close(h.paused)
			<-h.release
		})
	}
	return nil
}

// TestFaults_ClockJumpWhileWaiting moves the clock past a token's expiry
// after the fetch has checked the token but before the callers waiting for
// it have it (the fetch is held up in a slow logger). The caller that started
// the fetch, and one that joins it after the jump, must not get the token
// that has since expired.
func TestFaults_ClockJumpWhileWaiting(t *testing.T) {
	h := &pausingHandler{msg: "token fetched", paused: make(chan struct{}), release: make(chan struct{})}
	c, p, clk, _ := newFaultCache(t, jwtcache.Logger(slog.New(h)))
	x := &expiries{}
	type result struct {
		tok jwtcache.Token
		err error
	}
	call := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			tok, err := c.Token(context.Background())
			ch <- result{tok, err}
		}()
		return ch
	}
	starter := call()
	<-h.paused // the token is checked and published; the fetch is logging
	clk.Advance(2 * time.Hour)
	joiner := call() // joins the held-up fetch, or, if late, makes its own
	close(h.release)
	for name, ch := range map[string]<-chan result{"starter": starter, "joiner": joiner} {
		r := <-ch
		if msg := x.check(clk.Now(), r.tok, r.err); msg != "" {
			t.Errorf("%s: %s", name, msg)
		}
	}
	if got := p.calls.Load(); got > 2 {
		t.Errorf("token function calls = %d; want at most 2", got)
	}
	recovers(t, c, p, clk, x, time.Hour)
}

// TestFaults_ClockRandomWalk is a long simulation in which the clock moves
// forward and back by random steps and the provider fails at random: no call
// may return an expired token, and the fetches stay far fewer than the calls.
// Refresh-ahead is off, so that every fetch runs within a call, between two
// steps (TestFaults_ClockJumpWhileWaiting moves the clock during one).
func TestFaults_ClockRandomWalk(t *testing.T) {
	errIDP := errors.New("flaky idp")
	rng := mrand.New(mrand.NewPCG(3, 4))
	c, p, clk, _ := newFaultCache(t, jwtcache.RefreshAhead(jwtcache.Off))
	clk.Advance(time.Hour) // the walk stays after the cache's creation
	var flaky atomic.Bool
	p.set(func(_ context.Context, now time.Time, _ int64) (string, error) {
		if flaky.Load() {
			return "", errIDP
		}
		return minter.Mint(now, 5*time.Minute, nil), nil
	})
	x := &expiries{}
	const calls = 20000
	var served int
	for i := range calls {
		// Mostly forward, a fifth of the steps back: -30s..+60s.
		clk.Advance(time.Duration(rng.IntN(90_000)-30_000) * time.Millisecond)
		flaky.Store(rng.IntN(10) < 3)
		tok, err := c.Token(context.Background())
		if msg := x.check(clk.Now(), tok, err); msg != "" {
			t.Fatalf("call %d: %s", i, msg)
		}
		if err == nil {
			served++
		}
	}
	if got := p.calls.Load(); got > calls/4 {
		t.Errorf("token function calls = %d for %d calls; want at most a quarter", got, calls)
	}
	if served < calls/2 {
		t.Errorf("served %d of %d calls; want most", served, calls)
	}
	recovers(t, c, p, clk, x, time.Hour)
}

// TestFaults_CancellationStorm sends 200 concurrent callers at the cache, a
// share of them with contexts that are cancelled before they call or while
// they wait, at each stage of a token's life. Cancelled callers get the
// cached token or their context's error; the others all get a token; the
// token function is called once however many give up.
func TestFaults_CancellationStorm(t *testing.T) {
	const callers = 200
	tests := []struct {
		name string
		// at is how far into the life of an hour-long cached token the
		// storm comes; negative: the cache holds no token.
		at        time.Duration
		cancelled int  // how many callers have their context cancelled
		early     bool // before they call, rather than while they wait
		deadline  bool // by a deadline in the past, rather than a cancel
		maxCalls  int64
	}{
		{name: "no token, all cancelled before", at: -1, cancelled: callers, early: true, maxCalls: 0},
		{name: "no token, all past their deadline", at: -1, cancelled: callers, early: true, deadline: true, maxCalls: 0},
		{name: "no token, all cancelled while waiting", at: -1, cancelled: callers, maxCalls: 1},
		{name: "no token, half cancelled while waiting", at: -1, cancelled: callers / 2, maxCalls: 1},
		{name: "fresh token, all cancelled before", at: 0, cancelled: callers, early: true, maxCalls: 1},
		{name: "refresh window, all cancelled before", at: 52 * time.Minute, cancelled: callers, early: true, maxCalls: 2},
		{name: "refresh window, half cancelled while waiting", at: 52 * time.Minute, cancelled: callers / 2, maxCalls: 2},
		{name: "headroom, all cancelled before", at: 59*time.Minute + 55*time.Second, cancelled: callers, early: true, maxCalls: 1},
		{name: "headroom, half cancelled while waiting", at: 59*time.Minute + 55*time.Second, cancelled: callers / 2, maxCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p, clk := newTestCache(time.Hour)
			x := &expiries{}
			ctx := context.Background()
			if tt.at >= 0 {
				mustToken(t, c)
				clk.Advance(tt.at)
			}
			gate := make(chan struct{})
			p.setGate(gate) // any fetch waits until the cancellations are done

			contexts := make([]context.Context, callers)
			cancels := make([]context.CancelFunc, callers)
			for i := range contexts {
				if i < tt.cancelled && tt.deadline {
					contexts[i], cancels[i] = context.WithDeadline(ctx, time.Now().Add(-time.Second))
				} else {
					contexts[i], cancels[i] = context.WithCancel(ctx)
				}
				if i < tt.cancelled && tt.early {
					cancels[i]()
				}
			}
			defer func() {
				for _, cancel := range cancels {
					cancel()
				}
			}()

			tokens := make([]jwtcache.Token, callers)
			errs := make([]error, callers)
			var cancelled, others sync.WaitGroup
			for i := range callers {
				wg := &others
				if i < tt.cancelled {
					wg = &cancelled
				}
				wg.Go(func() { tokens[i], errs[i] = c.Token(contexts[i]) })
			}
			for i := range tt.cancelled {
				cancels[i]() // a storm, racing the calls
			}
			cancelled.Wait() // they must not wait for the blocked fetch
			close(gate)
			others.Wait()

			if got := p.calls.Load(); got > tt.maxCalls {
				t.Errorf("token function calls = %d; want at most %d", got, tt.maxCalls)
			}
			now := clk.Now()
			for i := range callers {
				if msg := x.check(now, tokens[i], errs[i]); msg != "" {
					t.Fatalf("caller %d: %s", i, msg)
				}
				if errs[i] == nil {
					continue
				}
				if i >= tt.cancelled {
					t.Fatalf("caller %d, not cancelled: Token() error = %v; want a token", i, errs[i])
				}
				if !errors.Is(errs[i], context.Canceled) && !errors.Is(errs[i], context.DeadlineExceeded) {
					t.Fatalf("caller %d, cancelled: Token() error = %v; want its context's error", i, errs[i])
				}
			}
			// With no token to serve, the callers still waiting all got
			// the one fetch's token.
			for i := tt.cancelled; i < callers && tt.at < 0; i++ {
				if tokens[i] != tokens[tt.cancelled] {
					t.Fatalf("callers not cancelled got different tokens")
				}
			}
			// Settling may fetch once more: a call in the headroom waits for
			// a fetch, and one in an empty cache makes one.
			settle(t, c, p.calls.Load)
			if got, want := p.calls.Load(), tt.maxCalls+1; got > want {
				t.Errorf("token function calls after the storm = %d; want at most %d", got, want)
			}
			calls := p.calls.Load()
			tok, err := c.Token(ctx)
			if msg := x.check(clk.Now(), tok, err); msg != "" || err != nil {
				t.Fatalf("Token() after the storm = %+v, %v %s; want a token", tok, err, msg)
			}
			if p.calls.Load() != calls {
				t.Errorf("Token() after the storm fetched again; want the token the storm's fetch cached")
			}
		})
	}
}
