package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// KeySet caches one issuer's JSON Web Key Set, fetched from its URL (the
// issuer's "jwks_uri"), and finds verification keys in it by kid. Most callers
// use [KeySet.Key] and nothing else.
//
// A lookup in a fresh set is an atomic load of an immutable snapshot and a
// map read, with no lock and no allocation. The set is fetched when it is
// first needed, and then kept for as long as the server's Cache-Control
// max-age (or Expires) says, within [MinTTL] and [MaxTTL]. From 75-80% of that
// time (jittered, so that replicas do not fetch together), the first lookup
// starts one background fetch and returns at once, like every other; the
// fetch revalidates the set with If-None-Match or If-Modified-Since when the
// server gave an ETag or Last-Modified, and a 304 keeps the set for another
// lifetime. A kid the set lacks makes it be fetched again, at most once per
// [MinRefreshInterval], and every caller asking meanwhile shares that fetch.
//
// However many callers need a fetch at once, one runs, on a context none of
// them can cancel, bounded by the [FetchTimeout]; a caller whose context ends
// first returns its error at once. A failed fetch starts a backoff during
// which no fetch starts, the root package's Cache's: without a usable set,
// 1-2 seconds (callers are failing, so a server that answers again serves
// them at once); with one, growing from 1 second to at most 5 minutes and
// half of what the set has left to be served. While fetches fail, the last good set is
// served for the [StaleWindow] past its expiry; after that, Key fails closed
// with [ErrKeySetStale].
//
// The set is fetched over HTTPS only (plain HTTP is allowed to a loopback
// host), from the [AllowedHosts] if given, through at most 3 redirects, with
// an optional certificate pin ([PinSPKI]). A response that is too large
// ([MaxResponseSize]), not JSON, or a set with a private or symmetric key, a
// key without kid, or two keys with one kid, is refused whole
// ([ErrKeySetRefused]): the set held before it is kept. Keys of a type this
// package does not know (RFC 7517, section 5) are skipped.
//
// With [Snapshots], a KeySet saves each set it fetches, authenticated, in a
// store its fleet shares, and a KeySet without a set starts from the saved
// one, so that replicas that restart together do not all fetch.
//
// A KeySet needs no Close: it starts no goroutine but those of the fetch it is
// running. The zero KeySet is not usable; use [NewKeySet].
type KeySet struct {
	// snap is the current state; it is replaced whole on every change, and
	// only by fetch, which the group runs one at a time.
	snap atomic.Pointer[keySetSnapshot]
	// flight runs the one fetch at a time (the engine's, shared with the
	// root package's Cache).
	flight engine.Flight

	// url, client, cfg and clock are written once by NewKeySet and only read
	// after. clock's epoch is the origin of keySetSnapshot.freshFor.
	url    string
	client *http.Client
	cfg    keySetConfig
	clock  engine.Clock
	// issuer, for a key set made by NewFromIssuer, discovers url: the
	// jwks_uri of the issuer's metadata; url is then the issuer's
	// identifier, which names the set in logs and snapshots.
	issuer *discovery.Source[discovery.Endpoints]

	// stats come last, behind padding, off the cache lines that hits read.
	stats keySetCounters
}

