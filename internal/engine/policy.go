package engine

import (
	"fmt"
	"time"
)

// maxHeadroomShare bounds the headroom: at most a twentieth of a value's
// local life, so that a short-lived token is not replaced long before it
// must be.
const maxHeadroomShare = 20

// Schedule returns when a value that expires at expiry, with local life life
// (from its fetch's start to expiry), enters its refresh window and its
// headroom. The headroom is the smaller of headroom and life/20. The refresh
// window opens fraction·life before expiry, less up to a fifth of that by the
// jitter u in [0, 1), and ends where the headroom begins (it is empty if the
// headroom is longer). So with fraction 0.25 (the default of both a Cache and
// a KeySet), a value is refreshed no earlier than 0.75 of its local life,
// whatever its lifetime, and a window of at least 0.15 of its life leaves a
// slow fetch time to finish before any caller waits. Both instants may lie
// before now for a value that arrives late in its life.
func Schedule(expiry time.Time, life, headroom time.Duration, fraction, u float64) (refreshAt, waitAt time.Time) {
	life = max(life, 0) // a clock that stepped back mid-fetch
	headroom = min(headroom, life/maxHeadroomShare)
	waitAt = expiry.Add(-headroom)
	lead := time.Duration(float64(life) * fraction * (1 - u/5))
	return expiry.Add(-max(lead, headroom)), waitAt
}

// RetryDelay returns how long a source is left alone after its nth
// consecutive failed fetch; left is what the value held has left to be
// served (zero or less: there is none), lo and hi are the backoff's bounds,
// and u in [0, 1) draws the jitter. The policy:
//
//	state               delay after the nth failure
//	no live value       uniform in [lo, min(2·lo, hi)]: 1-2s by default
//	a live value        uniform in [lo, min(hi, lo·2ⁿ⁻¹)], at most left/2, at least lo
//
// Without a value, callers are failing: the source is asked again every 1-2
// seconds, so that one that answers again serves them within 2 seconds, and
// it never sees more than one call a second. With a live value, callers are
// served, so the delay grows (full jitter with a floor), but it is at most
// half of what the value has left, so that the next try comes before it
// expires (if it has at least 2·lo left): a source that has recovered does
// not find the cache dry.
func RetryDelay(n int, left, lo, hi time.Duration, u float64) time.Duration {
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

// Failure is the state of a source that failed: it outlives the value it was
// recorded beside, in the immutable state an instance publishes.
type Failure struct {
	Err      error     // the last fetch error; nil after a success
	Failures int32     // consecutive failed fetches
	RetryAt  time.Time // no fetch before then
}

// Failed returns f after one more failure, err, at now: the next fetch waits
// [RetryDelay], never less than a backoff already under way. left is what
// the value held has left to be served.
func (f Failure) Failed(err error, now time.Time, left, lo, hi time.Duration, u float64) Failure {
	f.Err = err
	f.Failures++
	f.RetryAt = maxTime(f.RetryAt, now.Add(RetryDelay(int(f.Failures), left, lo, hi, u)))
	return f
}

// Waiting reports whether no fetch may start at now (after a failure, or
// because none would bring a fresher value).
func (f Failure) Waiting(now time.Time) bool { return now.Before(f.RetryAt) }

// Throttled reports whether a caller with nothing to serve gets the last
// error at now instead of a fetch.
func (f Failure) Throttled(now time.Time) bool { return f.Err != nil && f.Waiting(now) }

// BackoffError is the error of a caller with nothing to serve while
// throttled at now; sentinel is what it wraps besides the last error.
func (f Failure) BackoffError(sentinel error, now time.Time) error {
	retry := f.RetryAt.Sub(now).Round(time.Millisecond)
	if f.Failures <= 1 {
		return fmt.Errorf("%w (retry in %s): %w", sentinel, retry, f.Err)
	}
	return fmt.Errorf("%w (%d failures in a row, retry in %s): %w", sentinel, f.Failures, retry, f.Err)
}

// maxTime returns the later of a and b.
func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Phase is where a value stands in its life at an instant.
type Phase int

const (
	// Fresh: served at once, nothing due.
	Fresh Phase = iota
	// Due: served at once, and its successor is fetched in the background
	// (the refresh window, or the headroom while the source fails).
	Due
	// Waiting: callers wait for its successor, and are served it only if
	// the fetch fails (the headroom; a key set's stale window).
	Waiting
	// Dry: nothing to serve; callers wait for a fetch, or get the last error
	// while the source is backed off.
	Dry
)

// Plan is the one rule for serving while a value is valid: where a value
// stands at now, given whether it is fresh (its refresh is not due yet), when
// callers start to wait for its successor (waitAt), when it stops being
// served (expiry; zero for no value), and its source's failure state. While
// the source fails, a live value is served without waiting, whatever its
// phase. A Due value's refresh starts only when no backoff holds (see
// [Failure.Waiting]).
func Plan(now time.Time, fresh bool, waitAt, expiry time.Time, f Failure) Phase {
	switch {
	case !now.Before(expiry):
		return Dry
	case fresh:
		return Fresh
	case now.Before(waitAt) || f.Err != nil || f.Waiting(now):
		return Due
	default:
		return Waiting
	}
}
