package jwtcache

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// Store shares tokens between the caches of a fleet of replicas, so that
// they fetch one token, not one each. A [Cache] with a store consults it only
// when it would otherwise call its token function, and only from its fetch,
// on the fetch's context (detached from the caller that started it, bounded by
// the [FetchTimeout]): it adopts a token another replica saved; when it must
// fetch, it first takes a short lease, so that one replica fetches while the
// others wait and adopt what it saves; and a token a server rejected leaves
// the store, so that no replica adopts it again.
//
// Keys are namespaced by the cache's [Name]: "<name>" for a Cache,
// "<name>:<key>" for a key of a CacheMap, with any ':' or '\' in the name
// escaped by a '\', so that no two caches share a key; a cache with a store
// needs a name. A Store must be safe for concurrent use, and its methods must
// return once their context ends (the cache bounds each call, but cannot
// abandon one that hangs); it should answer quickly (a slow store delays
// fetches, never hits). Tokens are secrets: a Store should keep them
// encrypted.
//
// Package redisstore implements Store on Redis.
type Store interface {
	// Load returns the token saved under key and the instant it expires, or
	// an error wrapping ErrNotFound when there is none.
	Load(ctx context.Context, key string) (token string, expiry time.Time, err error)
	// Save saves token under key until expiry, replacing any other.
	Save(ctx context.Context, key, token string, expiry time.Time) error
	// CompareAndDelete deletes the token saved under key only if it is
	// token, atomically, and reports whether it did. A cache calls it for a
	// token a server rejected: the token goes, but a replacement that
	// another replica saved meanwhile stays.
	CompareAndDelete(ctx context.Context, key, token string) (deleted bool, err error)
	// Lease tries to take, for ttl, the right to fetch key's token, and
	// reports whether it got it. When it did, the cache calls release once
	// its fetch has ended: with keep zero, to free the lease at once (the
	// fetch saved a token); with a positive keep, to hold it that much
	// longer (the fetch failed, and the fleet backs off as one replica
	// would). A release that fails leaves the lease to run out.
	Lease(ctx context.Context, key string, ttl time.Duration) (release func(ctx context.Context, keep time.Duration) error, ok bool, err error)
}

// SharedStore makes the cache share its tokens through s (see [Store]). Its
// tokens are saved under its [Name] (a CacheMap's, with the key), which must
// be given: two caches of different tokens under one name would hand out each
// other's, so a cache with a store and no name returns [ErrNoName]. When the
// store fails (down, slow, or answering garbage), the cache fetches on its
// own, logs it at most once a minute, and its callers see no error. The
// default is none.
func SharedStore(s Store) Option {
	return optionFunc(func(c *config) { c.store = s })
}

// ExclusiveFetch makes a cache with a [SharedStore] call its token function
// only while it holds the store's lease, so that no two replicas ever run it
// at once: when the store fails, the fetch fails (and the cache backs off,
// serving its token while it is valid) instead of fetching alone; a fetch
// tries the store again, with backoff, until its [FetchTimeout] runs out,
// before it fails. It is for a
// token function that must not run twice at once, one that spends a refresh
// token that rotates, say; with a token function that may, the default keeps
// a fleet fetching while its store is down. Without a store, it changes
// nothing: a cache fetches one token at a time anyway. The default is off.
func ExclusiveFetch() Option {
	return optionFunc(func(c *config) { c.exclusive = true })
}

// storePoll is how often a replica that did not get the lease looks for the
// holder's token, or for the lease to come free.
const storePoll = 50 * time.Millisecond

// storeShare bounds each store call to this fraction of the fetch timeout,
// so that a store that hangs costs a fetch a tenth of its time, not all of it.
const storeShare = 10

// storeKey is the cache's key in its store: its name, escaped so that it has
// no bare ':', and for a key of a CacheMap, ':' and the key. So a Cache named
// "a:b" and the key "b" of a map named "a" do not share tokens.
//
// With a [Binding], `\@` and the thumbprint (escaped alike) follow the name:
// `<name>\@<thumbprint>:<key>`, so that caches bound to different keys never
// share a token. The escaping of names never writes `\@`, so no name reads
// as a name and a binding, and the keys of caches without one are as they
// were before bindings.
func storeKey(cfg *config) string {
	name := storeName.Replace(cfg.name)
	if cfg.binding != "" {
		name += `\@` + storeName.Replace(cfg.binding)
	}
	if cfg.key != "" {
		return name + ":" + cfg.key
	}
	return name
}