// keySetSnapshot is a KeySet's state. It is never modified after it is
// published; every change publishes a copy.
type keySetSnapshot struct {
	// keys maps kid to key; nil before the first good set. The map and its
	// keys are never modified.
	keys map[string]jwk.Key
	// doc is the set's document as fetched, kept for [Snapshots] only; nil
	// without them. It is never modified.
	doc []byte
	// freshFor is how long after the KeySet's epoch lookups are hits: the
	// start of the refresh window, as a Duration so that the hit test is one
	// subtraction. It is ksNever without keys.
	freshFor time.Duration

	etag, lastModified string        // validators for the next fetch
	ttl                time.Duration // the set's last lifetime, for a 304 without one
	fetched            time.Time     // when the set was last fetched whole (200)
	confirmed          time.Time     // when it was last fetched or revalidated (200 or 304)
	refreshAt          time.Time     // from then, a lookup starts a background fetch
	expiry             time.Time     // from then, lookups wait for a fetch
	staleUntil         time.Time     // from then, the set is never served

	attemptAt time.Time // when the last fetch started
	// unknownAt is when the last fetch for a kid the set lacked started;
	// zero if none has since the last fetch that was due. The first unknown
	// kid after a due fetch may fetch at once (a key published just after
	// it, as providers that sign with a new key the moment it exists do);
	// the next, only MinRefreshInterval after the last.
	unknownAt time.Time
	// Failure is the fetch state: it outlives the set it was recorded
	// beside.
	engine.Failure
}

// keySetReason is why a fetch is started: a fetch that finds, once it runs,
// that another fetch has done its work returns without fetching.
type keySetReason int

const (
	ksDue     keySetReason = iota // no set, or the set is due for refresh
	ksUnknown                     // a kid the set lacks
)

// ksNever is the freshFor of a snapshot without keys.
const ksNever = time.Duration(math.MinInt64)

// NewKeySet returns a key set fetched from rawURL, configured by opts. It
// fetches nothing until the first call of [KeySet.Key], and starts no
// goroutine. It fails, with an error wrapping [ErrKeySetRefused], for a URL
// that is not https (or http to a loopback host: 127.0.0.0/8, ::1,
// localhost) or whose host is not among the [AllowedHosts], and for an
// invalid option. Out-of-range options are clamped as each documents.
func NewKeySet(rawURL string, opts ...KeySetOption) (*KeySet, error) {
	s := &KeySet{cfg: newKeySetConfig(opts)}
	if s.cfg.err != nil {
		return nil, s.cfg.err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("verify: key set URL: %w", err)
	}
	if err := s.cfg.checkURL(u); err != nil {
		return nil, err
	}
	if len(s.cfg.pins) > 0 && u.Scheme != "https" {
		return nil, fmt.Errorf("verify: key set %s: PinSPKI needs an https URL", u.Redacted())
	}
	if s.client, err = s.cfg.httpClient(); err != nil {
		return nil, err
	}
	s.url = u.String()
	s.clock = engine.NewClock(s.cfg.clock, time.Time{})
	s.snap.Store(&keySetSnapshot{freshFor: ksNever})
	return s, nil
}

// Key returns the verification key with kid, refreshing the set once
// (rate-limited, shared) if kid is unknown.
//
// It returns a key from a fresh set at once. Otherwise it may wait for a fetch
// (never longer than the [FetchTimeout], nor than ctx allows: then it returns
// ctx.Err()). A kid the set still lacks is an error wrapping
// [ErrKeySetUnknownKID]; with no usable set, the error wraps
// [ErrKeySetStale]. The key returned is shared by every caller and must not
// be modified.
func (s *KeySet) Key(ctx context.Context, kid string) (jwk.Key, error) {
	now := s.clock.Elapsed()
	if p := s.snap.Load(); now < p.freshFor {
		if k, ok := p.keys[kid]; ok {
			s.countHit(now)
			return k, nil
		}
	}
	return s.lookup(ctx, kid)
}

// HasKey reports whether the set the KeySet holds has a key with kid and may
// still be served (fresh, or within its stale window). It never waits and
// takes no lock: the [Verifier] calls it on every hit of its verified-token
// cache, so that a token whose key has left the set is verified again (and
// refused). Once the set is due for refresh, the first call starts one
// refresh in the background, as [KeySet.Key] does, so that a service whose
// callers only reuse tokens still sees a key withdrawn. It implements
// [KeyPresence].
func (s *KeySet) HasKey(kid string) bool {
	p := s.snap.Load()
	if s.clock.Elapsed() < p.freshFor {
		// Fresh, as on a hit of Key: one monotonic clock read, nothing due.
		_, ok := p.keys[kid]
		return ok
	}
	if p.keys == nil {
		return false
	}
	now := s.now()
	if !now.Before(p.refreshAt) && !p.Waiting(now) && !s.flight.Running() {
		s.flight.Start(s.fetchFunc(context.Background(), ksDue))
	}
	if _, ok := p.keys[kid]; !ok {
		return false
	}
	return now.Before(p.staleUntil)
}

