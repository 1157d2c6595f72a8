package jwtcache

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
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
	// fetching is true while a fetch runs. It only spares callers in the
	// refresh window a trip through group; group is what deduplicates.
	fetching atomic.Bool
	// lastWarn and lastStoreWarn are the clock's UnixNano at the last
	// rate-limited warning of their kind.
	lastWarn      atomic.Int64
	lastStoreWarn atomic.Int64
	storeErrors   atomic.Int64 // failed store calls
	group         singleflight.Group

	// abandoned counts token function calls still running after the fetch
	// that made them gave up at the timeout; while there is one, no new call
	// starts, so that a hung token function cannot pile up goroutines.
	abandoned atomic.Int32

	// rejected are the tokens dropped as rejected; only with a store.
	rejected *rejects

	// cfg, parser and epoch are written once by NewCache and only read after.
	// epoch is the origin of entry.freshFor; from the real clock, it carries
	// a monotonic reading.
	cfg    config
	parser *parser
	epoch  time.Time

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

	// The failure state outlives the token it was recorded beside.
	err      error     // the last fetch error; nil after a success
	failures int32     // consecutive failed fetches
	retryAt  time.Time // no fetch before then
	// rejections counts the tokens in a row that were rejected young (see
	// rejectedYoung): from the second, the cache backs off before it
	// fetches again, so that a server that refuses every token does not
	// make it fetch one per request.
	rejections int32
}

// fetcher obtains and admits a token for a fetch that began at start, when the
// entry's generation was gen, on the fetch's detached, bounded context.
type fetcher func(ctx context.Context, gen uint64, start time.Time) (Token, error)

// never is the freshFor of an entry without a token.
const never = time.Duration(math.MinInt64)

// flightKey is the only key of a Cache's singleflight group.
const flightKey = "token"

// maxSkew is how far a token's iat may lie from its local arrival time before
// the cache warns of clock skew.
const maxSkew = 30 * time.Second

