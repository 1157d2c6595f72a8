package jwtcache

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// Token is a token together with the instant the cache stops handing it out.
type Token struct {
	// Value is the token as the token function returned it.
	Value string
	// Expiry is when the token expires on this host's clock: its exp claim,
	// corrected for clock skew as described on [Cache], or the lifetime the
	// provider gave ([Issued]), whichever is earlier. It is zero for a token
	// passed through uncached (one with neither).
	Expiry time.Time
	// Scope is the scope the provider said it granted ([Issued]), which may
	// be narrower than the one asked for; "" if it said nothing.
	Scope string
}

// Cache caches one token and fetches the next with its [TokenFunc] ahead of
// expiry. Most callers use [Cache.EnsureToken] and nothing else.
//
// A hit is an atomic load and a clock read, with no lock and no allocation.
// However many callers miss at once, the token function runs once, on a
// context none of them can cancel (see [FetchTimeout]); a caller whose context
// ends returns its error at once, while the fetch goes on for the others. A
// failed fetch starts a [Backoff], during which callers keep the cached token
// while it lives, and callers without one get the last error without a new
// fetch. An expired token is never handed out.
//
// A token's expiry is read from its exp claim (see [ParseOptions] for
// verification). When it also carries iat, the cache knows the token's
// lifetime and that it was issued after the fetch started, so a provider whose
// clock runs ahead of this host's does not extend its use; a provider whose
// clock lags costs the lag, and a token whose exp has passed on this host's
// clock is expired. See [Headroom] and [RefreshAhead] for when a token is
// refreshed. A token without exp is passed through to the caller uncached,
// with a warning logged at most once a minute; so is one that does not parse,
// unless [RejectUnparsable] or [ParseOptions] is set.
//
// Hits read the monotonic clock, which on some systems stops while the machine
// sleeps: after a suspend, a token may be served for as long as the machine
// slept past its expiry, until the server rejects it and the caller drops it
// with [Cache.InvalidateToken].
//
// A Cache needs no Close: it starts no goroutine but those of the fetch it is
// running. The zero Cache has no token function; use [NewCache].
type Cache struct {
	// entry is the current state; it is replaced whole on every change.
	entry atomic.Pointer[entry]
	// flight runs the one fetch at a time.
	flight engine.Flight
	// warned rate-limits the warning of a token passed through uncached.
	warned engine.Every
	// guard keeps a token function that ignores its context from piling up
	// calls (see engine.Call).
	guard engine.Guard

	// cfg, parser, src and clock are written once by NewCache and only read
	// after. src is where fetches get tokens: the token function, or a layer
	// around it (a shared store). clock's epoch is the origin of
	// entry.freshFor.
	cfg    config
	parser *parser
	src    source
	clock  engine.Clock

	// stats come last, behind padding, off the cache lines that hits read.
	stats counters
}

// entry is a snapshot of a Cache's state. It is never modified after it is
// published; every change publishes a copy.
type entry struct {
	// token is "" when the cache holds none; the times below are then zero.
	token string
	scope string // as Issued gave it
	// freshFor is how long after the Cache's epoch calls return token at
	// once: a Duration, not a Time, so that the hit test is one subtraction.
	// It is never for an entry without a token: a clock set back before the
	// epoch reads negative, and must not make an empty entry a hit.
	freshFor time.Duration
	// waitFor is how long after the Cache's epoch calls are served token at
	// once (until the headroom, when they wait for a fresh one); a Duration,
	// as freshFor, to keep the entry small.
	waitFor time.Duration
	expiry  time.Time // from then, token is never handed out
	// arrived is when token arrived, as the time since the Cache's epoch.
	arrived time.Duration

	// gen counts invalidations: a fetch publishes its token only if no
	// invalidation came while it ran.
	gen uint64

	// Failure is the fetch state: it outlives the token it was recorded
	// beside. Its RetryAt is set without an error too, when no fresher
	// token is to be had for a while.
	engine.Failure
	// rejections counts the tokens in a row that were rejected young (see
	// rejectedYoung): from the second, the cache backs off before it
	// fetches again, so that a server that refuses every token does not
	// make it fetch one per request.
	rejections int32
	// claims is the claimsHash of the claims challenge token was fetched
	// for; 0 for none. 32 bits, beside rejections, to keep the entry at
	// 144 bytes: a collision costs a claims challenge one renewal.
	claims uint32
}