// URL returns the URL the key set is fetched from; for a key set of
// [NewFromIssuer], the jwks_uri it discovered, or "" before it has.
func (s *KeySet) URL() string {
	if s.issuer == nil {
		return s.url
	}
	if e, err := s.issuer.Held(); err == nil {
		return e.JWKSURI
	}
	return ""
}

// lookup is the path of every call that is not a hit in a fresh set. Where
// the set stands is the engine's rule (engine.Plan), the Cache's: a set is
// fresh until its refresh is due, served at once until it expires, and in
// its stale window served while its successor cannot be had.
func (s *KeySet) lookup(ctx context.Context, kid string) (jwk.Key, error) {
	s.stats.slow.Add(1)
	now := s.now()
	p := s.snap.Load()
	switch phase := engine.Plan(now, now.Before(p.refreshAt), p.expiry, p.staleUntil, p.Failure); phase {
	case engine.Fresh, engine.Due:
		// Fresh (the hit test raced a fetch), in the refresh window, or in
		// the stale window while the server fails: served at once, and the
		// first caller once a refresh is due starts it in the background,
		// on a goroutine of its own.
		if phase == engine.Due && !p.Waiting(now) && !s.flight.Running() {
			s.flight.Start(s.fetchFunc(ctx, ksDue))
		}
		stale := !now.Before(p.expiry)
		if k, ok := p.keys[kid]; ok {
			s.stats.hits.Add(1)
			if stale {
				s.stats.staleServes.Add(1)
			}
			return k, nil
		}
		if stale {
			s.stats.misses.Add(1)
			return nil, s.unknownError(kid, p.Err)
		}
		return s.unknown(ctx, kid, p, now)
	case engine.Waiting:
		// Expired, but within the stale window: wait for the new set, or
		// serve this one if the server fails.
		n, err := s.wait(ctx, ksDue)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && n.usable(s.now()) {
			return s.find(ctx, kid, n)
		}
		if k, ok := p.keys[kid]; ok {
			s.stats.hits.Add(1)
			s.stats.staleServes.Add(1)
			return k, nil
		}
		s.stats.misses.Add(1)
		return nil, s.unknownError(kid, s.snap.Load().Err)
	}
	// No set, or one past its stale window.
	if p.Throttled(now) {
		return nil, p.staleError(now)
	}
	n, err := s.wait(ctx, ksDue)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A fetch that started from an expired snapshot (see [Snapshots])
		// and failed leaves that set to serve, within its stale window.
		if n := s.snap.Load(); n.usable(s.now()) {
			if k, ok := n.keys[kid]; ok {
				s.stats.hits.Add(1)
				s.stats.staleServes.Add(1)
				return k, nil
			}
			s.stats.misses.Add(1)
			return nil, s.unknownError(kid, err)
		}
		// This call's own fetch failed: its error, not the backoff it
		// started, is the cause to name.
		return nil, s.snap.Load().fetchError(err)
	}
	if !n.usable(s.now()) {
		return nil, n.staleError(s.now())
	}
	return s.find(ctx, kid, n)
}

// find looks kid up in p, which a fetch has just published or kept, and goes
// the unknown kid's way if p lacks it.
func (s *KeySet) find(ctx context.Context, kid string, p *keySetSnapshot) (jwk.Key, error) {
	if k, ok := p.keys[kid]; ok {
		s.stats.hits.Add(1)
		return k, nil
	}
	return s.unknown(ctx, kid, p, s.now())
}

