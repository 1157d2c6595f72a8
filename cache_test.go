package jwtcache_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
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

func TestCache_Hit(t *testing.T) {
	c, p, clk := newTestCache(time.Minute)
	first := mustToken(t, c)
	clk.Advance(30 * time.Second)
	if got := mustToken(t, c); got != first {
		t.Errorf("EnsureToken() = new token; want the cached one")
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("token function calls = %d; want 1", got)
	}
}

func TestCache_NoTokenFunction(t *testing.T) {
	tests := []struct {
		name  string
		cache *jwtcache.Cache
	}{
		{"NewCache", jwtcache.NewCache(jwtcache.Name("x"), nil)},
		{"zero Cache", new(jwtcache.Cache)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.cache.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrNoTokenFunction) {
				t.Errorf("EnsureToken() error = %v; want ErrNoTokenFunction", err)
			}
			if _, err := tt.cache.Token(context.Background()); !errors.Is(err, jwtcache.ErrNoTokenFunction) {
				t.Errorf("Token() error = %v; want ErrNoTokenFunction", err)
			}
			tt.cache.Invalidate()
			if tt.cache.InvalidateToken("x") {
				t.Errorf("InvalidateToken() = true on an empty cache")
			}
		})
	}
}

// TestCache_Lifecycle walks a 100-second token through its phases. Its local
// life is 99s (a second off for iat's truncation). The default refresh-ahead
// of 0.25 opens its refresh window a quarter of that life before it expires,
// and the jitter up to a fifth of that quarter later: at 74.25s to 79.2s, so
// that a token is replaced between 0.75 and 0.8 of its local life. The 10s
// headroom is capped at a twentieth of the life, 4.95s: callers wait for a
// fresh token from 94.05s, and the token expires at 99s.
func TestCache_Lifecycle(t *testing.T) {
	const life = 100 * time.Second

	t.Run("fresh until the refresh window", func(t *testing.T) {
		c, p, clk := newTestCache(life)
		first := mustToken(t, c)
		for range 74 { // the window opens at 74.25s at the soonest
			clk.Advance(time.Second)
			if got := mustToken(t, c); got != first {
				t.Fatalf("EnsureToken() at %v = new token; want the first", clk.Now())
			}
		}
		if got := p.calls.Load(); got != 1 {
			t.Errorf("token function calls = %d; want 1", got)
		}
	})

	t.Run("refresh window serves at once and refreshes in the background", func(t *testing.T) {
		c, p, clk := newTestCache(life)
		first := mustToken(t, c)
		gate := make(chan struct{})
		p.setGate(gate)               // the background fetch cannot finish until released
		clk.Advance(80 * time.Second) // the window opens at 74.25s..79.2s of a 99s local life
		for range 100 {
			if got := mustToken(t, c); got != first {
				t.Fatalf("EnsureToken() in the refresh window = new token while the fetch is blocked")
			}
		}
		testkit.Eventually(t, "the background fetch to start", func() bool { return p.calls.Load() == 2 })
		close(gate)
		testkit.Eventually(t, "the refreshed token", func() bool { return mustToken(t, c) != first })
		if got := p.calls.Load(); got != 2 {
			t.Errorf("token function calls = %d; want 2 (one background refresh)", got)
		}
	})

	t.Run("headroom waits for a fresh token", func(t *testing.T) {
		c, p, clk := newTestCache(life, jwtcache.RefreshAhead(jwtcache.Off))
		first := mustToken(t, c)
		clk.Advance(96 * time.Second) // the headroom: the last 4.95s of 99s
		if got := mustToken(t, c); got == first {
			t.Errorf("EnsureToken() in the headroom = old token; want a fresh one")
		}
		if got := p.calls.Load(); got != 2 {
			t.Errorf("token function calls = %d; want 2", got)
		}
	})

	t.Run("headroom keeps the old token when the fetch fails", func(t *testing.T) {
		c, p, clk := newTestCache(life, jwtcache.RefreshAhead(jwtcache.Off))
		first := mustToken(t, c)
		p.setFail(errors.New("idp down"))
		clk.Advance(96 * time.Second) // the headroom: the last 4.95s of 99s
		for range 10 {
			if got := mustToken(t, c); got != first {
				t.Fatalf("EnsureToken() = %q; want the old, still valid token", got)
			}
		}
		if got := p.calls.Load(); got != 2 {
			t.Errorf("token function calls = %d; want 2 (one failed fetch, then backoff)", got)
		}
	})

	t.Run("expired token is never served", func(t *testing.T) {
		c, p, clk := newTestCache(life, jwtcache.RefreshAhead(jwtcache.Off))
		mustToken(t, c)
		p.setFail(errors.New("idp down"))
		clk.Advance(100 * time.Second)
		if tok, err := c.EnsureToken(context.Background()); err == nil || tok != "" {
			t.Fatalf("EnsureToken() after expiry = %q, %v; want an error and no token", tok, err)
		}
	})
}