// never is the freshFor of an entry without a token.
const never = time.Duration(math.MinInt64)

// maxSkew is how far a token's iat may lie from its local arrival time before
// the cache warns of clock skew.
const maxSkew = 30 * time.Second

// NewCache returns a cache configured by opts. It fetches nothing until the
// first call. Out-of-range options are clamped as each option documents; a
// missing [TokenFunction] is reported by every call as [ErrNoTokenFunction].
func NewCache(opts ...Option) *Cache {
	c := &Cache{cfg: newConfig(opts)}
	c.parser = newParser(c.cfg.parseOptions)
	c.clock = engine.NewClock(c.cfg.clock, c.cfg.epoch)
	c.src = issuer{}
	if c.cfg.store != nil {
		c.src = newShared(&c.cfg, c.parser, c.log)
	}
	c.entry.Store(&entry{freshFor: never})
	if c.cfg.err != nil && c.cfg.key == "" {
		// A CacheMap has said so already, and builds no key's Cache.
		c.log(slog.LevelError, c.cfg.invalidity().Error())
	}
	return c
}

// EnsureToken returns a valid token, from the cache or, when there is none to
// serve, from the token function. Errors from the token function come back
// wrapped, as do [ErrEmptyToken], [ErrExpired], [ErrUnparsable] and [ErrPanic]
// for what it returned; while the cache backs off after such an error, callers
// without a live token get it wrapped in [ErrBackoff]. A cache without a token
// function returns [ErrNoTokenFunction], one with a [SharedStore] and no
// [Name] [ErrNoName]. When ctx ends first, EnsureToken returns ctx.Err().
func (c *Cache) EnsureToken(ctx context.Context) (string, error) {
	if e, _, ok := c.hit(); ok {
		return e.token, nil
	}
	t, err := c.get(ctx)
	return t.Value, err
}

// Token is [Cache.EnsureToken] for callers that also need the token's expiry,
// such as an adapter to another token interface.
func (c *Cache) Token(ctx context.Context) (Token, error) {
	if e, _, ok := c.hit(); ok {
		return e.value(), nil
	}
	return c.get(ctx)
}

// Invalidate drops the cached token, so that the next call fetches a new one;
// a fetch in flight still serves its callers, but does not cache its token.
// A backoff in progress is kept: invalidating does not let a caller bypass it.
// With a [SharedStore], the dropped token is never adopted from the store
// again, and the next fetch deletes it there if the store still holds it.
func (c *Cache) Invalidate() {
	if e := c.load(); e.token != "" {
		c.src.rejected(e.token, e.expiry, c.now())
	}
	// Even without a token: a fetch in flight must not cache what it gets.
	c.update(func(e *entry) *entry { return e.withoutToken() })
}

// InvalidateToken drops the cached token only if it is token, and reports
// whether it did. A caller whose token was rejected (an HTTP 401, say) uses it
// so that a burst of rejections of one token causes one fetch, not one per
// rejection: the first drops the token, the rest find a newer one. It is for
// rejections only: the second token in a row dropped within 10 seconds of its
// arrival (or a quarter of its life) is kept and the cache backs off (see
// [ErrRejected]); [Cache.Invalidate] forces a new token without that. With a
// [SharedStore], token is never adopted from the store again, and the next
// fetch deletes it there if the store still holds it, so that other replicas
// rejected on it adopt this one's replacement instead of fetching their own.
func (c *Cache) InvalidateToken(token string) bool {
	if token == "" {
		return false
	}
	return c.drop(func(e *entry) bool { return e.token == token })
}