// NewCache returns a cache configured by opts. It fetches nothing until the
// first call. Out-of-range options are clamped as each option documents; a
// missing [TokenFunction] is reported by every call as [ErrNoTokenFunction].
func NewCache(opts ...Option) *Cache {
	c := &Cache{cfg: newConfig(opts)}
	c.parser = newParser(c.cfg.parseOptions)
	c.epoch = c.cfg.epoch
	if c.epoch.IsZero() {
		c.epoch = c.now()
	}
	if c.cfg.store != nil {
		c.rejected = &rejects{}
	}
	c.entry.Store(&entry{freshFor: never})
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
	if e := c.load(); c.rejected != nil && e.token != "" {
		c.rejected.add(e.token, e.expiry, c.now())
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
func (c *Cache) renew(ctx context.Context, token string) (Token, error) {
	if c.load().token != token {
		return c.Token(ctx)
	}
	t, err := c.wait(ctx, true)
	if err == nil && t.Value == token && !c.load().backingOff(c.now()) {
		// It joined a fetch that found token fresh and returned it (a
		// caller that started one just as the last fetch ended): once more,
		// a forced one.
		t, err = c.wait(ctx, true)
	}
	return t, err
}

// drop drops the cached token if match reports it should, and reports whether
// it did; with a store, it remembers the token as rejected.
func (c *Cache) drop(match func(*entry) bool) bool {
	if e := c.load(); c.rejected != nil && e.token != "" && match(e) {
		// Before the token leaves the entry, so that no fetch in between
		// can adopt it from the store again.
		c.rejected.add(e.token, e.expiry, c.now())
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
		n.err = fmt.Errorf("%w: %d in a row, each within %s of its arrival", ErrRejected, streak, rejectWindow)
		n.failures++
		n.retryAt = maxTime(n.retryAt, now.Add(retryDelay(int(n.failures), 0, c.cfg.backoffMin, c.cfg.backoffMax, rand.Float64())))
		next = &n
		return next
	})
	if dropped != nil && next.rejections >= 2 {
		c.stats.fetchErrors.Add(1)
		c.log(slog.LevelWarn, "jwtcache: the server rejected a token just fetched; backing off", "error", next.err,
			"retry_in", next.retryAt.Sub(now).Round(time.Millisecond))
	}
	return dropped != nil
}

// keptRejected reports whether e's token is one that servers rejected young,
// kept to be served until the rejection backoff ends (see drop): it is never
// fresh, and a second drop of it changes nothing.
func (e *entry) keptRejected() bool {
	return e.token != "" && e.freshFor == never
}

// rejectWindow is how young a token must be, at most, for its rejection to
// count toward the rejection backoff: a server that refuses every token
// refuses it on its first use; one that revokes a token does so later.
const rejectWindow = 10 * time.Second

// rejectedYoung reports whether e's token, dropped at now, was rejected
// young: within rejectWindow of its arrival, or within a quarter of its life
// if that is shorter.
func (c *Cache) rejectedYoung(e *entry, now time.Time) bool {
	arrived := c.epoch.Add(e.arrived)
	return now.Sub(arrived) < min(rejectWindow, e.expiry.Sub(arrived)/4)
}

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// hit is the first step of every call, the Cache's and a CacheMap's: it
// returns the entry if its token is fresh, counted as a hit, and the time since
// the epoch it read to decide, which a CacheMap stamps on the key. A call that
// is not a hit goes on to get.
func (c *Cache) hit() (e *entry, now time.Duration, ok bool) {
	now = c.elapsed()
	if e = c.entry.Load(); e != nil && now < e.freshFor {
		c.countHit(now)
		return e, now, true
	}
	return nil, now, false
}

// elapsed returns the time since the cache's epoch. Without a test clock it
// reads only the monotonic clock (the epoch carries a monotonic reading, so
// time.Since needs no wall clock read) and makes no indirect call.
func (c *Cache) elapsed() time.Duration {
	if c.cfg.clock == nil {
		return time.Since(c.epoch)
	}
	return c.cfg.clock().Sub(c.epoch)
}

// fresh reports whether e's token is fresh at now.
func (c *Cache) fresh(e *entry, now time.Time) bool {
	return now.Sub(c.epoch) < e.freshFor
}

// now reads the cache's clock.
func (c *Cache) now() time.Time {
	if c.cfg.clock != nil {
		return c.cfg.clock()
	}
	return time.Now()
}

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
	if c.cfg.tokenFunc == nil {
		return Token{}, ErrNoTokenFunction // the zero Cache too
	}
	if c.cfg.store != nil && !c.cfg.named {
		return Token{}, ErrNoName
	}
	now := c.now()
	e := c.load()
	if !e.live(now) {
		c.stats.misses.Add(1)
		if e.throttled(now) {
			return Token{}, e.backoffError(now)
		}
		return c.wait(ctx, false)
	}
	if c.fresh(e, now) || now.Sub(c.epoch) < e.waitFor || e.err != nil || e.backingOff(now) {
		// Served at once: fresh (the hit test raced a refresh), in the
		// refresh window, or in the headroom while the provider fails or
		// while no fresher token is to be had. Its successor is fetched in
		// the background if one is due; DoChan runs the fetch on a goroutine
		// of its own.
		c.stats.hits.Add(1)
		if e.err != nil {
			c.stats.servedDuringFailure.Add(1)
		}
		if !c.fresh(e, now) && !e.backingOff(now) && !c.fetching.Load() {
			c.group.DoChan(flightKey, c.fetchFunc(ctx, false))
		}
		return e.value(), nil
	}
	// The headroom, with a provider that answered last time: wait for a
	// fresh token, but if the fetch fails, the old one is still good until
	// it expires.
	c.stats.misses.Add(1)
	t, err := c.wait(ctx, false)
	if err != nil && ctx.Err() == nil {
		if cur := c.load(); cur.live(c.now()) {
			c.stats.servedDuringFailure.Add(1)
			return cur.value(), nil
		}
	}
	return t, err
}

// wait joins the fetch in flight, or starts one (forced: even if the token is
// fresh), and waits for it or for ctx.
func (c *Cache) wait(ctx context.Context, force bool) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	select {
	case r := <-c.group.DoChan(flightKey, c.fetchFunc(ctx, force)):
		if r.Err != nil {
			return Token{}, r.Err
		}
		tok := r.Val.(Token)
		// The fetch checked the token when it arrived; a clock that jumped
		// since (a test clock, a suspended machine) may have outrun it.
		if !tok.Expiry.IsZero() && !c.now().Before(tok.Expiry) {
			return Token{}, fmt.Errorf("%w while the caller waited", ErrExpired)
		}
		return tok, nil
	case <-ctx.Done():
		return Token{}, ctx.Err()
	}
}

// fetchFunc returns the function the singleflight group runs for a fetch
// started by a caller with context ctx.
func (c *Cache) fetchFunc(ctx context.Context, force bool) func() (any, error) {
	return func() (any, error) { return c.fetch(ctx, force) }
}