func TestCache_ShortLifetime(t *testing.T) {
	// A token that lives 4s, under the 10s headroom, is still served: its
	// local expiry is 3s (a second off for iat's truncation), and the
	// headroom is capped at half of that, 1.5s.
	c, p, clk := newTestCache(4*time.Second, jwtcache.RefreshAhead(jwtcache.Off))
	first := mustToken(t, c)
	for range 9 {
		clk.Advance(100 * time.Millisecond)
		if got := mustToken(t, c); got != first {
			t.Fatalf("EnsureToken() at +%v = new token; want the first", clk.Now().Sub(newClock().Now()))
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("token function calls = %d; want 1", got)
	}
}

// TestCache_ClockSkew checks that a provider whose clock is far ahead of or
// behind this host's does not stop tokens from being cached, nor make the
// cache serve them too long.
func TestCache_ClockSkew(t *testing.T) {
	tests := []struct {
		name    string
		skew    time.Duration // provider clock minus local clock
		minLife time.Duration // the least Expiry - now may be
		wantErr error
	}{
		{name: "provider an hour ahead", skew: time.Hour, minLife: 5*time.Minute - time.Second},
		{name: "provider 5s ahead", skew: 5 * time.Second, minLife: 5*time.Minute - time.Second},
		// exp on the local clock is the earlier bound: the lag is lost.
		{name: "provider 5s behind", skew: -5 * time.Second, minLife: 5*time.Minute - 5*time.Second},
		{name: "provider 2m behind", skew: -2 * time.Minute, minLife: 3 * time.Minute},
		// An exp that has passed on the local clock is expired: a lagging
		// clock cannot be told from an expired token.
		{name: "provider an hour behind", skew: -time.Hour, wantErr: jwtcache.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			logger, logs := testkit.NewLogger()
			var calls atomic.Int64
			c := jwtcache.NewCache(
				jwtcache.Clock(clk.Now), jwtcache.Logger(logger), jwtcache.RefreshAhead(jwtcache.Off),
				jwtcache.TokenFunction(func(context.Context) (string, error) {
					calls.Add(1)
					return minter.Mint(clk.Now().Add(tt.skew), 5*time.Minute, nil), nil
				}))
			tok, err := c.Token(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || tok.Value != "" {
					t.Fatalf("Token() = %+v, %v; want %v", tok, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if got := tok.Expiry.Sub(clk.Now()); got < tt.minLife || got > 5*time.Minute {
				t.Errorf("Expiry - now = %v; want %v..5m", got, tt.minLife)
			}
			clk.Advance(tt.minLife - 11*time.Second) // just before the headroom
			mustToken(t, c)
			if got := calls.Load(); got != 1 {
				t.Errorf("token function calls = %d; want 1", got)
			}
			if warned := logs.Count("far from this host's clock") == 1; warned != (tt.skew.Abs() > 30*time.Second) {
				t.Errorf("skew warning logged = %v for a skew of %v", warned, tt.skew)
			}
		})
	}
}

// TestCache_StaleToken covers a token function that returns a token it
// cached itself: the cache must not trust the token's full lifetime, nor ask
// again on every call.
func TestCache_StaleToken(t *testing.T) {
	clk := newClock()
	stale := minter.Mint(clk.Now().Add(-50*time.Second), time.Minute, nil) // 10s left
	var calls atomic.Int64
	c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(context.Context) (string, error) {
			calls.Add(1)
			return stale, nil
		}))
	tok, err := c.Token(context.Background())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	if got, want := tok.Expiry, testkit.Claims(t, stale).Expiration(); tok.Expiry.After(want) {
		t.Errorf("Expiry = %v; want no later than the token's exp %v", got, want)
	}
	for range 50 {
		clk.Advance(100 * time.Millisecond)
		mustToken(t, c)
	}
	if got := calls.Load(); got > 6 {
		t.Errorf("token function calls in 5s = %d; want at most one per backoff second", got)
	}
	clk.Advance(10 * time.Second)
	if _, err := c.EnsureToken(context.Background()); !errors.Is(err, jwtcache.ErrExpired) {
		t.Errorf("EnsureToken() after exp = %v; want ErrExpired", err)
	}
}

func TestCache_BadTokens(t *testing.T) {
	clk := newClock()
	noExp := minter.Mint(clk.Now(), 0, map[string]any{jwt.ExpirationKey: nil})
	expired := minter.Mint(clk.Now(), -time.Second, map[string]any{jwt.IssuedAtKey: nil})
	instant := minter.Mint(clk.Now(), time.Second, nil)
	forged := testkit.NewMinter("impostor").Mint(clk.Now(), time.Hour, map[string]any{jwt.IssuedAtKey: nil})
	verify := jwtcache.ParseOptions(minter.ParseOption())

	tests := []struct {
		name      string
		token     string
		panicWith any
		opts      []jwtcache.Option
		wantErr   error  // nil: the token is passed through
		wantCalls int64  // after three calls
		wantLog   string // a warning that must appear once
	}{
		{name: "empty", token: "", wantErr: jwtcache.ErrEmptyToken, wantCalls: 1},
		{name: "expired on arrival", token: expired, wantErr: jwtcache.ErrExpired, wantCalls: 1},
		{name: "lifetime within iat's truncation", token: instant, wantErr: jwtcache.ErrExpired, wantCalls: 1},
		{name: "panic", panicWith: "boom", wantErr: jwtcache.ErrPanic, wantCalls: 1},
		{name: "no exp", token: noExp, wantCalls: 3, wantLog: "no exp claim"},
		{name: "unparsable", token: "not-a-jwt", wantCalls: 3, wantLog: "does not parse"},
		{name: "unparsable rejected", token: "not-a-jwt", opts: []jwtcache.Option{jwtcache.RejectUnparsable(true)},
			wantErr: jwtcache.ErrUnparsable, wantCalls: 1},
		{name: "bad signature rejected", token: forged, opts: []jwtcache.Option{verify, jwtcache.RejectUnparsable(true)},
			wantErr: jwtcache.ErrUnparsable, wantCalls: 1},
		// Asking for verification makes a token that fails it an error.
		{name: "bad signature without RejectUnparsable", token: forged, opts: []jwtcache.Option{verify},
			wantErr: jwtcache.ErrUnparsable, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			logger, logs := testkit.NewLogger()
			opts := append([]jwtcache.Option{
				jwtcache.Clock(clk.Now), jwtcache.Logger(logger),
				jwtcache.TokenFunction(func(context.Context) (string, error) {
					calls.Add(1)
					if tt.panicWith != nil {
						panic(tt.panicWith)
					}
					return tt.token, nil
				}),
			}, tt.opts...)
			c := jwtcache.NewCache(opts...)
			for i := range 3 {
				got, err := c.EnsureToken(context.Background())
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) || got != "" {
						t.Fatalf("EnsureToken() #%d = %q, %v; want no token and %v", i, got, err, tt.wantErr)
					}
					if i > 0 && !errors.Is(err, jwtcache.ErrBackoff) {
						t.Errorf("EnsureToken() #%d error = %v; want ErrBackoff", i, err)
					}
					continue
				}
				if err != nil || got != tt.token {
					t.Fatalf("EnsureToken() #%d = %q, %v; want the token passed through", i, got, err)
				}
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("token function calls = %d; want %d", got, tt.wantCalls)
			}
			if tt.wantLog != "" {
				if got := logs.Count(tt.wantLog); got != 1 {
					t.Errorf("%q warnings = %d; want 1 (rate-limited)\n%s", tt.wantLog, got, logs)
				}
			}
			if tt.token != "" && strings.Contains(logs.String(), tt.token) {
				t.Errorf("log contains the token:\n%s", logs)
			}
		})
	}
}

