package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// Delegated caches the access tokens a service holds on behalf of its users,
// one per key (a user, or a user's connection to an API), each obtained with
// the user's refresh token, which a [GrantStore] keeps. The application
// obtains a user's first tokens itself (an authorization code exchange, with
// x/oauth2 or otherwise) and hands the refresh token to [Delegated.Authorize];
// from then on, [Delegated.Token] (or a [jwtcache.Transport] over
// [Delegated.Map]) gives the user's access token, refreshed ahead of expiry
// as a [jwtcache.Cache] refreshes any token.
//
// A refresh that rotates the refresh token (OAuth 2.1; Okta, Auth0, Entra ID,
// Keycloak and oidc-provider can enforce it) spends the old one, and a
// provider that sees a spent one again takes it for theft and revokes the
// whole grant. So each refresh
//   - reads the current refresh token from the GrantStore, never a copy
//     in memory that another replica, or this one before a restart, may have
//     spent;
//   - runs only while this replica holds the fleet's lease for the key, when
//     the map has a [jwtcache.SharedStore] ([jwtcache.ExclusiveFetch] is
//     always on: a store that fails fails the refresh, it does not let two
//     replicas refresh at once);
//   - stores the rotated refresh token (compare-and-swap: never over a newer
//     one) before it hands out the access token.
//
// A rotated refresh token that cannot be stored (the GrantStore is down) is
// kept in memory and stored as soon as the GrantStore answers, tried again
// with backoff, never dropped; meanwhile this replica refreshes with it, and
// the failure is logged at Error and counted ([DelegatedStats]). A refresh
// whose response was lost is made again once (see [Client.Refresh]). A grant
// the provider refuses (invalid_grant: expired, revoked, reused) is deleted
// from the GrantStore, and the key's calls fail with an error matching
// [ErrInvalidGrant], without another request to the provider, until the
// user authorizes again; other keys are not affected.
//
// Replicas that share a GrantStore must share a [jwtcache.SharedStore] too
// (package redisstore's): without one, nothing stops two of them refreshing
// one user at once. Access tokens go through that store as a CacheMap's do.
//
// A replica that shuts down calls [Delegated.Close], which lets the refreshes
// under way finish and stores what is kept in memory. A process killed
// between a refresh's response and its store loses the rotated refresh
// token: with a provider that allows no reuse of the previous one (Okta's
// and Auth0's grace periods do), the user must authorize again.
//
// A Delegated is safe for concurrent use. Its goroutine, which stores the
// refresh tokens kept in memory, runs only while there are any.
type Delegated struct {
	client *Client
	grants GrantStore
	m      *jwtcache.CacheMap

	mu sync.Mutex // guards pending, flushing and closed, and orders refreshes' Add with Close's Wait
	// pending holds, by key, the rotated refresh tokens not stored yet.
	pending  map[string]*pendingGrant
	flushing bool // the goroutine that stores them runs
	closed   bool
	// refreshing counts the refreshes under way, until their fetches end,
	// which Close waits for.
	refreshing sync.WaitGroup

	refreshes, rotations, storeFailures, refused atomic.Uint64
}

// DelegatedStats are a Delegated's counters since it was made.
type DelegatedStats struct {
	// Refreshes counts the refresh token grants that succeeded; Rotations
	// those that rotated the refresh token.
	Refreshes, Rotations uint64
	// StoreFailures counts the GrantStore calls that failed: a failed store
	// of a rotated refresh token, kept in memory meanwhile, among them.
	StoreFailures uint64
	// Refused counts the grants the provider refused (invalid_grant).
	Refused uint64
	// Pending is how many rotated refresh tokens are kept in memory now,
	// waiting for the GrantStore. Zero is the steady state.
	Pending int
}

// delegatedStoreTime bounds each GrantStore call of a refresh, within the
// fetch's context: a refresh token that was spent must be stored even when
// the refresh took the fetch's whole time.
const delegatedStoreTime = 2 * time.Second

// NewDelegated returns the cache of the access tokens that client obtains
// with the refresh tokens grants holds, for the client's [DefaultRequest]
// (its scopes and resources). opts configure its [jwtcache.CacheMap]: a
// [jwtcache.SharedStore] and a [jwtcache.MapName] for a fleet, a logger, the
// bounds of the map; a token function among them is replaced by the
// Delegated's own. A nil client or grants is an error wrapping
// [jwtcache.ErrInvalid].
func NewDelegated(client *Client, grants GrantStore, opts ...jwtcache.MapOption) (*Delegated, error) {
	switch {
	case client == nil:
		return nil, fmt.Errorf("%w: provider: NewDelegated: nil Client", jwtcache.ErrInvalid)
	case grants == nil:
		return nil, fmt.Errorf("%w: provider: NewDelegated: nil GrantStore", jwtcache.ErrInvalid)
	}
	d := &Delegated{client: client, grants: grants, pending: map[string]*pendingGrant{}}
	opts = append(opts[:len(opts):len(opts)], jwtcache.MapIssueFunction(d.issue), jwtcache.ExclusiveFetch())
	d.m = jwtcache.NewCacheMap(opts...)
	return d, nil
}

// Token returns the access token of the user key, as
// [jwtcache.CacheMap.EnsureToken] does: from the cache while it is fresh,
// refreshed with the user's refresh token otherwise. An error matching
// [ErrInvalidGrant] says the user must authorize again.
func (d *Delegated) Token(ctx context.Context, key string) (string, error) {
	return d.m.EnsureToken(ctx, key)
}

