package jwtcachetest

import (
	"context"
	"fmt"
	"sync"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// Grants is a [provider.GrantStore] in memory, for tests and examples of code
// that holds users' refresh tokens with a [provider.Delegated]. A service's
// GrantStore must outlive the process (package sqlstore's, redisstore's):
// a rotated refresh token kept only in memory is lost on a restart, and the
// user must authorize again.
//
// A Grants is safe for concurrent use. The zero Grants is empty and ready to
// use.
type Grants struct {
	mu sync.Mutex
	m  map[string]grant // guarded by mu
}

// grant is a stored refresh token and its version; a deleted one has the
// version its Delete left, and no token.
type grant struct {
	token   string
	version int64
}

// NewGrants returns an empty Grants.
func NewGrants() *Grants { return &Grants{} }

// Load implements [provider.GrantStore].
func (g *Grants) Load(ctx context.Context, key string) (string, int64, error) {
	if err := check(ctx, key); err != nil {
		return "", 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.m[key]
	if e.token == "" {
		return "", e.version, fmt.Errorf("jwtcachetest: Grants: %q: %w", key, jwtcache.ErrNotFound)
	}
	return e.token, e.version, nil
}

// Swap implements [provider.GrantStore].
func (g *Grants) Swap(ctx context.Context, key string, version int64, refreshToken string) (int64, error) {
	if err := check(ctx, key); err != nil {
		return 0, err
	}
	if refreshToken == "" || version < 0 {
		return 0, fmt.Errorf("%w: jwtcachetest: Grants.Swap: an empty refresh token, or a negative version", jwtcache.ErrInvalid)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key].version != version {
		return 0, fmt.Errorf("jwtcachetest: Grants: %q is at version %d, not %d: %w", key, g.m[key].version, version, provider.ErrGrantConflict)
	}
	if g.m == nil {
		g.m = map[string]grant{}
	}
	g.m[key] = grant{token: refreshToken, version: version + 1}
	return version + 1, nil
}

// Delete implements [provider.GrantStore].
func (g *Grants) Delete(ctx context.Context, key string, version int64) (bool, error) {
	if err := check(ctx, key); err != nil {
		return false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[key]; e.token == "" || e.version != version {
		return false, nil
	}
	g.m[key] = grant{version: version + 1}
	return true, nil
}

// check returns the error of a call on ctx for key, if it has one.
func check(ctx context.Context, key string) error {
	if key == "" {
		return fmt.Errorf("%w: jwtcachetest: Grants: an empty key", jwtcache.ErrInvalid)
	}
	return ctx.Err()
}
