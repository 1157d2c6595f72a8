package provider

import (
	"context"
	"errors"
)

// GrantStore is the durable home of the refresh tokens a service holds on
// behalf of its users, one per key (a user, or a user's connection to an
// API). It is not a [jwtcache.Store], which is a cache that may lose what it
// holds: a refresh token that rotates exists nowhere else, and losing it, or
// overwriting it with an older one, makes the user authorize again.
//
// Every refresh token under a key has a version: 1 for the first, one more
// for each [GrantStore.Swap] and each [GrantStore.Delete]. A Swap from a
// version that is no longer the current one stores nothing, so that a
// replica can never overwrite a newer refresh token with an older one; and a
// version is never used twice under a key, not even after a Delete, so that
// a Swap prepared before a user disconnected cannot land on the grant of
// their next authorization. Nothing in a GrantStore expires (what a Delete
// leaves is a version without a token).
//
// A GrantStore must be safe for concurrent use, across the processes that
// share it, and its methods must return once their context ends. Refresh
// tokens are secrets: a GrantStore should keep them encrypted. Package
// redisstore implements one on Redis and package sqlstore on database/sql
// (PostgreSQL).
type GrantStore interface {
	// Load returns the refresh token stored under key and its version. When
	// there is none, it returns an error wrapping [jwtcache.ErrNotFound] and
	// the version to Swap from: 0 if key never had one, else the version its
	// Delete left. A stored token that cannot be read back is an error that
	// still gives its version, so that it can be replaced or deleted.
	Load(ctx context.Context, key string) (refreshToken string, version int64, err error)
	// Swap stores refreshToken under key if the version stored there is
	// still version (0: if key has none), atomically, and returns the new
	// version, version+1. If the version is another, it stores nothing and
	// returns an error wrapping [ErrGrantConflict].
	Swap(ctx context.Context, key string, version int64, refreshToken string) (newVersion int64, err error)
	// Delete deletes the refresh token stored under key if its version is
	// still version, atomically, leaving the version version+1 without a
	// token, and reports whether it did.
	Delete(ctx context.Context, key string, version int64) (deleted bool, err error)
}

// ErrGrantConflict is returned by [GrantStore.Swap] when the version it was
// given is no longer the current one: another replica stored a newer refresh
// token, or the user authorized again. The caller must load the current one.
var ErrGrantConflict = errors.New("provider: the stored refresh token has changed")