// Map returns the CacheMap of the access tokens, keyed by user, for a
// [jwtcache.NewMapTransport] (with [jwtcache.WithKey] on each request's
// context, say) or its [jwtcache.CacheMap.Stats].
func (d *Delegated) Map() *jwtcache.CacheMap { return d.m }

// Authorize stores refreshToken as the user key's, replacing any it had (the
// user authorized again), and drops the user's cached access token, which
// came from the old grant. The application calls it with the refresh token
// of the user's first tokens, from its authorization code exchange. An empty
// key or refresh token is an error wrapping [jwtcache.ErrInvalid].
func (d *Delegated) Authorize(ctx context.Context, key, refreshToken string) error {
	if key == "" || refreshToken == "" {
		return fmt.Errorf("%w: provider: Authorize: an empty key or refresh token", jwtcache.ErrInvalid)
	}
	// Three tries: only a replica that stores a rotation between the load
	// and the swap makes one fail, and it stores at most one per refresh.
	var err error
	for try := 0; try < 3; try++ {
		var v int64
		// A stored token that cannot be read back still gives its version:
		// authorizing again is the way out.
		if _, v, err = d.grants.Load(ctx, key); err != nil && !errors.Is(err, jwtcache.ErrNotFound) && v == 0 {
			break
		}
		if _, err = d.grants.Swap(ctx, key, v, refreshToken); !errors.Is(err, ErrGrantConflict) {
			break
		}
	}
	if err != nil {
		d.storeFailures.Add(1)
		return fmt.Errorf("provider: Authorize %q: %w", key, err)
	}
	// A rotated token of the old grant, kept in memory, is superseded now
	// (and would find the version moved if it were not).
	d.forgetPending(key)
	d.m.Invalidate(key)
	return nil
}

// Forget deletes the user key's refresh token, if any, and drops the user's
// cached access token: the user disconnected. It does not revoke the grant
// at the provider, and access tokens already issued (cached by other
// replicas, or in the [jwtcache.SharedStore]) live until they expire: revoke
// the grant at the provider to end them at once.
func (d *Delegated) Forget(ctx context.Context, key string) error {
	// Three tries, as Authorize's: a rotation stored between the load and
	// the delete moves the version.
	var err error
	deleted := false
	for try := 0; try < 3 && !deleted; try++ {
		var v int64
		_, v, err = d.grants.Load(ctx, key)
		if errors.Is(err, jwtcache.ErrNotFound) {
			err, deleted = nil, true
			break
		}
		if err != nil && v == 0 {
			break
		}
		if deleted, err = d.grants.Delete(ctx, key, v); err != nil {
			break
		}
	}
	if err == nil && !deleted {
		err = errors.New("its refresh token kept changing")
	}
	if err != nil {
		d.storeFailures.Add(1)
		return fmt.Errorf("provider: Forget %q: %w", key, err)
	}
	d.forgetPending(key)
	d.m.Invalidate(key)
	return nil
}

// Stats returns the Delegated's counters.
func (d *Delegated) Stats() DelegatedStats {
	d.mu.Lock()
	n := len(d.pending)
	d.mu.Unlock()
	return DelegatedStats{
		Refreshes:     d.refreshes.Load(),
		Rotations:     d.rotations.Load(),
		StoreFailures: d.storeFailures.Load(),
		Refused:       d.refused.Load(),
		Pending:       n,
	}
}

// ErrClosed is the error of a refresh asked of a [Delegated] after
// [Delegated.Close].
var ErrClosed = errors.New("provider: the Delegated is closed")

// Close stops d's refreshes, for a replica's shutdown (on SIGTERM, before the
// process exits): it waits for the refreshes under way (and their access
// tokens shared, their leases released), then stores the
// rotated refresh tokens it still keeps in memory, trying until ctx ends. A
// refresh token in memory is the only copy of the user's grant, lost when
// the process ends. It returns an error if ctx ended first, and says how
// many were lost; nil once all are stored. After Close, access tokens still
// cached are served, and a call that needs a refresh fails with [ErrClosed].
// Close may be called more than once.
func (d *Delegated) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.refreshing.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("provider: Delegated.Close: refreshes still under way: %w", ctx.Err())
	}
	for n := 1; ; n++ {
		d.mu.Lock()
		keys := make([]string, 0, len(d.pending))
		for k := range d.pending {
			keys = append(keys, k)
		}
		d.mu.Unlock()
		if len(keys) == 0 {
			return nil
		}
		for _, k := range keys {
			if ctx.Err() != nil {
				break
			}
			d.flushKey(ctx, k, true)
		}
		if d.Stats().Pending == 0 {
			return nil
		}
		select {
		case <-time.After(engine.RetryDelay(n, time.Hour, 100*time.Millisecond, time.Second, rand.Float64())):
		case <-ctx.Done():
			lost := d.Stats().Pending
			d.client.cfg.log().Error("provider: Delegated.Close: rotated refresh tokens could not be stored, and are lost: those users must authorize again", "lost", lost)
			return fmt.Errorf("provider: Delegated.Close: %d rotated refresh tokens not stored: %w", lost, ctx.Err())
		}
	}
}

// log returns the logger of what a Delegated logs.
func (c *config) log() *slog.Logger {
	if c.logger != nil {
		return c.logger
	}
	return slog.Default()
}
