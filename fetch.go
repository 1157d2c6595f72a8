package jwtcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// fetchFunc returns the function the flight runs for a fetch started by a
// caller with context ctx. Its value is a flown.
func (c *Cache) fetchFunc(ctx context.Context, renewOf string) func() (any, error) {
	return func() (any, error) {
		tok, claims, err := c.fetch(ctx, renewOf)
		return flown{tok, claims}, err
	}
}

// flown is the outcome of a fetch, as the callers that joined it see it.
type flown struct {
	tok Token
	// claims are those of the claims challenge the token was fetched for
	// (see ClaimsChallenge); "" for a fetch without, or one that called no
	// source and returned the token held.
	claims string
}

// fetch obtains a token through the cache's source and publishes the
// outcome. The group runs at most one fetch at a time. The fetch keeps ctx's
// values (a trace, say) but not its cancellation: it serves every caller that
// joins it, not only the first. Its one context, bounded by the fetch timeout,
// is the context of everything it does: store calls as well as the token
// function. A renewal of a token (renewOf, see renew) runs even if the token
// is fresh, unless the cache holds another already, fetched for the same
// claims challenge as the renewal's.
func (c *Cache) fetch(ctx context.Context, renewOf string) (Token, string, error) {
	start := c.now()
	claims, _ := ClaimsChallenge(ctx)
	// A caller that looked at the state just before the previous fetch
	// published its outcome gets that outcome, not a fetch of its own.
	e := c.load()
	renewed := renewOf != "" && e.token != renewOf && e.claims == claimsHash(claims)
	switch {
	case e.live(start) && renewed:
		return e.value(), claims, nil
	case e.live(start) && (c.fresh(e, start) && renewOf == "" || e.Waiting(start)):
		return e.value(), "", nil
	case e.Throttled(start):
		return Token{}, "", e.BackoffError(ErrBackoff, start)
	}
	if e.live(start) && (c.clock.Since(start) < e.waitFor || e.Err != nil) {
		c.stats.refreshesAhead.Add(1) // callers are served meanwhile
	}
	c.stats.fetches.Add(1)

	ctx, cancel := engine.Detach(ctx, c.cfg.fetchTimeout)
	defer cancel()
	a := &attempt{c: c, gen: e.gen, start: start, claims: claimsHash(claims)}
	tok, err := engine.Protect(func() (Token, error) { return c.src.obtain(ctx, a) }, panicError)
	if err != nil {
		c.fail(err, c.now())
	}
	return tok, claims, err
}

// panicError is the error of a fetch that panicked.
func panicError(v any) error { return fmt.Errorf("%w: %v", ErrPanic, v) }

// source is where a Cache's fetches get their tokens: the token function
// ([issuer]), or a layer around it ([shared]), each on the fetch's one
// context, detached from its callers and bounded by the fetch timeout.
type source interface {
	// obtain returns a token for the fetch a, admitted through a.
	obtain(ctx context.Context, a *attempt) (Token, error)
	// rejected records that token, which expires at expiry, was rejected
	// at now (see Cache.InvalidateToken).
	rejected(token string, expiry, now time.Time)
	// storeErrors counts the source's failed store calls.
	storeErrors() uint64
}

// attempt is one fetch, as its source sees it: it calls the token function
// and admits tokens into the cache. It is used by one fetch only.
type attempt struct {
	c      *Cache
	gen    uint64    // the entry's generation when the fetch began
	start  time.Time // when the fetch began
	claims uint32    // claimsHash of the fetch's claims challenge
}

// claimsHash is what an entry keeps of the claims challenge its token was
// fetched for: a 32-bit FNV-1a hash, 0 for none.
func claimsHash(claims string) uint32 {
	if claims == "" {
		return 0
	}
	h := uint32(2166136261)
	for i := range len(claims) {
		h ^= uint32(claims[i])
		h *= 16777619
	}
	return h | 1
}

// issue calls the token function and admits what it returns.
func (a *attempt) issue(ctx context.Context) (Token, error) {
	iss, err := a.c.call(ctx)
	if err != nil {
		return Token{}, err
	}
	return a.c.admit(a, iss, a.c.now(), time.Time{})
}