// TestCache_SignedTokenDefaultOptions guards against jwx's default of
// refusing tokens it cannot verify: with no ParseOptions, a real signed token
// must be cached.
func TestCache_SignedTokenDefaultOptions(t *testing.T) {
	var calls atomic.Int64
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(context.Context) (string, error) {
		calls.Add(1)
		return minter.Mint(time.Now(), time.Hour, nil), nil
	}))
	for range 3 {
		tok, err := c.Token(context.Background())
		if err != nil || tok.Expiry.IsZero() {
			t.Fatalf("Token() = %+v, %v; want a cached token with an expiry", tok, err)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("token function calls = %d; want 1", got)
	}
}

func TestCache_VerifiedTokenCached(t *testing.T) {
	c, p, _ := newTestCache(time.Hour,
		jwtcache.ParseOptions(minter.ParseOption()), jwtcache.RejectUnparsable(true))
	first := mustToken(t, c)
	if got := mustToken(t, c); got != first || p.calls.Load() != 1 {
		t.Errorf("verified token not cached: calls = %d", p.calls.Load())
	}
}

func TestCache_InvalidateToken(t *testing.T) {
	c, p, _ := newTestCache(time.Hour)
	first := mustToken(t, c)
	var dropped atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if c.InvalidateToken(first) {
				dropped.Add(1)
			}
			if got := mustToken(t, c); got == first {
				t.Error("EnsureToken() after InvalidateToken = the rejected token")
			}
		})
	}
	wg.Wait()
	if got := dropped.Load(); got != 1 {
		t.Errorf("InvalidateToken() = true %d times; want 1", got)
	}
	if got := p.calls.Load(); got != 2 {
		t.Errorf("token function calls = %d; want 2", got)
	}
	c.Invalidate()
	mustToken(t, c)
	if got := p.calls.Load(); got != 3 {
		t.Errorf("token function calls after Invalidate = %d; want 3", got)
	}
}