// storeName escapes a cache's name for its store key.
var storeName = strings.NewReplacer(`\`, `\\`, `:`, `\:`)

// shared is the store's layer around a Cache's token function, the way
// oauth2.ReuseTokenSource wraps a TokenSource: a fetch asks it for a token,
// and it adopts one another replica saved, or takes the lease, calls the
// token function, saves what it got and releases the lease. It also keeps the
// tokens servers rejected, so that none is adopted again. It is built once by
// NewCache; its fields are only read after, but for those that say otherwise.
type shared struct {
	store   Store
	key     string // the cache's key in store (see storeKey)
	cfg     *config
	parser  *parser
	log     func(level slog.Level, msg string, args ...any)
	rejects rejects
	errors  atomic.Uint64 // failed store calls
	warned  engine.Every  // rate-limits the warning of a failed store call
}

// newShared returns the store layer of a cache configured by cfg.
func newShared(cfg *config, p *parser, log func(slog.Level, string, ...any)) *shared {
	return &shared{store: cfg.store, key: storeKey(cfg), cfg: cfg, parser: p, log: log}
}

func (s *shared) rejected(token string, expiry, now time.Time) { s.rejects.add(token, expiry, now) }

func (s *shared) storeErrors() uint64 { return s.errors.Load() }

// now reads the cache's clock.
func (s *shared) now() time.Time {
	if s.cfg.clock != nil {
		return s.cfg.clock()
	}
	return time.Now()
}

// obtain runs the token function inside the store's protocol:
// delete the tokens rejected since the last fetch, adopt a token another
// replica saved, or take the lease, look again, fetch with next, save, and
// release. A replica that does not get the lease waits for the holder's token,
// or for the lease, instead of calling the provider beside it. Once a store
// call fails, the fetch makes no other (but the release of a lease it holds)
// and fetches on its own, so that a store that hangs costs one store call's
// time, not the fetch's.
//
// With ExclusiveFetch, a fetch whose store failed tries the protocol again,
// with backoff, until the fetch's time runs out: a store's blip must not fail
// a fetch that may not run alone.
func (s *shared) obtain(ctx context.Context, a *attempt) (Token, error) {
	for n := 1; ; n++ {
		tok, err := s.obtainOnce(ctx, a)
		if !errors.Is(err, errStoreExclusive) {
			return tok, err
		}
		left := time.Second
		if deadline, ok := ctx.Deadline(); ok {
			left = time.Until(deadline)
		}
		select {
		case <-time.After(engine.RetryDelay(n, left, storePoll, time.Second, rand.Float64())):
		case <-ctx.Done():
			return tok, err
		}
	}
}

// obtainOnce is one run of obtain's protocol.
func (s *shared) obtainOnce(ctx context.Context, a *attempt) (tok Token, err error) {
	if !s.deleteRejected(ctx) {
		return s.alone(ctx, a)
	}
	tok, adopted, ok := s.adopt(ctx, a)
	if adopted || !ok {
		return s.orIssue(ctx, a, tok, adopted)
	}
	release, leased, err := s.lease(ctx)
	if err != nil {
		s.failed("lease", err)
		return s.alone(ctx, a)
	}
	if !leased {
		var w waited
		if w, tok, release, err = s.awaitHolder(ctx, a); w != leaseTaken {
			if w == storeDown {
				return s.alone(ctx, a)
			}
			return tok, err // adopted, or gave up
		}
	}
	defer func() {
		// Deferred, so that a panic (in parsing, or in the Store) does not
		// leave the lease held for the whole fetch timeout. After a failure,
		// the lease is held for a retry delay, so that the fleet asks a
		// failing provider about once per delay, not once per replica.
		r := recover()
		var keep time.Duration
		if err != nil || r != nil {
			keep = engine.RetryDelay(1, 0, s.cfg.backoffMin, s.cfg.backoffMax, rand.Float64())
		}
		rctx, cancel := s.afterFetch(ctx)
		defer cancel()
		if rerr := release(rctx, keep); rerr != nil {
			s.failed("release", rerr)
		}
		if r != nil {
			panic(r) // for fetch to recover as ErrPanic
		}
	}()
	// Another replica may have saved a token between the look above and the
	// lease: adopt it rather than fetch a second one. (A load that fails
	// here leaves the fetch to the holder of the lease, this cache.)
	if tok, adopted, _ = s.adopt(ctx, a); adopted {
		return tok, nil
	}
	if tok, err = a.issue(ctx); err == nil && !tok.Expiry.IsZero() {
		sctx, cancel := s.afterFetch(ctx)
		defer cancel()
		if serr := s.store.Save(sctx, s.key, tok.Value, tok.Expiry); serr != nil {
			s.failed("save", serr)
		}
	}
	return tok, err
}

// orIssue returns tok if it was adopted, and otherwise (the store failed)
// fetches alone.
func (s *shared) orIssue(ctx context.Context, a *attempt, tok Token, adopted bool) (Token, error) {
	if adopted {
		return tok, nil
	}
	return s.alone(ctx, a)
}

// errStoreExclusive is the fetch's error when the store failed and the cache
// has ExclusiveFetch.
var errStoreExclusive = errors.New("jwtcache: fetch token: the store failed, and ExclusiveFetch forbids fetching without its lease")

// alone calls the token function without the store, which failed; with
// ExclusiveFetch, it fails instead.
func (s *shared) alone(ctx context.Context, a *attempt) (Token, error) {
	if s.cfg.exclusive {
		return Token{}, errStoreExclusive
	}
	return a.issue(ctx)
}

// waited is how a wait for the lease's holder ended.
type waited int

const (
	adoptedHolders waited = iota // the holder saved a token, now the cache's
	leaseTaken                   // the lease came free and the cache took it
	storeDown                    // a store call failed: fetch alone
	gaveUp                       // the holder saved nothing in time
)

// awaitHolder waits while another replica holds the lease: it adopts the
// token that replica saves, or takes the lease once it is free (and returns
// its release). It gives up after half the fetch timeout with an error, so
// that the cache backs off rather than add a call to a provider that the
// holder is already waiting for.
func (s *shared) awaitHolder(ctx context.Context, a *attempt) (waited, Token, func(context.Context, time.Duration) error, error) {
	patience := s.cfg.fetchTimeout / 2
	giveUp := time.NewTimer(patience)
	defer giveUp.Stop()
	tick := time.NewTicker(storePoll)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-giveUp.C:
			return gaveUp, Token{}, nil, fmt.Errorf("jwtcache: fetch token: another replica holds the store's lease and saved no token within %s", patience)
		case <-ctx.Done():
			return gaveUp, Token{}, nil, fmt.Errorf("jwtcache: fetch token: waiting for another replica's token: %w", ctx.Err())
		}
		tok, adopted, ok := s.adopt(ctx, a)
		switch {
		case adopted:
			return adoptedHolders, tok, nil, nil
		case !ok:
			return storeDown, Token{}, nil, nil
		}
		release, leased, err := s.lease(ctx)
		if err != nil {
			s.failed("lease", err)
			return storeDown, Token{}, nil, nil
		}
		if leased {
			return leaseTaken, Token{}, release, nil
		}
	}
}

// lease tries to take the key's lease for as long as a fetch may take.
func (s *shared) lease(ctx context.Context) (func(context.Context, time.Duration) error, bool, error) {
	ctx, cancel := s.storeCall(ctx)
	defer cancel()
	return s.store.Lease(ctx, s.key, s.cfg.fetchTimeout)
}

// storeCall returns the context of one store call within the fetch's.
func (s *shared) storeCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.fetchTimeout/storeShare)
}

// afterFetch returns the context of a store call that records the fetch's
// outcome (Save, and the lease's release): the fetch's values, but time of its
// own, since a fetch that took all of its timeout still has an outcome to
// record.
func (s *shared) afterFetch(ctx context.Context) (context.Context, context.CancelFunc) {
	return engine.Detach(ctx, s.cfg.fetchTimeout/storeShare)
}

// adopt loads the token saved under key and, if it is worth adopting (not the
// one the cache holds, not one it rejected, not yet due for refresh), admits
// it as the fetch's token, and reports adopted. It reports !ok when the store
// call failed. A saved token that does not pass the cache's checks (its
// ParseOptions, say) is not adopted, and counted as a store failure. The
// scope a token was issued with is not shared. A fetch for a claims challenge
// adopts nothing.
func (s *shared) adopt(ctx context.Context, a *attempt) (tok Token, adopted, ok bool) {
	if _, claims := ClaimsChallenge(ctx); claims {
		// A token with the claims is wanted; the saved one may lack them.
		return Token{}, false, true
	}
	sctx, cancel := s.storeCall(ctx)
	raw, expiry, err := s.store.Load(sctx, s.key)
	cancel()
	if errors.Is(err, ErrNotFound) {
		return Token{}, false, true
	}
	if err != nil {
		s.failed("load", err)
		return Token{}, false, false
	}
	now := s.now()
	if raw == "" || raw == a.held() || !now.Before(expiry) || s.rejects.has(raw) {
		return Token{}, false, true
	}
	// Due for refresh by the lifetime its claims give (iat to exp), or, for
	// a token without them (an opaque one, say), by what it has left; at the
	// latest point the jitter allows, so that replicas adopt rather than
	// fetch.
	life := expiry.Sub(now)
	cl, err := s.parser.claims(raw)
	if err == nil && cl.jkt != "" && cl.jkt != s.cfg.binding {
		// Bound to a key this cache does not hold: no request it sends
		// could prove it.
		s.failed("adopt", errors.New("the saved token is bound to another key"))
		return Token{}, false, true
	}
	if err == nil && !cl.iat.IsZero() && cl.exp.After(cl.iat) {
		life = cl.exp.Sub(cl.iat)
	}
	if refreshAt, _ := engine.Schedule(expiry, life, s.cfg.headroom, s.cfg.refreshAhead, 1); !now.Before(refreshAt) {
		return Token{}, false, true
	}
	// The saved expiry is the lifetime the token is adopted with, so that an
	// opaque token is cached as its saver cached it.
	tok, err = a.admit(Issued{Token: raw, ExpiresIn: expiry.Sub(a.start)}, now, expiry)
	if err != nil {
		s.failed("adopt", err)
		return Token{}, false, true
	}
	return tok, true, true
}

// deleteRejected deletes from the store the tokens rejected since the last
// fetch, each only if the store still holds it, and reports whether the store
// answered. It stops at the first failure: what is left is tried again on the
// next fetch.
func (s *shared) deleteRejected(ctx context.Context) bool {
	for _, tok := range s.rejects.pending() {
		sctx, cancel := s.storeCall(ctx)
		_, err := s.store.CompareAndDelete(sctx, s.key, tok)
		cancel()
		if err != nil {
			s.failed("delete", err)
			return false
		}
		s.rejects.deleted(tok)
	}
	return true
}

// failed counts a failed store call and logs it, at most once a minute.
func (s *shared) failed(op string, err error) {
	s.errors.Add(1)
	if s.warned.Allow(s.now(), time.Minute) {
		s.log(slog.LevelWarn, "jwtcache: store call failed", "op", op, "error", fmt.Sprint(err))
	}
}

// maxRejects bounds how many rejected tokens a cache remembers; past it, the
// one that expires first is forgotten.
const maxRejects = 8

// rejects are the tokens a cache with a store dropped as rejected: it never
// adopts one of them again while it lives, and deletes each from the store on
// its next fetch. A token's text is kept only until it is deleted there; its
// hash, until it expires.
type rejects struct {
	mu   sync.Mutex // guards list
	list []rejected
}

// rejected is a token in rejects.
type rejected struct {
	sum    [sha256.Size]byte
	token  string // "" once deleted from the store
	expiry time.Time
}

// add remembers token, which expires at expiry, as rejected at now.
func (r *rejects) add(token string, expiry, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = pruneRejects(r.list, now)
	if len(r.list) == maxRejects {
		first := 0
		for i, x := range r.list {
			if x.expiry.Before(r.list[first].expiry) {
				first = i
			}
		}
		r.list = append(r.list[:first], r.list[first+1:]...)
	}
	r.list = append(r.list, rejected{sum: sha256.Sum256([]byte(token)), token: token, expiry: expiry})
}

// pruneRejects drops the tokens expired at now, in place.
func pruneRejects(list []rejected, now time.Time) []rejected {
	kept := list[:0]
	for _, x := range list {
		if now.Before(x.expiry) {
			kept = append(kept, x)
		}
	}
	return kept
}

// has reports whether token was rejected.
func (r *rejects) has(token string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == 0 {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	for _, x := range r.list {
		if x.sum == sum {
			return true
		}
	}
	return false
}

// pending returns the rejected tokens not yet deleted from the store.
func (r *rejects) pending() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var toks []string
	for _, x := range r.list {
		if x.token != "" {
			toks = append(toks, x.token)
		}
	}
	return toks
}

// deleted records that token is no longer in the store.
func (r *rejects) deleted(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.list {
		if r.list[i].token == token {
			r.list[i].token = ""
		}
	}
}
