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
	// refreshing counts the refreshes under way, which Close waits for.
	refreshing sync.WaitGroup

	refreshes, rotations, storeFailures, refused atomic.Uint64
}

// pendingGrant is a rotated refresh token not yet stored: it replaces the
// version from, which the GrantStore still holds (spent).
type pendingGrant struct {
	token string
	from  int64
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
	d.mu.Lock()
	delete(d.pending, key)
	d.mu.Unlock()
	// Three tries: only a replica that stores a rotation between the load
	// and the swap makes one fail, and it stores at most one per refresh.
	var err error
	for try := 0; try < 3; try++ {
		var v int64
		if _, v, err = d.grants.Load(ctx, key); errors.Is(err, jwtcache.ErrNotFound) {
			v, err = 0, nil
		}
		if err != nil {
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
	d.m.Invalidate(key)
	return nil
}

// Forget deletes the user key's refresh token, if any, and the user's cached
// access token: the user disconnected. It does not revoke the grant at the
// provider.
func (d *Delegated) Forget(ctx context.Context, key string) error {
	d.mu.Lock()
	delete(d.pending, key)
	d.mu.Unlock()
	d.m.Delete(key)
	_, v, err := d.grants.Load(ctx, key)
	if errors.Is(err, jwtcache.ErrNotFound) {
		return nil
	}
	if err == nil {
		_, err = d.grants.Delete(ctx, key, v)
	}
	if err != nil {
		d.storeFailures.Add(1)
		return fmt.Errorf("provider: Forget %q: %w", key, err)
	}
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
// process exits): it waits for the refreshes under way, then stores the
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
			d.flushKey(ctx, k)
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

// issue is the map's token function: the refresh of key's access token, on
// the fetch's context, under the fleet's lease.
func (d *Delegated) issue(ctx context.Context, key string) (jwtcache.Issued, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return jwtcache.Issued{}, fmt.Errorf("provider: refresh %q: %w", key, ErrClosed)
	}
	d.refreshing.Add(1)
	d.mu.Unlock()
	defer d.refreshing.Done()
	token, version, err := d.current(ctx, key)
	if err != nil {
		return jwtcache.Issued{}, err
	}
	got, err := d.client.Refresh(ctx, token)
	if errors.Is(err, ErrInvalidGrant) {
		d.refusedGrant(ctx, key, version, err)
		return jwtcache.Issued{}, fmt.Errorf("provider: refresh %q: %w", key, err)
	}
	if err != nil {
		return jwtcache.Issued{}, fmt.Errorf("provider: refresh %q: %w", key, err)
	}
	d.refreshes.Add(1)
	if got.Rotated {
		d.rotations.Add(1)
		d.keep(ctx, key, version, got.RefreshToken)
	}
	return got.Issued, nil
}

// current returns key's refresh token to refresh with, and the version of
// the GrantStore's it replaces: the one kept in memory, if the GrantStore
// still cannot take it, else the GrantStore's.
func (d *Delegated) current(ctx context.Context, key string) (string, int64, error) {
	if p, stored := d.flushKey(ctx, key); p != nil && !stored {
		return p.token, p.from, nil
	}
	sctx, cancel := context.WithTimeout(ctx, delegatedStoreTime)
	token, version, err := d.grants.Load(sctx, key)
	cancel()
	if errors.Is(err, jwtcache.ErrNotFound) {
		return "", 0, fmt.Errorf("%w: no refresh token is stored for %q", ErrInvalidGrant, key)
	}
	if err != nil {
		d.storeFailures.Add(1)
		return "", 0, fmt.Errorf("provider: refresh %q: load the refresh token: %w", key, err)
	}
	return token, version, nil
}

// keep stores token, key's rotated refresh token, over version from; if the
// GrantStore fails, it keeps token in memory, to be stored by the flusher.
func (d *Delegated) keep(ctx context.Context, key string, from int64, token string) {
	p := &pendingGrant{token: token, from: from}
	d.mu.Lock()
	d.pending[key] = p
	d.mu.Unlock()
	if _, stored := d.flushKey(ctx, key); stored {
		return
	}
	d.mu.Lock()
	start := !d.flushing && len(d.pending) > 0
	d.flushing = d.flushing || start
	d.mu.Unlock()
	if start {
		go d.flusher()
	}
}

// flushKey stores key's pending refresh token, if it has one, and reports
// it, and whether it is now stored (or superseded). Calls for one key are
// serialized by the lease or by the flusher's order, and a swap that lost
// the race finds the version moved.
func (d *Delegated) flushKey(ctx context.Context, key string) (*pendingGrant, bool) {
	d.mu.Lock()
	p := d.pending[key]
	d.mu.Unlock()
	if p == nil {
		return nil, true
	}
	sctx, cancel := engine.Detach(ctx, delegatedStoreTime)
	_, err := d.grants.Swap(sctx, key, p.from, p.token)
	cancel()
	log := d.client.cfg.log()
	switch {
	case err == nil:
		d.drop(key, p)
		log.Debug("provider: rotated refresh token stored", "key", key)
		return p, true
	case errors.Is(err, ErrGrantConflict) && d.storedAlready(ctx, key, p):
		// An earlier swap that failed (timed out, say) was applied.
		d.drop(key, p)
		log.Debug("provider: rotated refresh token stored", "key", key)
		return p, true
	case errors.Is(err, ErrGrantConflict):
		// The user authorized again meanwhile (or a replica refreshed
		// without the lease): the stored grant wins.
		d.drop(key, p)
		log.Error("provider: a rotated refresh token was dropped: the stored one changed meanwhile (authorized again, or refreshed by a replica without the lease)", "key", key)
		return p, true
	}
	d.storeFailures.Add(1)
	log.Error("provider: a rotated refresh token could not be stored; it is kept in memory and stored once the GrantStore answers", "key", key, "error", err.Error())
	return p, false
}

// storedAlready reports whether the GrantStore holds p's token as key's, in
// the version after p's: whether a swap that returned an error had been
// applied nonetheless.
func (d *Delegated) storedAlready(ctx context.Context, key string, p *pendingGrant) bool {
	sctx, cancel := engine.Detach(ctx, delegatedStoreTime)
	defer cancel()
	token, version, err := d.grants.Load(sctx, key)
	return err == nil && version == p.from+1 && token == p.token
}

// drop forgets p, key's pending token, unless another replaced it.
func (d *Delegated) drop(key string, p *pendingGrant) {
	d.mu.Lock()
	if d.pending[key] == p {
		delete(d.pending, key)
	}
	d.mu.Unlock()
}

// flusher stores the pending refresh tokens, with backoff, until there are
// none.
func (d *Delegated) flusher() {
	for n := 1; ; n++ {
		time.Sleep(engine.RetryDelay(n, time.Hour, 100*time.Millisecond, 5*time.Second, rand.Float64()))
		d.mu.Lock()
		keys := make([]string, 0, len(d.pending))
		for k := range d.pending {
			keys = append(keys, k)
		}
		d.mu.Unlock()
		for _, k := range keys {
			d.flushKey(context.Background(), k)
		}
		d.mu.Lock()
		if len(d.pending) == 0 {
			d.flushing = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
	}
}

// refusedGrant deletes key's refused grant from the GrantStore, if it is
// still the one refused, so that no replica asks the provider again.
func (d *Delegated) refusedGrant(ctx context.Context, key string, version int64, err error) {
	d.refused.Add(1)
	d.mu.Lock()
	delete(d.pending, key)
	d.mu.Unlock()
	sctx, cancel := engine.Detach(ctx, delegatedStoreTime)
	defer cancel()
	if _, derr := d.grants.Delete(sctx, key, version); derr != nil {
		d.storeFailures.Add(1)
	}
	d.client.cfg.log().Warn("provider: the provider refused a user's grant; the user must authorize again", "key", key, "error", err.Error())
}

// log returns the logger of what a Delegated logs.
func (c *config) log() *slog.Logger {
	if c.logger != nil {
		return c.logger
	}
	return slog.Default()
}