// TestCache_NeverExpired runs a long randomized simulation: the clock jumps
// forward by random steps, the provider fails at random and answers slowly at
// random, and no call may ever return a token whose exp has passed.
func TestCache_NeverExpired(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	c, p, clk := newTestCache(30*time.Second, jwtcache.Backoff(100*time.Millisecond, 5*time.Second))
	ctx := context.Background()
	var ok, failed int
	for i := range 20000 {
		clk.Advance(time.Duration(rng.IntN(2000)) * time.Millisecond)
		if rng.IntN(10) < 3 {
			p.setFail(errors.New("flaky idp"))
		} else {
			p.setFail(nil)
		}
		tok, err := c.Token(ctx)
		now := clk.Now()
		if err != nil {
			failed++
			continue
		}
		ok++
		if exp := testkit.Claims(t, tok.Value).Expiration(); !now.Before(exp) {
			t.Fatalf("call %d at %v returned a token that expired at %v", i, now, exp)
		}
		if !now.Before(tok.Expiry) {
			t.Fatalf("call %d at %v returned Expiry %v", i, now, tok.Expiry)
		}
	}
	if ok < failed {
		t.Errorf("served %d, failed %d; want mostly served", ok, failed)
	}
}

func TestCache_NothingSecretInErrors(t *testing.T) {
	clk := newClock()
	secret := minter.Mint(clk.Now(), -time.Hour, map[string]any{jwt.IssuedAtKey: nil}) // expired
	for _, tok := range []string{secret, secret[:len(secret)/2], strings.ReplaceAll(secret, ".", "!")} {
		logger, logs := testkit.NewLogger()
		c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(logger), jwtcache.RejectUnparsable(true),
			jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
		_, err := c.EnsureToken(context.Background())
		if err == nil {
			t.Fatalf("EnsureToken() = nil error for a bad token")
		}
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && (strings.Contains(err.Error(), part) || strings.Contains(logs.String(), part)) {
				t.Errorf("error or log reveals the token: %v\n%s", err, logs)
			}
		}
	}
}