// unknown handles a kid that p, a usable set, lacks: it joins the fetch in
// flight, or starts one if the last began at least MinRefreshInterval ago,
// and looks again in its set.
func (s *KeySet) unknown(ctx context.Context, kid string, p *keySetSnapshot, now time.Time) (jwk.Key, error) {
	s.stats.misses.Add(1)
	if !s.flight.Running() && (p.Throttled(now) || !p.unknownAllowed(now, s.cfg.minRefreshInterval)) {
		// Not allowed yet. A fetch may have ended since p was loaded: its
		// set is published by now, since fetching is cleared after it.
		if n := s.snap.Load(); n != p && n.usable(now) {
			if k, ok := n.keys[kid]; ok {
				return k, nil
			}
		}
		// The provider may have published the key since the last fetch:
		// the token cannot be judged yet, so it is not refused (a 401
		// would make its client drop a good token) but put off.
		return nil, &putOff{kid: kid, until: p.unknownAt.Add(s.cfg.minRefreshInterval)}
	}
	n, err := s.wait(ctx, ksUnknown)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, s.unknownError(kid, err)
	}
	if k, ok := n.keys[kid]; ok && n.usable(s.now()) {
		return k, nil
	}
	return nil, s.unknownError(kid, nil)
}

// unknownError is the error for kid, unknown; cause, if not nil, is why the
// refresh failed.
func (s *KeySet) unknownError(kid string, cause error) error {
	if cause != nil {
		return fmt.Errorf("%w: %s (refresh: %w)", ErrKeySetUnknownKID, jose.Quote(kid), cause)
	}
	return fmt.Errorf("%w: %s", ErrKeySetUnknownKID, jose.Quote(kid))
}

// wait joins the fetch in flight, or starts one for reason, and waits for it
// or for ctx. It returns the snapshot the fetch left (nil when ctx ended
// first), and the fetch's error.
func (s *KeySet) wait(ctx context.Context, reason keySetReason) (*keySetSnapshot, error) {
	v, err := s.flight.Wait(ctx, s.fetchFunc(ctx, reason))
	if v == nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return s.snap.Load(), err
	}
	return v.(*keySetSnapshot), err
}

// fetchFunc returns the function the singleflight group runs for a fetch
// started for reason by a caller with context ctx.
func (s *KeySet) fetchFunc(ctx context.Context, reason keySetReason) func() (any, error) {
	return func() (any, error) { return s.fetch(ctx, reason) }
}

// fetch fetches the set, unless another fetch has done its work since the
// caller looked, and publishes the outcome. The flight runs one fetch at a
// time, so fetch is the snapshot's only writer. Its context keeps ctx's
// values but not its cancellation: it serves every caller that joins it.
func (s *KeySet) fetch(ctx context.Context, reason keySetReason) (*keySetSnapshot, error) {
	start := s.now()
	cur := s.snap.Load()
	if cur.Throttled(start) {
		return cur, cur.BackoffError(errBackingOff, start)
	}
	switch {
	case reason == ksUnknown && cur.keys != nil && !cur.unknownAllowed(start, s.cfg.minRefreshInterval):
		return cur, nil
	case reason == ksDue && cur.keys != nil && start.Before(cur.refreshAt):
		return cur, nil
	}
	ctx, cancel := engine.Detach(ctx, s.cfg.fetchTimeout)
	defer cancel()
	p, err := engine.Protect(func() (*keySetSnapshot, error) { return s.refresh(ctx, cur, start, reason) }, keySetPanic)
	if err != nil {
		return s.fail(err, s.now()), err
	}
	return p, nil
}

// keySetPanic is the error of a fetch that panicked.
func keySetPanic(v any) error { return fmt.Errorf("%w: panic: %v", ErrKeySetRefused, v) }

