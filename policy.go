package jwtcache

import (
	"time"
)

// The pure policy of a Cache: a token's expiry and schedule by its claims,
// and the predicates of its state, as functions of now. When to refresh and
// how long to back off are the engine's (engine.Schedule, engine.RetryDelay),
// shared with verify.KeySet.

// expiryOf returns the instant, on the clock that read start and received,
// from which the token must no longer be handed out, and the token's lifetime.
// start is when the fetch began, received when the token arrived; the claims
// must carry exp.
//
// Without iat, the expiry is exp read on the local clock. With iat, the token
// was issued after the fetch started, so it expires no later than
// start + (exp - iat), whatever the skew between the two hosts' clocks; a
// second comes off because iat is usually truncated to whole seconds. That
// bound is too late for a token issued before the fetch (a token function or
// provider that caches tokens), so where exp on the local clock is earlier,
// the earlier wins. A token whose exp has passed on the local clock is thus
// expired, even if the provider's clock lags this host's: an expired token
// and a lagging clock cannot be told apart, and an expired token is never
// handed out.
func expiryOf(c claims, start, received time.Time) (expiry time.Time, lifetime time.Duration) {
	// exp carries no monotonic reading, so Sub uses the wall clock; Add keeps
	// received's monotonic reading, so the result is immune to clock steps.
	local := received.Add(c.exp.Sub(received))
	if c.iat.IsZero() || !c.exp.After(c.iat) {
		return local, local.Sub(received)
	}
	lifetime = c.exp.Sub(c.iat)
	return minTime(local, start.Add(lifetime-time.Second)), lifetime
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// live reports whether e holds a token that has not expired at now.
func (e *entry) live(now time.Time) bool {
	return e.token != "" && now.Before(e.expiry)
}

// value returns e's token. The monotonic reading is stripped from the expiry,
// so that it compares and prints as a plain wall-clock time.
func (e *entry) value() Token {
	return Token{Value: e.token, Expiry: e.expiry.Round(0), Scope: e.scope}
}

// withoutToken returns a copy of e without its token, with its failure state,
// one generation on.
func (e *entry) withoutToken() *entry {
	return &entry{freshFor: never, gen: e.gen + 1, Failure: e.Failure, rejections: e.rejections}
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
	arrived := c.clock.At(e.arrived)
	return now.Sub(arrived) < min(rejectWindow, e.expiry.Sub(arrived)/4)
}