// renew fetches a successor of token on ctx (whose values the fetch keeps: a
// claims challenge, say) while token stays cached, fresh, and returns it: if
// the cache still holds token, it waits for a fetch that runs although the
// token is fresh (or joins the fetch under way). A failed fetch leaves token
// cached and backs off, as a failed refresh does: during the backoff, renew
// returns token without a fetch. If the cache holds another token, or none,
// renew returns what a call would.
//
// For a claims challenge (the claims on ctx), renew returns a token fetched
// with those claims: one that joins a fetch without them (a refresh already
// under way) waits for it to end and then fetches with them, so that a burst
// of challenges of one token makes one fetch with the claims.
func (c *Cache) renew(ctx context.Context, token string) (Token, error) {
	claims, _ := ClaimsChallenge(ctx)
	if e := c.load(); e.token != token && (claims == "" || e.claims == claimsHash(claims)) {
		// Replaced since it was sent, by a token fetched as this renewal
		// would fetch it.
		return c.Token(ctx)
	}
	// At most three flights: one under way that did not serve us, one that
	// started between it and ours, and ours.
	var f flown
	var err error
	for range 3 {
		if f, err = c.waitFlown(ctx, token); err != nil || f.claims == claims && f.tok.Value != token {
			return f.tok, err
		}
		if c.load().Waiting(c.now()) {
			// The fetch failed (or found no fresher token to be had):
			// token stays, and so does the backoff.
			return f.tok, nil
		}
		// It joined a fetch without the claims, or one that found token
		// fresh and returned it (a caller that started one just as the last
		// fetch ended): once more, a renewal with them.
	}
	return f.tok, err
}

// drop drops the cached token if match reports it should, and reports whether
// it did; with a store, it remembers the token as rejected.
func (c *Cache) drop(match func(*entry) bool) bool {
	if e := c.load(); e.token != "" && match(e) {
		// Before the token leaves the entry, so that no fetch in between
		// can adopt it from the store again.
		c.src.rejected(e.token, e.expiry, c.now())
	}
	var dropped, next *entry
	now := c.now()
	c.update(func(e *entry) *entry {
		// update may call this again after losing a race: decide afresh.
		dropped = nil
		if e.token == "" || e.keptRejected() || !match(e) {
			return nil
		}
		dropped = e
		var streak int32
		if c.rejectedYoung(e, now) {
			streak = e.rejections + 1
		}
		if streak < 2 {
			next = e.withoutToken()
			next.rejections = streak
			return next
		}
		// A server refuses each new token as it arrives. Another token
		// now would fare no better: keep this one, which other servers
		// may take, served but never fresh, and fetch again after the
		// backoff, as after a failed fetch.
		n := *e
		n.freshFor = never
		n.rejections = streak
		err := fmt.Errorf("%w: %d in a row, each within %s of its arrival", ErrRejected, streak, rejectWindow)
		n.Failure = n.Failed(err, now, 0, c.cfg.backoffMin, c.cfg.backoffMax, rand.Float64())
		next = &n
		return next
	})
	if dropped != nil && next.rejections >= 2 {
		c.stats.fetchErrors.Add(1)
		c.log(slog.LevelWarn, "jwtcache: the server rejected a token just fetched; backing off", "error", next.Err,
			"retry_in", next.RetryAt.Sub(now).Round(time.Millisecond))
	}
	return dropped != nil
}

// hit is the first step of every call, the Cache's and a CacheMap's: it
// returns the entry if its token is fresh, counted as a hit, and the time since
// the epoch it read to decide, which a CacheMap stamps on the key. A call that
// is not a hit goes on to get.
func (c *Cache) hit() (e *entry, now time.Duration, ok bool) {
	if c.clock.Test() {
		now = c.clock.Elapsed()
	} else {
		// time.Since inlined here, not behind Elapsed's call: a hit is
		// the floor and little more.
		now = time.Since(c.clock.Epoch())
	}
	if e = c.entry.Load(); e != nil && now < e.freshFor {
		c.stats.hits.Hit(now, c.clock.Test())
		return e, now, true
	}
	return nil, now, false
}