// refresh is the fetch proper, on the fetch's context: from the fleet's
// snapshot when the KeySet has no set yet, then from the URL.
func (s *KeySet) refresh(ctx context.Context, cur *keySetSnapshot, start time.Time, reason keySetReason) (*keySetSnapshot, error) {
	if cur.keys == nil && s.cfg.snapshots != nil {
		// No set yet: start from the fleet's snapshot, if there is a usable
		// one, and fetch only if it has expired.
		if n := s.warm(ctx, cur, start); n != nil {
			if start.Before(n.expiry) {
				return n, nil
			}
			cur = n
		}
	}
	s.stats.refreshes.Add(1)
	attempt := *cur
	attempt.attemptAt = start
	attempt.unknownAt = time.Time{} // a due fetch gives the next unknown kid a fetch at once
	if reason == ksUnknown {
		attempt.unknownAt = start
	}
	s.snap.Store(&attempt)
	res, err := s.get(ctx, &attempt)
	if err != nil {
		return nil, err
	}
	p := s.publish(&attempt, res, s.now())
	if s.cfg.snapshots != nil {
		s.save(ctx, p)
	}
	return p, nil
}

// publish publishes the set that res brought (or, for a 304, renews cur's),
// fetched at now, and returns it.
func (s *KeySet) publish(cur *keySetSnapshot, res keySetResponse, now time.Time) *keySetSnapshot {
	n := &keySetSnapshot{attemptAt: cur.attemptAt, unknownAt: cur.unknownAt, confirmed: now, etag: res.etag, lastModified: res.lastModified}
	ttl := res.ttl
	if res.notModified {
		s.stats.notModified.Add(1)
		n.keys, n.doc, n.fetched = cur.keys, cur.doc, cur.fetched
		if ttl == 0 {
			ttl = cur.ttl
		}
		// A 304 need not repeat the validators (RFC 9110, section 15.4.5).
		if n.etag == "" && n.lastModified == "" {
			n.etag, n.lastModified = cur.etag, cur.lastModified
		}
	} else {
		n.keys, n.fetched = res.keys, now
		if s.cfg.snapshots != nil {
			n.doc = res.doc
		}
	}
	if ttl == 0 {
		ttl = s.cfg.minTTL
	}
	n.ttl = ttl
	n.expiry = now.Add(ttl)
	n.staleUntil = n.expiry.Add(s.cfg.staleWindow)
	n.refreshAt = ksRefreshAt(now, ttl, rand.Float64())
	n.freshFor = s.clock.Since(n.refreshAt)
	s.snap.Store(n)
	s.log(slog.LevelDebug, "verify: key set fetched", "keys", len(n.keys),
		"not_modified", res.notModified, "ttl", ttl)
	return n
}

// fail records a failed fetch, starts the backoff, and returns the snapshot
// it published.
func (s *KeySet) fail(err error, now time.Time) *keySetSnapshot {
	s.stats.refreshErrors.Add(1)
	msg := "verify: key set fetch failed"
	if ksRefused(err) {
		s.stats.refused.Add(1)
		msg = "verify: key set refused"
	}
	n := *s.snap.Load()
	n.Failure = n.Failed(err, now, n.staleUntil.Sub(now), ksBackoffMin, ksBackoffMax, rand.Float64())
	s.snap.Store(&n)
	s.log(slog.LevelWarn, msg, "error", err, "failures", n.Failures,
		"retry_in", n.RetryAt.Sub(now).Round(time.Millisecond))
	return &n
}

// log emits a record that names the key set's URL first.
func (s *KeySet) log(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !s.cfg.logger.Enabled(ctx, level) {
		return
	}
	attr := []any{"url", s.url}
	if s.issuer != nil {
		attr = []any{"issuer", s.issuer.Issuer()}
	}
	s.cfg.logger.Log(ctx, level, msg, append(attr, args...)...)
}

// now reads the key set's clock.
func (s *KeySet) now() time.Time { return s.clock.Now() }

