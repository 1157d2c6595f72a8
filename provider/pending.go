package provider

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// A Delegated's refresh, and the rotated refresh tokens it keeps in memory
// while the GrantStore cannot take them.

// pendingGrant is a rotated refresh token not yet stored. It replaces the
// version from, which the GrantStore held when the refresh began; base is
// the token that refresh spent: the one stored at from, or another pending
// one, which a racing flush may have stored since, at from+1.
type pendingGrant struct {
	token, base string
	from        int64
}

// flushed is what became of a pending token.
type flushed int

const (
	flushNone       flushed = iota // there was none
	flushStored                    // it is stored
	flushSuperseded                // the stored grant changed under it: it is dropped
	flushFailed                    // the GrantStore failed: it is still pending
)

// refreshReserve is the part of a fetch's time a refresh leaves for storing
// its rotated refresh token (a swap, and a load when it conflicts): within
// the fetch, and so within the fleet's lease.
const refreshReserve = 2 * delegatedStoreTime

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
	// Done when the fetch ends, its context with it: after its access token
	// is saved to the shared store and the fleet's lease released, which
	// Close waits for too.
	context.AfterFunc(ctx, d.refreshing.Done)

	rctx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		rctx, cancel = context.WithDeadline(ctx, deadline.Add(-min(refreshReserve, time.Until(deadline)/2)))
	}
	defer cancel()
	// Twice at most: a refresh whose rotated token finds the user authorized
	// again meanwhile got the old grant's access token; the second refreshes
	// with the new grant.
	for try := 1; ; try++ {
		base, version, err := d.current(ctx, key)
		if err != nil {
			return jwtcache.Issued{}, err
		}
		got, err := d.client.Refresh(rctx, base)
		if errors.Is(err, ErrInvalidGrant) {
			d.refusedGrant(ctx, key, version, err)
		}
		if err != nil {
			return jwtcache.Issued{}, fmt.Errorf("provider: refresh %q: %w", key, err)
		}
		d.refreshes.Add(1)
		if !got.Rotated {
			return got.Issued, nil
		}
		d.rotations.Add(1)
		if d.keep(ctx, key, version, base, got.RefreshToken) != flushSuperseded {
			return got.Issued, nil
		}
		if try == 2 {
			return jwtcache.Issued{}, fmt.Errorf("provider: refresh %q: the user's grant changed during the refresh, twice", key)
		}
	}
}

// current returns key's refresh token to refresh with, and the version of
// the GrantStore's it replaces: the one kept in memory, if the GrantStore
// still cannot take it, else the GrantStore's.
func (d *Delegated) current(ctx context.Context, key string) (string, int64, error) {
	if p, f := d.flushKey(ctx, key, false); f == flushFailed {
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

// keep stores token, key's rotated refresh token, refreshed from base over
// version from; if the GrantStore fails, it keeps token in memory, to be
// stored by the flusher. It reports what became of token.
func (d *Delegated) keep(ctx context.Context, key string, from int64, base, token string) flushed {
	p := &pendingGrant{token: token, base: base, from: from}
	d.mu.Lock()
	d.pending[key] = p
	d.mu.Unlock()
	_, f := d.flushKey(ctx, key, false)
	if f != flushFailed {
		return f
	}
	d.mu.Lock()
	start := !d.flushing && len(d.pending) > 0
	d.flushing = d.flushing || start
	d.mu.Unlock()
	if start {
		go d.flusher()
	}
	return f
}

// flushKey stores key's pending refresh token, if it has one, and reports
// it and what became of it. Its GrantStore calls are detached from ctx's
// cancellation (a spent token's successor must be stored), unless bounded.
func (d *Delegated) flushKey(ctx context.Context, key string, bounded bool) (*pendingGrant, flushed) {
	d.mu.Lock()
	p := d.pending[key]
	d.mu.Unlock()
	if p == nil {
		return nil, flushNone
	}
	sctx, cancel := engine.Detach(ctx, 2*delegatedStoreTime)
	if bounded {
		sctx, cancel = context.WithTimeout(ctx, 2*delegatedStoreTime)
	}
	f, err := d.store(sctx, key, p)
	cancel()
	log := d.client.cfg.log()
	switch f {
	case flushStored:
		d.drop(key, p)
		log.Debug("provider: rotated refresh token stored", "key", key)
	case flushSuperseded:
		if d.drop(key, p) {
			log.Error("provider: a rotated refresh token was dropped: the stored grant changed meanwhile (the user authorized again or disconnected, or a replica refreshed without the lease)", "key", key)
		}
	default:
		d.storeFailures.Add(1)
		log.Error("provider: a rotated refresh token could not be stored; it is kept in memory and stored once the GrantStore answers", "key", key, "error", err.Error())
	}
	return p, f
}

// store swaps p in as key's refresh token. A conflict is looked into: p may
// be stored already (a swap that failed after it was applied), or p's base
// may have been stored since p's refresh began (a pending token of this
// replica's, by a flush that raced this one), and p then goes on top of it;
// anything else stored is a grant p must not overwrite.
func (d *Delegated) store(ctx context.Context, key string, p *pendingGrant) (flushed, error) {
	_, err := d.grants.Swap(ctx, key, p.from, p.token)
	if err == nil {
		return flushStored, nil
	}
	if !errors.Is(err, ErrGrantConflict) {
		return flushFailed, err
	}
	token, version, err := d.grants.Load(ctx, key)
	switch {
	case errors.Is(err, jwtcache.ErrNotFound):
		return flushSuperseded, nil
	case err != nil:
		return flushFailed, err
	case token == p.token:
		return flushStored, nil
	case token != p.base:
		return flushSuperseded, nil
	}
	if _, err = d.grants.Swap(ctx, key, version, p.token); err == nil {
		return flushStored, nil
	} else if errors.Is(err, ErrGrantConflict) {
		return flushSuperseded, nil
	}
	return flushFailed, err
}

// drop forgets p, key's pending token, unless another replaced it, and
// reports whether it did.
func (d *Delegated) drop(key string, p *pendingGrant) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[key] != p {
		return false
	}
	delete(d.pending, key)
	return true
}

// forgetPending forgets key's pending token, if any: the grant it belonged to
// is replaced, deleted or refused.
func (d *Delegated) forgetPending(key string) {
	d.mu.Lock()
	delete(d.pending, key)
	d.mu.Unlock()
}

// flusher stores the pending refresh tokens, with backoff (1 s at most: until
// a token is stored, the other replicas would refresh with the spent one),
// until there are none.
func (d *Delegated) flusher() {
	for n := 1; ; n++ {
		time.Sleep(engine.RetryDelay(n, time.Hour, 100*time.Millisecond, time.Second, rand.Float64()))
		d.mu.Lock()
		keys := make([]string, 0, len(d.pending))
		for k := range d.pending {
			keys = append(keys, k)
		}
		d.mu.Unlock()
		for _, k := range keys {
			d.flushKey(context.Background(), k, false)
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
	d.forgetPending(key)
	sctx, cancel := engine.Detach(ctx, delegatedStoreTime)
	defer cancel()
	if _, derr := d.grants.Delete(sctx, key, version); derr != nil {
		d.storeFailures.Add(1)
	}
	d.client.cfg.log().Warn("provider: the provider refused a user's grant; the user must authorize again", "key", key, "error", err.Error())
}
