package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// Source is one issuer's metadata document, of type T, on the refresh engine:
// discovered when it is first needed (so that a service starts while its
// provider is down), kept for a TTL, then refreshed in the background while
// callers go on with the document they have. One fetch runs at a time,
// bounded, on a context no caller can cancel. A failed fetch backs off as a
// Cache's does (engine.RetryDelay): without a document, callers get the last
// error, wrapped in [ErrBackoff], for 1-2 seconds at a time, and the provider
// sees one request per delay; with one, they keep it. Every party of one
// issuer (the clients of its tenants, say) can share one Source: the document
// is fetched once for all. A Source is safe for concurrent use.
type Source[T any] struct {
	issuer  string
	hc      *http.Client
	check   func(*T, Endpoints) error
	ttl     time.Duration
	timeout time.Duration
	clock   engine.Clock
	flight  engine.Flight
	// state is replaced whole on every change, and only by fetches, which
	// the flight runs one at a time.
	state atomic.Pointer[state[T]]
}

// state is a Source's state. It is never modified after it is published.
type state[T any] struct {
	doc       *T        // nil before the first document; never modified
	refreshAt time.Time // from then, a call starts a refresh
	engine.Failure
}

// ErrBackoff is wrapped, with the last error, by the error of a call made
// while a Source without a document backs off after a failed fetch.
var ErrBackoff = errors.New("provider: discovery: backing off after a failed fetch")

// Backoff bounds: a Cache's floor, and at most a ttl (or five minutes).
const (
	backoffMin = time.Second
	backoffMax = 5 * time.Minute
)

// NewSource returns the source of issuer's metadata, fetched with hc (see
// [Fetch]) and checked by check (nil: [Endpoints.Check] without a token
// endpoint required), each fetch bounded by timeout, each document kept for
// ttl, on the clock now (nil: the real one). It makes no request. It fails
// for an issuer that is not secure ([CheckIssuer]).
func NewSource[T any](issuer string, hc *http.Client, check func(*T, Endpoints) error, ttl, timeout time.Duration, now func() time.Time) (*Source[T], error) {
	if err := CheckIssuer(issuer); err != nil {
		return nil, err
	}
	if check == nil {
		check = func(_ *T, e Endpoints) error { return e.Check(issuer, false) }
	}
	s := &Source[T]{issuer: issuer, hc: hc, check: check, ttl: ttl, timeout: timeout, clock: engine.NewClock(now, time.Time{})}
	s.state.Store(&state[T]{})
	return s, nil
}

// Issuer returns the issuer identifier the source discovers.
func (s *Source[T]) Issuer() string { return s.issuer }

// Get returns the document: the one held, at once (starting a background
// refresh if its TTL has run out), or, without one, the outcome of a fetch,
// for which it waits as long as ctx allows. The document is shared and must
// not be modified.
func (s *Source[T]) Get(ctx context.Context) (*T, error) {
	st := s.state.Load()
	now := s.clock.Now()
	if st.doc != nil {
		if !now.Before(st.refreshAt) && !st.Waiting(now) && !s.flight.Running() {
			s.flight.Start(s.fetchFunc(ctx))
		}
		return st.doc, nil
	}
	if st.Throttled(now) {
		return nil, st.BackoffError(ErrBackoff, now)
	}
	v, err := s.flight.Wait(ctx, s.fetchFunc(ctx))
	if err != nil {
		return nil, err
	}
	return v.(*T), nil
}

// fetchFunc returns the function the flight runs for a fetch started by a
// caller with context ctx.
func (s *Source[T]) fetchFunc(ctx context.Context) func() (any, error) {
	return func() (any, error) { return s.fetch(ctx) }
}

// fetch fetches the document, unless another fetch has since, and publishes
// the outcome.
func (s *Source[T]) fetch(ctx context.Context) (*T, error) {
	cur := s.state.Load()
	start := s.clock.Now()
	switch {
	case cur.doc != nil && start.Before(cur.refreshAt):
		return cur.doc, nil
	case cur.Throttled(start):
		if cur.doc != nil {
			return cur.doc, nil
		}
		return nil, cur.BackoffError(ErrBackoff, start)
	}
	ctx, cancel := engine.Detach(ctx, s.timeout)
	defer cancel()
	doc, err := engine.Protect(func() (*T, error) {
		doc := new(T)
		e, err := Fetch(ctx, s.hc, s.issuer, doc)
		if err == nil {
			err = s.check(doc, e)
		}
		return doc, err
	}, func(v any) error { return fmt.Errorf("provider: discovery: panic: %v", v) })
	now := s.clock.Now()
	if err != nil {
		n := *cur
		left := time.Duration(0)
		if cur.doc != nil {
			left = backoffMax * 2 // a document held is never too old to serve
		}
		n.Failure = n.Failed(err, now, left, backoffMin, min(backoffMax, max(s.ttl, backoffMin)), rand.Float64())
		s.state.Store(&n)
		if cur.doc != nil {
			return cur.doc, nil
		}
		return nil, err
	}
	s.state.Store(&state[T]{doc: doc, refreshAt: now.Add(s.ttl)})
	return doc, nil
}

// Failure returns the last fetch's error, or nil after a success.
func (s *Source[T]) Failure() error { return s.state.Load().Err }

// Held returns the document held, without a request; an error if there is
// none yet.
func (s *Source[T]) Held() (*T, error) {
	st := s.state.Load()
	if st.doc == nil {
		if st.Err != nil {
			return nil, st.Err
		}
		return nil, errors.New("provider: discovery: no metadata yet")
	}
	return st.doc, nil
}

// Idle reports whether no fetch runs: its outcome, if one ran, is published.
func (s *Source[T]) Idle() bool { return !s.flight.Running() }