// TestOptionBounds: one rule for every option that takes a number: zero is
// the default, Off turns the feature off, and a value that cannot be meant
// is an error wrapping ErrInvalid that names the option and the value,
// returned by every call of the Cache or CacheMap (which fetches nothing) and
// logged once, at construction.
func TestOptionBounds(t *testing.T) {
	tests := []struct {
		opt  jwtcache.MapOption
		want string // in the error; "" for a valid option
	}{
		{jwtcache.Headroom(-time.Second), "Headroom(-1s)"},
		{jwtcache.Headroom(0), ""},
		{jwtcache.Headroom(jwtcache.Off), ""},
		{jwtcache.RefreshAhead(-0.5), "RefreshAhead(-0.5)"},
		{jwtcache.RefreshAhead(0.75), "RefreshAhead(0.75)"},
		{jwtcache.RefreshAhead(math.NaN()), "RefreshAhead(NaN)"},
		{jwtcache.RefreshAhead(0), ""},
		{jwtcache.RefreshAhead(0.5), ""},
		{jwtcache.RefreshAhead(jwtcache.Off), ""},
		{jwtcache.Backoff(-1, time.Second), "Backoff(-1ns, 1s)"},
		{jwtcache.Backoff(time.Second, -1), "Backoff(1s, -1ns)"},
		{jwtcache.Backoff(time.Minute, time.Second), "Backoff(1m0s, 1s)"},
		{jwtcache.Backoff(0, 500*time.Millisecond), "Backoff(0s, 500ms)"},
		{jwtcache.Backoff(0, 0), ""},
		{jwtcache.Backoff(time.Minute, 0), ""},
		{jwtcache.FetchTimeout(-time.Second), "FetchTimeout(-1s)"},
		{jwtcache.FetchTimeout(0), ""},
		{jwtcache.MaxKeys(-2), "MaxKeys(-2)"},
		{jwtcache.MaxKeys(0), ""},
		{jwtcache.MaxKeys(jwtcache.Off), ""},
		{jwtcache.IdleTimeout(-time.Minute), "IdleTimeout(-1m0s)"},
		{jwtcache.IdleTimeout(0), ""},
		{jwtcache.IdleTimeout(jwtcache.Off), ""},
		{jwtcache.MapHeadroom(-time.Second), "Headroom(-1s)"},
	}
	for _, tt := range tests {
		name := tt.want
		if name == "" {
			name = fmt.Sprintf("valid %T %v", tt.opt, tt.opt)
		}
		t.Run(name, func(t *testing.T) {
			logger, logs := testkit.NewLogger()
			var calls atomic.Int64
			tf := func(context.Context, string) (string, error) {
				calls.Add(1)
				return minter.Mint(time.Now(), time.Hour, nil), nil
			}
			m := jwtcache.NewCacheMap(jwtcache.Logger(logger), jwtcache.MapTokenFunction(tf), tt.opt)
			_, err := m.EnsureToken(context.Background(), "acme")
			if o, ok := tt.opt.(jwtcache.Option); ok {
				c := jwtcache.NewCache(jwtcache.Logger(logger), jwtcache.TokenFunction(func(ctx context.Context) (string, error) { return tf(ctx, "") }), o)
				if _, cerr := c.EnsureToken(context.Background()); (cerr == nil) != (err == nil) {
					t.Errorf("Cache: EnsureToken() error = %v; the map's is %v", cerr, err)
				}
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("EnsureToken() error = %v; want none", err)
				}
				return
			}
			if !errors.Is(err, jwtcache.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("EnsureToken() error = %v; want ErrInvalid naming %s", err, tt.want)
			}
			if calls.Load() != 0 {
				t.Errorf("token function called %d times; want none", calls.Load())
			}
			want := 1 // the map's
			if _, ok := tt.opt.(jwtcache.Option); ok {
				want++ // and the Cache's
			}
			if got := logs.Count(tt.want); got != want {
				t.Errorf("construction logged the error %d times; want %d, once each:\n%s", got, want, logs)
			}
		})
	}
}