// fetch obtains a token through the cache's source and publishes the
// outcome. The group runs at most one fetch at a time. The fetch keeps ctx's
// values (a trace, say) but not its cancellation: it serves every caller that
// joins it, not only the first. Its one context, bounded by the fetch timeout,
// is the context of everything it does: store calls as well as the token
// function. A forced fetch runs even if the token is fresh (see renew).
func (c *Cache) fetch(ctx context.Context, force bool) (tok Token, err error) {
	c.fetching.Store(true)
	defer c.fetching.Store(false)

	start := c.now()
	// A caller that looked at the state just before the previous fetch
	// published its outcome gets that outcome, not a fetch of its own.
	e := c.load()
	if e.live(start) && (c.fresh(e, start) && !force || e.backingOff(start)) {
		return e.value(), nil
	} else if e.throttled(start) {
		return Token{}, e.backoffError(start)
	}
	if e.live(start) && (start.Sub(c.epoch) < e.waitFor || e.err != nil) {
		c.stats.refreshesAhead.Add(1) // callers are served meanwhile
	}
	c.stats.fetches.Add(1)

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.fetchTimeout)
	defer cancel()
	defer func() {
		// A panic must not escape: the group would re-panic it on its own
		// goroutine and take the process down.
		if r := recover(); r != nil {
			tok, err = Token{}, fmt.Errorf("%w: %v", ErrPanic, r)
		}
		if err != nil {
			c.fail(err, c.now())
		}
	}()
	return c.obtain(ctx, e.gen, start)
}

// obtain is the fetch's source of a token: the token function, wrapped in
// the store's protocol when there is a store.
func (c *Cache) obtain(ctx context.Context, gen uint64, start time.Time) (Token, error) {
	if c.cfg.store != nil {
		return c.shared(ctx, gen, start, c.issue)
	}
	return c.issue(ctx, gen, start)
}

// issue is the cache's own source: it calls the token function and admits
// what it returns.
func (c *Cache) issue(ctx context.Context, gen uint64, start time.Time) (Token, error) {
	iss, err := c.call(ctx)
	if err != nil {
		return Token{}, err
	}
	return c.admit(iss, gen, start, c.now(), time.Time{})
}

// call runs the token function on ctx, the fetch's context. It gives up when
// ctx ends even if the token function ignores it: the call is left to finish
// on its own goroutine, and the cache, instead of hanging with it, backs off.
// No new call starts until an abandoned one returns.
func (c *Cache) call(ctx context.Context) (Issued, error) {
	if c.abandoned.Load() > 0 {
		return Issued{}, fmt.Errorf("jwtcache: fetch token: the token function has not returned since a call timed out: %w", context.DeadlineExceeded)
	}
	if err := ctx.Err(); err != nil {
		return Issued{}, fmt.Errorf("jwtcache: fetch token: no time left in the fetch timeout (%s): %w", c.cfg.fetchTimeout, err)
	}
	type result struct {
		iss Issued
		err error
	}
	done := make(chan result, 1)
	// state goes from running to returned or to abandoned, whichever of the
	// call and the timeout comes first.
	const running, returned, abandoned = 0, 1, 2
	var state atomic.Int32
	go func() {
		defer func() {
			if !state.CompareAndSwap(running, returned) {
				c.abandoned.Add(-1)
			}
		}()
		defer func() {
			if r := recover(); r != nil {
				done <- result{err: fmt.Errorf("%w: %v", ErrPanic, r)}
			}
		}()
		iss, err := c.cfg.tokenFunc(ctx)
		if err != nil {
			err = fmt.Errorf("jwtcache: fetch token: %w", err)
		}
		done <- result{iss, err}
	}()
	select {
	case r := <-done:
		return r.iss, r.err
	case <-ctx.Done():
		if !state.CompareAndSwap(running, abandoned) {
			r := <-done // it returned just now
			return r.iss, r.err
		}
		c.abandoned.Add(1)
		return Issued{}, fmt.Errorf("jwtcache: fetch token: no answer within the fetch timeout (%s): %w", c.cfg.fetchTimeout, ctx.Err())
	}
}