// ksRefreshAt returns when a set confirmed at confirmed, for ttl, is due for
// refresh: from 75-80% of its lifetime, u in [0, 1) drawing where (0: the
// latest), so that replicas do not fetch together (engine.Schedule, with a
// Cache's default fraction and no headroom).
func ksRefreshAt(confirmed time.Time, ttl time.Duration, u float64) time.Time {
	refreshAt, _ := engine.Schedule(confirmed.Add(ttl), ttl, 0, refreshAhead, 1-u)
	return refreshAt
}

// refreshAhead is the share of a set's lifetime before its expiry from which
// it is refreshed in the background, as a Cache's token is by default.
const refreshAhead = 0.25

// errBackingOff is what the error of a fetch that did not start because of
// the backoff wraps, besides the last error.
var errBackingOff = errors.New("verify: key set: backing off")

// putOff is the error of a lookup of a kid the set lacks, made when no
// refresh is allowed for it yet: it wraps ErrKeySetStale (the token cannot
// be judged yet) and ErrKeySetUnknownKID.
type putOff struct {
	kid   string
	until time.Time // when a refresh is allowed
}

func (e *putOff) Error() string {
	return fmt.Sprintf("%s: %s: %s; a refresh for it is allowed from %s", ErrKeySetStale, ErrKeySetUnknownKID, jose.Quote(e.kid), e.until.Round(0).Format(time.RFC3339))
}

func (e *putOff) Unwrap() []error { return []error{ErrKeySetStale, ErrKeySetUnknownKID} }

// keyPatient is [KeySet.Key] for a caller that may wait (the root package's
// fetch, through ParseOption, on its detached context): a lookup put off for
// want of a refresh is tried again once one is allowed, as long as ctx
// allows, so that a token the cache itself fetched is not failed for want of
// a key its provider has just published.
func (s *KeySet) keyPatient(ctx context.Context, kid string) (jwk.Key, error) {
	for {
		k, err := s.Key(ctx, kid)
		var p *putOff
		if !errors.As(err, &p) {
			return k, err
		}
		// Polled on the real clock, judged on the KeySet's, so that a
		// test clock moves it too.
		t := time.NewTimer(min(max(p.until.Sub(s.now()), time.Millisecond), 100*time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}

// unknownAllowed reports whether a kid p lacks may make the set be fetched
// at now: none has since the last due fetch, or the last did at least
// interval ago.
func (p *keySetSnapshot) unknownAllowed(now time.Time, interval time.Duration) bool {
	return p.unknownAt.IsZero() || now.Sub(p.unknownAt) >= interval
}

// usable reports whether p holds a set that may be served at now.
func (p *keySetSnapshot) usable(now time.Time) bool {
	return p.keys != nil && now.Before(p.staleUntil)
}

// staleError is the error for a caller with no usable set at now.
func (p *keySetSnapshot) staleError(now time.Time) error {
	var why error
	switch {
	case p.Throttled(now):
		why = p.BackoffError(errBackingOff, now)
	case p.Err != nil:
		why = p.Err
	default:
		return ErrKeySetStale
	}
	if p.keys == nil {
		return fmt.Errorf("%w: none fetched: %w", ErrKeySetStale, why)
	}
	return fmt.Errorf("%w: expired at %s: %w", ErrKeySetStale, p.expiry.Round(0).Format(time.RFC3339), why)
}

// fetchError is the error for a caller with no usable set whose own fetch
// just failed with err.
func (p *keySetSnapshot) fetchError(err error) error {
	if p.keys == nil {
		return fmt.Errorf("%w: none fetched: %w", ErrKeySetStale, err)
	}
	return fmt.Errorf("%w: expired at %s: %w", ErrKeySetStale, p.expiry.Round(0).Format(time.RFC3339), err)
}

var (
	_ KeySource   = (*KeySet)(nil)
	_ KeyPresence = (*KeySet)(nil)
)