// TestCache_Off: Off turns headroom and refresh-ahead off: a token is served
// until it expires, and refetched only then.
func TestCache_Off(t *testing.T) {
	c, p, clk := newTestCache(time.Minute, jwtcache.Headroom(jwtcache.Off), jwtcache.RefreshAhead(jwtcache.Off))
	first := mustToken(t, c)
	clk.Advance(58 * time.Second) // no headroom, no refresh-ahead: still served
	if got := mustToken(t, c); got != first || p.calls.Load() != 1 {
		t.Errorf("token refetched with headroom and refresh-ahead off")
	}
}

func TestCache_LogsFetch(t *testing.T) {
	logger, logs := testkit.NewLogger()
	c, _, _ := newTestCache(time.Hour, jwtcache.Logger(logger), jwtcache.Name("billing"))
	tok := mustToken(t, c)
	if got := logs.Count("token fetched"); got != 1 {
		t.Fatalf("fetch records = %d; want 1\n%s", got, logs)
	}
	if !strings.Contains(logs.String(), "cache=billing") || !strings.Contains(logs.String(), "token=jti:") {
		t.Errorf("fetch record lacks cache name or token id:\n%s", logs)
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("log contains the token")
	}
}

// TestCache_InvalidateDuringFetch checks that a fetch that began before an
// invalidation does not put its token back in the cache.
func TestCache_InvalidateDuringFetch(t *testing.T) {
	c, p, clk := newTestCache(100 * time.Second)
	first := mustToken(t, c)
	gate := make(chan struct{})
	p.setGate(gate)
	clk.Advance(80 * time.Second) // the refresh window: a background fetch starts
	mustToken(t, c)
	testkit.Eventually(t, "the background fetch to start", func() bool { return p.calls.Load() == 2 })
	c.Invalidate() // say, the credentials were rotated
	p.setGate(nil)
	close(gate)
	second := mustToken(t, c) // joins the fetch that began before Invalidate
	third := mustToken(t, c)  // fetches anew
	if second == first || third == second {
		t.Errorf("tokens after Invalidate: same as before = %v, cached from the old fetch = %v", second == first, third == second)
	}
	if got := p.calls.Load(); got != 3 {
		t.Errorf("token function calls = %d; want 3", got)
	}
}

func TestCache_ValidatingParseOptions(t *testing.T) {
	clk := newClock()
	tests := []struct {
		name    string
		claims  map[string]any
		wantErr error
	}{
		{"issuer matches, provider clock an hour ahead", map[string]any{
			jwt.IssuerKey: "idp", jwt.IssuedAtKey: clk.Now().Add(time.Hour), jwt.ExpirationKey: clk.Now().Add(2 * time.Hour)}, nil},
		{"issuer differs", map[string]any{
			jwt.IssuerKey: "impostor", jwt.IssuedAtKey: clk.Now(), jwt.ExpirationKey: clk.Now().Add(time.Hour)}, jwtcache.ErrUnparsable},
		{"expired, issuer matches", map[string]any{
			jwt.IssuerKey: "idp", jwt.IssuedAtKey: nil, jwt.ExpirationKey: clk.Now().Add(-time.Second)}, jwtcache.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := minter.Mint(clk.Now(), 0, tt.claims)
			var calls atomic.Int64
			c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
				jwtcache.ParseOptions(nil, minter.ParseOption(), jwt.WithIssuer("idp")),
				jwtcache.TokenFunction(func(context.Context) (string, error) { calls.Add(1); return tok, nil }))
			for range 2 {
				got, err := c.EnsureToken(context.Background())
				if tt.wantErr == nil && (err != nil || got != tok) {
					t.Fatalf("EnsureToken() = %q, %v; want the token", got, err)
				}
				if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || got != "") {
					t.Fatalf("EnsureToken() = %q, %v; want %v", got, err, tt.wantErr)
				}
			}
			if got := calls.Load(); got != 1 {
				t.Errorf("token function calls = %d; want 1", got)
			}
		})
	}
}