// fresh reports whether e's token is fresh at now.
func (c *Cache) fresh(e *entry, now time.Time) bool {
	return c.clock.Since(now) < e.freshFor
}

// now reads the cache's clock.
func (c *Cache) now() time.Time { return c.clock.Now() }

// load returns the current entry, never nil.
func (c *Cache) load() *entry {
	if e := c.entry.Load(); e != nil {
		return e
	}
	return &entry{freshFor: never}
}

// update publishes fn's copy of the current entry, retrying if another writer
// got there first. fn returns nil to leave the entry as it is, and may be
// called more than once. update returns the entry it left in place.
func (c *Cache) update(fn func(*entry) *entry) *entry {
	for {
		old := c.entry.Load()
		cur := old
		if cur == nil {
			cur = &entry{freshFor: never}
		}
		next := fn(cur)
		if next == nil {
			return cur
		}
		if c.entry.CompareAndSwap(old, next) {
			return next
		}
	}
}

// get is the path of every call that is not a hit.
func (c *Cache) get(ctx context.Context) (Token, error) {
	if err := c.cfg.invalidity(); err != nil {
		return Token{}, err
	}
	if c.cfg.tokenFunc == nil {
		return Token{}, ErrNoTokenFunction // the zero Cache too
	}
	if c.cfg.store != nil && !c.cfg.named {
		return Token{}, ErrNoName
	}
	now := c.now()
	e := c.load()
	switch engine.Plan(now, c.fresh(e, now), c.clock.At(e.waitFor), e.expiry, e.Failure) {
	case engine.Dry:
		c.stats.misses.Add(1)
		if e.Throttled(now) {
			return Token{}, e.BackoffError(ErrBackoff, now)
		}
		return c.wait(ctx)
	case engine.Fresh, engine.Due:
		// Served at once: fresh (the hit test raced a refresh), in the
		// refresh window, or in the headroom while the provider fails or
		// while no fresher token is to be had. Its successor is fetched in
		// the background if one is due.
		c.stats.hits.Add(1)
		if e.Err != nil {
			c.stats.servedDuringFailure.Add(1)
		}
		if !c.fresh(e, now) && !e.Waiting(now) && !c.flight.Running() {
			c.flight.Start(c.fetchFunc(ctx, ""))
		}
		return e.value(), nil
	}
	// The headroom, with a provider that answered last time: wait for a
	// fresh token, but if the fetch fails, the old one is still good until
	// it expires.
	c.stats.misses.Add(1)
	t, err := c.wait(ctx)
	if err != nil && ctx.Err() == nil {
		if cur := c.load(); cur.live(c.now()) {
			c.stats.servedDuringFailure.Add(1)
			return cur.value(), nil
		}
	}
	return t, err
}

// wait joins the fetch in flight, or starts one, and waits for it or for ctx.
func (c *Cache) wait(ctx context.Context) (Token, error) {
	f, err := c.waitFlown(ctx, "")
	return f.tok, err
}

// waitFlown is wait, with the claims the token was fetched for; a fetch it
// starts renews renewOf if that is not "" (see Cache.fetch).
func (c *Cache) waitFlown(ctx context.Context, renewOf string) (flown, error) {
	v, err := c.flight.Wait(ctx, c.fetchFunc(ctx, renewOf))
	if err != nil {
		return flown{}, err
	}
	f := v.(flown)
	// The fetch checked the token when it arrived; a clock that jumped since
	// (a test clock, a suspended machine) may have outrun it.
	if !f.tok.Expiry.IsZero() && !c.now().Before(f.tok.Expiry) {
		return flown{}, fmt.Errorf("%w while the caller waited", ErrExpired)
	}
	return f, nil
}
