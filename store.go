package jwtcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Store shares tokens between the caches of a fleet of replicas, so that
// they fetch one token, not one each. A [Cache] with a store consults it
// behind its own entry, only when it would otherwise call its token function:
// it adopts a token another replica saved, and when it must fetch, it first
// takes a short lease, so that one replica fetches while the others wait
// briefly and adopt what it saves.
//
// Keys are namespaced by the cache: "<name>" for a Cache, "<name>:<key>" for
// a key of a CacheMap. A Store must be safe for concurrent use, and should
// answer quickly (a slow store delays fetches, never hits). Tokens are
// secrets: a Store should keep them encrypted.
//
// Package redisstore implements Store on Redis.
type Store interface {
	// Load returns the token saved under key and the instant it expires, or
	// an error wrapping ErrNotFound when there is none.
	Load(ctx context.Context, key string) (token string, expiry time.Time, err error)
	// Save saves token under key until expiry.
	Save(ctx context.Context, key, token string, expiry time.Time) error
	// Lease tries to take, for ttl, the right to fetch key's token. It
	// reports whether it got it; release gives a lease it got back early.
	Lease(ctx context.Context, key string, ttl time.Duration) (release func(), ok bool, err error)
}

// ErrNotFound is what a [Store]'s Load wraps when it holds no token for a
// key. The cache takes any other error from Load (a value the store cannot
// read back, say) as a miss too, but logs and counts it as a store failure.
var ErrNotFound = errors.New("jwtcache: no token in the store")

// SharedStore makes the cache share its tokens through s (see [Store]). When
// the store fails (down, slow, or answering garbage), the cache fetches on its
// own, logs it at most once a minute, and its callers see no error. The
// default is none.
func SharedStore(s Store) Option {
	return optionFunc(func(c *config) { c.store = s })
}

// Bounds on the waits a store adds to a fetch.
const (
	// storeWait is how long a replica that did not get the lease waits for
	// the holder to save a token, before it fetches on its own.
	storeWait = 3 * time.Second
	// storePoll is how often it looks meanwhile.
	storePoll = 50 * time.Millisecond
)

// storeKey is the cache's key in its store.
func (c *Cache) storeKey() string {
	if c.cfg.key != "" {
		return c.cfg.name + ":" + c.cfg.key
	}
	return c.cfg.name
}

// callShared is call for a cache with a store: it adopts a token another
// replica saved (and then returns its expiry in the store), or takes the lease
// and fetches. The caller saves what it fetched, then calls release.
func (c *Cache) callShared(ctx context.Context) (raw string, stored time.Time, release func(), err error) {
	st, key := c.cfg.store, c.storeKey()
	release = func() {}
	if raw, stored, ok := c.adoptable(ctx, key); ok {
		return raw, stored, release, nil
	}
	rel, leased, err := st.Lease(ctx, key, c.cfg.fetchTimeout)
	switch {
	case err != nil:
		c.storeFailed("lease", err)
	case leased:
		release = rel
		// Another replica may have saved a token between the look above
		// and the lease: adopt it rather than fetch a second one.
		if raw, stored, ok := c.adoptable(ctx, key); ok {
			return raw, stored, release, nil
		}
	default:
		// Another replica is fetching: wait for it to save, a little.
		wait := time.NewTimer(min(storeWait, c.cfg.fetchTimeout))
		defer wait.Stop()
		tick := time.NewTicker(storePoll)
		defer tick.Stop()
	poll:
		for {
			select {
			case <-tick.C:
				if raw, stored, ok := c.adoptable(ctx, key); ok {
					return raw, stored, release, nil
				}
			case <-wait.C:
				break poll
			}
		}
	}
	raw, err = c.call(ctx)
	return raw, time.Time{}, release, err
}

// save saves a token the cache fetched itself, for the other replicas.
func (c *Cache) save(ctx context.Context, tok Token) {
	if tok.Expiry.IsZero() {
		return // passed through uncached: nothing to share
	}
	if err := c.cfg.store.Save(ctx, c.storeKey(), tok.Value, tok.Expiry); err != nil {
		c.storeFailed("save", err)
	}
}

// adoptable returns the token saved under key if it is worth adopting: not
// the one the cache holds, and not yet due for refresh.
func (c *Cache) adoptable(ctx context.Context, key string) (string, time.Time, bool) {
	raw, expiry, err := c.cfg.store.Load(ctx, key)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			c.storeFailed("load", err)
		}
		return "", time.Time{}, false
	}
	now := c.now()
	if raw == "" || raw == c.load().token || !now.Before(expiry) {
		return "", time.Time{}, false
	}
	// Due for refresh by the lifetime its claims give (iat to exp), or, for
	// a token without iat, by what it has left.
	life := expiry.Sub(now)
	if cl, err := c.parser.claims(raw); err == nil && !cl.iat.IsZero() && cl.exp.After(cl.iat) {
		life = cl.exp.Sub(cl.iat)
	}
	if refreshAt, _ := schedule(expiry, life, c.cfg.headroom, c.cfg.refreshAhead, 1); !now.Before(refreshAt) {
		return "", time.Time{}, false
	}
	return raw, expiry, true
}

// storeFailed counts a failed store call and logs it, at most once a minute.
func (c *Cache) storeFailed(op string, err error) {
	c.storeErrors.Add(1)
	now := c.now()
	last := c.lastStoreWarn.Load()
	if last != 0 && now.UnixNano()-last < int64(time.Minute) {
		return
	}
	if c.lastStoreWarn.CompareAndSwap(last, now.UnixNano()) {
		c.log(slog.LevelWarn, "jwtcache: store failed; fetching without it", "op", op, "error", fmt.Sprint(err))
	}
}