// TestCache_ParserErrorsRedacted checks that claim values jwx quotes in its
// errors do not reach the cache's errors or logs.
func TestCache_ParserErrorsRedacted(t *testing.T) {
	const secret = "SECRETSECRETSECRET"
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc([]byte(`{"exp":"`+secret+`"}`)) + "." + enc([]byte("sig"))
	for _, reject := range []bool{false, true} {
		logger, logs := testkit.NewLogger()
		c := jwtcache.NewCache(jwtcache.Logger(logger), jwtcache.RejectUnparsable(reject),
			jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
		_, err := c.EnsureToken(context.Background())
		if (err != nil) != reject {
			t.Fatalf("RejectUnparsable(%v): EnsureToken() error = %v", reject, err)
		}
		if (err != nil && strings.Contains(err.Error(), secret)) || strings.Contains(logs.String(), secret) {
			t.Errorf("RejectUnparsable(%v): a claim value leaked: %v\n%s", reject, err, logs)
		}
	}
}

// TestCache_InvalidateEmptyDuringFetch invalidates a cache that holds no
// token while its first fetch runs: the fetch serves its caller, but its
// token is not cached (a certificate rotated under it, say).
func TestCache_InvalidateEmptyDuringFetch(t *testing.T) {
	c, p, _ := newTestCache(time.Hour)
	gate := make(chan struct{})
	p.setGate(gate)
	done := make(chan error, 1)
	go func() { _, err := c.EnsureToken(context.Background()); done <- err }()
	testkit.Eventually(t, "the fetch to start", func() bool { return p.calls.Load() == 1 })
	c.Invalidate()
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("EnsureToken() during the invalidated fetch: %v", err)
	}
	p.setGate(nil)
	mustToken(t, c)
	if got := p.calls.Load(); got != 2 {
		t.Errorf("token function calls = %d; want 2 (the invalidated fetch's token not cached)", got)
	}
}