// admit checks a token that arrived at received from a fetch begun at start
// when the entry's generation was gen, and publishes it if it can be cached.
// A token adopted from a store comes with the expiry the store gave it
// (stored), which bounds the one its claims give.
func (c *Cache) admit(iss Issued, gen uint64, start, received, stored time.Time) (Token, error) {
	raw := iss.Token
	if raw == "" {
		return Token{}, ErrEmptyToken
	}
	if iss.ExpiresIn < 0 {
		return Token{}, fmt.Errorf("%w (a lifetime of %s)", ErrExpired, iss.ExpiresIn)
	}
	cl, err := c.parser.claims(raw)
	var expiry time.Time
	var lifetime time.Duration
	switch {
	case err != nil:
		err = fmt.Errorf("%w: %w", ErrUnparsable, err)
		if c.cfg.rejectUnparsable || c.parser.strict {
			return Token{}, err
		}
		if iss.ExpiresIn == 0 {
			c.passThrough(received, "jwtcache: token does not parse; passed through uncached", "error", err)
			return Token{Value: raw, Scope: iss.Scope}, nil
		}
		// An opaque token, with the lifetime the provider gave it.
	case cl.exp.IsZero():
		if iss.ExpiresIn == 0 {
			c.passThrough(received, "jwtcache: token has no exp claim; passed through uncached",
				"token", tokenID(raw, cl.jti))
			return Token{Value: raw, Scope: iss.Scope}, nil
		}
	default:
		expiry, lifetime = expiryOf(cl, start, received)
	}
	if iss.ExpiresIn > 0 {
		// Measured from the fetch's start: the provider started counting
		// later, so this errs on the early side.
		if given := start.Add(iss.ExpiresIn); expiry.IsZero() || given.Before(expiry) {
			expiry, lifetime = given, iss.ExpiresIn
		}
	}
	if !stored.IsZero() {
		// stored carries no monotonic reading: anchor it to received's.
		expiry = minTime(expiry, received.Add(stored.Sub(received)))
	}
	old := c.load()
	if old.token == raw && old.expiry.Before(expiry) {
		// The token function handed back the token held (it caches tokens
		// itself): it is no younger than when it first arrived.
		expiry = old.expiry
	}
	if !received.Before(expiry) {
		return Token{}, fmt.Errorf("%w (expiry %s)", ErrExpired, expiry.UTC().Format(time.RFC3339))
	}
	id := tokenID(raw, cl.jti)
	if skew := cl.iat.Sub(received); !cl.iat.IsZero() && skew.Abs() > maxSkew {
		c.log(slog.LevelWarn, "jwtcache: token's iat is far from this host's clock; check clock sync, or whether the token function returns cached tokens",
			"token", id, "skew", skew.Round(time.Second))
	}
	// The schedule divides the life the token has left from the fetch's
	// start, not its nominal lifetime: a token that arrives with less (a
	// short-lived one losing a second to iat's truncation, or a stale one) is
	// still fresh for a while after it arrives.
	refreshAt, waitAt := schedule(expiry, expiry.Sub(start), c.cfg.headroom, c.cfg.refreshAhead, rand.Float64())
	// When the token came to be: for a rejection, a token adopted from the
	// store or handed back again is as young as it was when issued.
	arrived := received
	switch {
	case old.token == raw:
		arrived = c.epoch.Add(old.arrived)
	case !stored.IsZero() && !cl.iat.IsZero() && cl.iat.Before(received):
		arrived = received.Add(cl.iat.Sub(received))
	}
	n := &entry{token: raw, scope: iss.Scope, freshFor: refreshAt.Sub(c.epoch), waitFor: waitAt.Sub(c.epoch), expiry: expiry, arrived: arrived.Sub(c.epoch), gen: gen}
	if old.token == raw || !received.Before(refreshAt) {
		// No fresher token is to be had now: the token function returned the
		// one held (it caches tokens itself), or the fetch took so long that
		// the token arrived due for refresh. Do not ask again on every call:
		// wait the backoff floor, or a quarter of the token's remaining life
		// if that is shorter, so that it is still refreshed before it expires.
		n.retryAt = received.Add(min(c.cfg.backoffMin, expiry.Sub(received)/4))
	}
	published := c.update(func(cur *entry) *entry {
		if cur.gen != gen {
			return nil
		}
		// A streak of rejections goes on only while each token replaces
		// one rejected young: a token that lived until its refresh ends it.
		if cur.token == "" || cur.keptRejected() {
			n.rejections = cur.rejections
		}
		return n
	}) == n
	if !published {
		// Invalidated while the fetch ran: the token goes to the callers
		// that waited for it, and the next call fetches again.
		c.log(slog.LevelDebug, "jwtcache: token fetched while the cache was invalidated; not cached", "token", id)
		return n.value(), nil
	}
	c.log(slog.LevelDebug, "jwtcache: token fetched", "token", id,
		"lifetime", lifetime, "expires_in", expiry.Sub(received).Round(time.Millisecond))
	return n.value(), nil
}

