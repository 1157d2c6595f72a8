package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Flight runs one fetch at a time, however many callers need one: the first
// starts it, the rest join it, and each waits for it or for its own context,
// whichever ends first. The zero Flight is ready to use; a Flight must not be
// copied.
type Flight struct {
	group singleflight.Group
	// running is true while a fetch runs: set before the fetch looks at the
	// state, cleared after it has published its outcome, so that a caller
	// that finds it false finds that outcome. It only spares callers a trip
	// through group, which is what deduplicates.
	running atomic.Bool
}

// flightKey is the only key of a Flight's group.
const flightKey = "fetch"

// Running reports whether a fetch runs.
func (f *Flight) Running() bool { return f.running.Load() }

// Start starts fn as the fetch, unless one runs, and returns at once: a
// background refresh. fn runs on a goroutine of its own.
func (f *Flight) Start(fn func() (any, error)) {
	f.group.DoChan(flightKey, f.run(fn))
}

// Wait joins the fetch in flight, or starts fn as the fetch, and waits for it
// or for ctx. When ctx ends first, Wait returns ctx.Err() and the fetch goes
// on for the others.
func (f *Flight) Wait(ctx context.Context, fn func() (any, error)) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case r := <-f.group.DoChan(flightKey, f.run(fn)):
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run wraps fn so that running is true while it runs.
func (f *Flight) run(fn func() (any, error)) func() (any, error) {
	return func() (any, error) {
		f.running.Store(true)
		defer f.running.Store(false)
		return fn()
	}
}

// Detach returns the context of a fetch started by a caller with ctx: it
// keeps ctx's values (a trace, a claims challenge) but not its cancellation,
// since the fetch serves every caller that joins it, and it ends after
// timeout. It is the one context of everything the fetch does.
func Detach(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// Protect runs fn and returns what it returns; a panic in fn comes back as
// the error panicErr makes of it. A fetch must not panic: its group would
// re-panic on a goroutine of its own and take the process down.
func Protect[T any](fn func() (T, error), panicErr func(v any) error) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, panicErr(r)
		}
	}()
	return fn()
}

// ErrAbandoned is what [Call] wraps when it gave up on a call that did not
// return before its context ended.
var ErrAbandoned = errors.New("no answer before the context ended")

// ErrStillRunning is what [Call] returns while a call it gave up on has not
// returned: no new call starts, so that a source that hangs cannot pile up
// goroutines.
var ErrStillRunning = errors.New("a call that timed out has not returned yet")

// Guard counts the calls [Call] gave up on that are still running. The zero
// Guard is ready to use.
type Guard struct {
	abandoned atomic.Int32
}

// Call runs fn(ctx) on a goroutine of its own and returns its result, or
// gives up when ctx ends even if fn ignores it: then fn is left to finish on
// its own, Call returns an error wrapping [ErrAbandoned] and ctx.Err(), and
// until fn returns, every Call on g returns [ErrStillRunning] without calling
// its fn. A panic in fn comes back as the error panicErr makes of it.
func Call[T any](ctx context.Context, g *Guard, fn func(context.Context) (T, error), panicErr func(v any) error) (T, error) {
	var zero T
	if g.abandoned.Load() > 0 {
		return zero, ErrStillRunning
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	// state goes from running to returned or to abandoned, whichever of the
	// call and ctx's end comes first.
	const running, returned, abandoned = 0, 1, 2
	var state atomic.Int32
	go func() {
		defer func() {
			if !state.CompareAndSwap(running, returned) {
				g.abandoned.Add(-1)
			}
		}()
		v, err := Protect(func() (T, error) { return fn(ctx) }, panicErr)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		if !state.CompareAndSwap(running, abandoned) {
			r := <-done // it returned just now
			return r.v, r.err
		}
		g.abandoned.Add(1)
		return zero, fmt.Errorf("%w: %w", ErrAbandoned, ctx.Err())
	}
}