// TestCache_RejectionBackoff: a server that refuses every token as it arrives
// makes the cache back off, not fetch one per request; a token revoked later
// in its life is replaced at once.
func TestCache_RejectionBackoff(t *testing.T) {
	clk := newClock()
	var fetches, returned atomic.Int64
	c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil), jwtcache.Backoff(time.Second, time.Second),
		jwtcache.TokenFunction(func(context.Context) (string, error) {
			fetches.Add(1)
			defer returned.Add(1)
			return minter.Mint(clk.Now(), time.Hour, nil), nil
		}))
	ctx := context.Background()
	tok := mustToken(t, c)

	// The first rejection of a token just fetched: replaced at once.
	c.InvalidateToken(tok)
	next := mustToken(t, c)
	if fetches.Load() != 2 || next == tok {
		t.Fatalf("after one rejection: %d fetches; want 2", fetches.Load())
	}
	// The second in a row: the cache backs off, and serves the token
	// meanwhile (other servers may take it).
	c.InvalidateToken(next)
	if got, err := c.EnsureToken(ctx); err != nil || got != next || fetches.Load() != 2 {
		t.Fatalf("after two rejections in a row: %v, %d fetches; want the token kept, no fetch", err, fetches.Load())
	}
	if c.InvalidateToken(next) {
		t.Error("InvalidateToken of the token kept in the backoff reported a drop")
	}

	// A server that refuses every token for a minute, a call every 100ms,
	// each token rejected on its first use: every call is served, and the
	// token is replaced once per backoff (here exactly 1s: Backoff(1s, 1s)),
	// in the background; each step waits for the fetch it must have started.
	start, keptAt := fetches.Load(), clk.Now()
	for range 600 {
		clk.Advance(100 * time.Millisecond)
		want := returned.Load() + 1
		tok, err := c.EnsureToken(ctx)
		if err != nil {
			t.Fatalf("EnsureToken() while a server rejects every token: %v; want a token", err)
		}
		if !clk.Now().Before(keptAt.Add(time.Second)) {
			// Each poll calls again: the call above may have come while
			// the fetch before was still ending, and started none.
			testkit.Eventually(t, "the refresh after the backoff", func() bool {
				c.EnsureToken(ctx)
				return returned.Load() >= want
			})
			old := tok
			testkit.Eventually(t, "the new token", func() bool {
				tok, err = c.EnsureToken(ctx)
				return err == nil && tok != old
			})
		}
		if c.InvalidateToken(tok) {
			keptAt = clk.Now()
		}
	}
	n := fetches.Load() - start
	t.Logf("%d fetches in a minute of a server refusing every token", n)
	if n < 50 || n > 61 {
		t.Errorf("%d fetches in a minute of rejections; want 50-60 (one per backoff of 1s, on a 100ms step)", n)
	}

	// A token that lived past the window and is then revoked is replaced
	// at once, and ends the streak: the next rejection of a young token is a
	// first again. Past the backoff, the kept token is replaced in the
	// background: the test waits for its successor, and revokes that.
	kept := mustToken(t, c) // the loop's last token, kept in its backoff
	clk.Advance(3 * time.Second)
	testkit.Eventually(t, "the kept token's successor", func() bool {
		got, err := c.EnsureToken(ctx)
		tok = got
		return err == nil && got != kept
	})
	clk.Advance(11 * time.Second)
	if !c.InvalidateToken(tok) {
		t.Fatal("InvalidateToken of a token revoked late in its life reported no drop")
	}
	tok = mustToken(t, c)
	if !c.InvalidateToken(tok) {
		t.Fatal("InvalidateToken of the revoked token's successor reported no drop")
	}
	if got, err := c.EnsureToken(ctx); err != nil || got == tok {
		t.Errorf("a young rejection after a revocation: %v; want a new token at once", err)
	}

	// Invalidate, which is no server's rejection, does not count, nor
	// end a streak: after one young rejection and five Invalidates, the
	// next young rejection is the second in a row.
	for range 5 {
		c.Invalidate()
		if _, err := c.EnsureToken(ctx); err != nil {
			t.Fatalf("EnsureToken() after Invalidate: %v", err)
		}
	}
	before := fetches.Load()
	tok = mustToken(t, c)
	c.InvalidateToken(tok)
	if got := mustToken(t, c); got != tok || fetches.Load() != before {
		t.Errorf("a young rejection after Invalidates: %d fetches; want the second in a row, kept", fetches.Load()-before)
	}
}

// TestCache_RejectionStreakEnds: a token that lives until its refresh ends a
// streak of young rejections, and the window is a quarter of a short life.
func TestCache_RejectionStreakEnds(t *testing.T) {
	clk := newClock()
	life := time.Hour
	var fetches atomic.Int64
	c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(context.Context) (string, error) {
			fetches.Add(1)
			return minter.Mint(clk.Now(), life, nil), nil
		}))
	c.InvalidateToken(mustToken(t, c)) // the first young rejection
	for range 5 {                      // good tokens, each replaced at its refresh
		old := mustToken(t, c)
		clk.Advance(50 * time.Minute)
		mustToken(t, c)
		testkit.Eventually(t, "the refresh", func() bool {
			tok, err := c.EnsureToken(context.Background())
			return err == nil && tok != old
		})
	}
	before := fetches.Load()
	tok := mustToken(t, c)
	c.InvalidateToken(tok)
	if next := mustToken(t, c); next == tok || fetches.Load() != before+1 {
		t.Errorf("a young rejection after good tokens: kept %v; want the first of a new streak, replaced at once", next == tok)
	}

	// A 20s token: rejected 6s into its life, past a quarter of it, it is
	// no young rejection.
	life = 20 * time.Second
	c2 := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
		jwtcache.TokenFunction(func(context.Context) (string, error) { return minter.Mint(clk.Now(), life, nil), nil }))
	for range 3 {
		tok := mustToken(t, c2)
		clk.Advance(6 * time.Second)
		c2.InvalidateToken(tok)
		if next := mustToken(t, c2); next == tok {
			t.Fatal("a 20s token rejected 6s into its life counted as rejected young")
		}
	}
}