// passThrough records that a token was handed out uncached: the cache drops
// what it held (the provider's newest answer wins) and clears its failure
// state, and warns at most once a minute.
func (c *Cache) passThrough(now time.Time, msg string, args ...any) {
	c.update(func(cur *entry) *entry { return &entry{freshFor: never, gen: cur.gen} })
	last := c.lastWarn.Load()
	if last != 0 && now.UnixNano()-last < int64(time.Minute) {
		return
	}
	if c.lastWarn.CompareAndSwap(last, now.UnixNano()) {
		c.log(slog.LevelWarn, msg, args...)
	}
}

// fail records a failed fetch and starts the backoff.
func (c *Cache) fail(err error, now time.Time) {
	c.stats.fetchErrors.Add(1)
	e := c.update(func(e *entry) *entry {
		n := *e
		n.err = err
		n.failures++
		n.retryAt = maxTime(n.retryAt, now.Add(retryDelay(int(n.failures), n.expiry.Sub(now), c.cfg.backoffMin, c.cfg.backoffMax, rand.Float64())))
		return &n
	})
	c.log(slog.LevelWarn, "jwtcache: fetch failed", "error", err,
		"failures", e.failures, "retry_in", e.retryAt.Sub(now).Round(time.Millisecond))
}

// log emits a record that names the cache (and, in a CacheMap, the key)
// first.
func (c *Cache) log(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !c.cfg.logger.Enabled(ctx, level) {
		return
	}
	attrs := []any{"cache", c.cfg.name}
	if c.cfg.key != "" {
		attrs = append(attrs, "key", c.cfg.key)
	}
	c.cfg.logger.Log(ctx, level, msg, append(attrs, args...)...)
}

// retryDelay returns how long a cache waits, after its nth consecutive failed
// fetch, before it calls the token function again; left is what its token has
// left to live (zero or less: it has none), lo and hi are the [Backoff]
// bounds, and u in [0, 1) draws the jitter. The policy:
//
//	state               delay after the nth failure
//	no live token       uniform in [lo, min(2·lo, hi)]: 1-2s by default
//	a live token        uniform in [lo, min(hi, lo·2ⁿ⁻¹)], at most left/2, at least lo
//
// Without a token, callers are failing: the provider is asked again every 1-2
// seconds, so that one that answers again serves them within 2 seconds, and
// it never sees more than one call a second. With a live token, callers are
// served, so the delay grows (full jitter with a floor), but it is at most
// half of what the token has left, so the cache tries again before the token
// expires (if it has at least 2·lo left): a provider that has recovered does
// not find the cache dry.
func retryDelay(n int, left, lo, hi time.Duration, u float64) time.Duration {
	ceil := lo + min(lo, hi-lo) // min(2·lo, hi) without overflowing
	if left > 0 {
		ceil = lo
		for i := 1; i < n && ceil < hi; i++ {
			ceil = min(ceil, hi/2) * 2 // without overflowing
		}
		ceil = min(ceil, hi)
	}
	d := lo + time.Duration(u*float64(ceil-lo))
	if left > 0 {
		d = max(lo, min(d, left/2))
	}
	return d
}

// live reports whether e holds a token that has not expired at now.
func (e *entry) live(now time.Time) bool {
	return e.token != "" && now.Before(e.expiry)
}

// backingOff reports whether no fetch may start at now.
func (e *entry) backingOff(now time.Time) bool {
	return now.Before(e.retryAt)
}

// throttled reports whether a caller without a token gets the last error at
// now instead of a fetch.
func (e *entry) throttled(now time.Time) bool {
	return e.err != nil && e.backingOff(now)
}

// backoffError is the error for a caller without a token during backoff.
func (e *entry) backoffError(now time.Time) error {
	return fmt.Errorf("%w (%d failures, retry in %s): %w",
		ErrBackoff, e.failures, e.retryAt.Sub(now).Round(time.Millisecond), e.err)
}

// value returns e's token. The monotonic reading is stripped from the expiry,
// so that it compares and prints as a plain wall-clock time.
func (e *entry) value() Token {
	return Token{Value: e.token, Expiry: e.expiry.Round(0), Scope: e.scope}
}

// withoutToken returns a copy of e without its token, with its failure state,
// one generation on.
func (e *entry) withoutToken() *entry {
	return &entry{freshFor: never, gen: e.gen + 1, err: e.err, failures: e.failures, retryAt: e.retryAt, rejections: e.rejections}
}