// admit admits a token that arrived at received (see Cache.admit).
func (a *attempt) admit(iss Issued, received, stored time.Time) (Token, error) {
	return a.c.admit(a, iss, received, stored)
}

// held returns the token the cache holds; "" for none.
func (a *attempt) held() string { return a.c.load().token }

// issuer is the source of a Cache without a store: the token function.
type issuer struct{}

func (issuer) obtain(ctx context.Context, a *attempt) (Token, error) { return a.issue(ctx) }
func (issuer) rejected(string, time.Time, time.Time)                 {}
func (issuer) storeErrors() uint64                                   { return 0 }

// call runs the token function on ctx, the fetch's context. It gives up when
// ctx ends even if the token function ignores it: the call is left to finish
// on its own goroutine, and the cache, instead of hanging with it, backs off.
// No new call starts until an abandoned one returns.
func (c *Cache) call(ctx context.Context) (Issued, error) {
	if err := ctx.Err(); err != nil {
		return Issued{}, fmt.Errorf("jwtcache: fetch token: no time left in the fetch timeout (%s): %w", c.cfg.fetchTimeout, err)
	}
	iss, err := engine.Call(ctx, &c.guard, IssueFunc(c.cfg.tokenFunc), panicError)
	switch {
	case err == nil:
		return iss, nil
	case errors.Is(err, engine.ErrStillRunning):
		return Issued{}, fmt.Errorf("jwtcache: fetch token: the token function has not returned since a call timed out: %w", context.DeadlineExceeded)
	case errors.Is(err, engine.ErrAbandoned):
		return Issued{}, fmt.Errorf("jwtcache: fetch token: no answer within the fetch timeout (%s): %w", c.cfg.fetchTimeout, ctx.Err())
	case errors.Is(err, ErrPanic):
		return Issued{}, err
	}
	return Issued{}, fmt.Errorf("jwtcache: fetch token: %w", err)
}

// admit checks a token that arrived at received from the fetch a, and
// publishes it if it can be cached (unless the cache was invalidated since
// a began).
// A token adopted from a store comes with the expiry the store gave it
// (stored), which bounds the one its claims give.
func (c *Cache) admit(a *attempt, iss Issued, received, stored time.Time) (Token, error) {
	gen, start := a.gen, a.start
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
	refreshAt, waitAt := engine.Schedule(expiry, expiry.Sub(start), c.cfg.headroom, c.cfg.refreshAhead, rand.Float64())
	// When the token came to be: for a rejection, a token adopted from the
	// store or handed back again is as young as it was when issued.
	arrived := received
	switch {
	case old.token == raw:
		arrived = c.clock.At(old.arrived)
	case !stored.IsZero() && !cl.iat.IsZero() && cl.iat.Before(received):
		arrived = received.Add(cl.iat.Sub(received))
	}
	n := &entry{token: raw, scope: iss.Scope, freshFor: c.clock.Since(refreshAt), waitFor: c.clock.Since(waitAt), expiry: expiry, arrived: c.clock.Since(arrived), gen: gen, claims: a.claims}
	if old.token == raw || !received.Before(refreshAt) {
		// No fresher token is to be had now: the token function returned the
		// one held (it caches tokens itself), or the fetch took so long that
		// the token arrived due for refresh. Do not ask again on every call:
		// wait the backoff floor, or a quarter of the token's remaining life
		// if that is shorter, so that it is still refreshed before it expires.
		n.RetryAt = received.Add(min(c.cfg.backoffMin, expiry.Sub(received)/4))
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
	if c.warned.Allow(now, time.Minute) {
		c.log(slog.LevelWarn, msg, args...)
	}
}

// fail records a failed fetch and starts the backoff.
func (c *Cache) fail(err error, now time.Time) {
	c.stats.fetchErrors.Add(1)
	e := c.update(func(e *entry) *entry {
		n := *e
		n.Failure = n.Failed(err, now, n.expiry.Sub(now), c.cfg.backoffMin, c.cfg.backoffMax, rand.Float64())
		return &n
	})
	c.log(slog.LevelWarn, "jwtcache: fetch failed", "error", err,
		"failures", e.Failures, "retry_in", e.RetryAt.Sub(now).Round(time.Millisecond))
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
