package jwtcache

import "errors"

// ErrNoTokenFunction is returned by [Cache.EnsureToken] when the cache was built
// without a [TokenFunction].
var ErrNoTokenFunction = errors.New("jwtcache: no token function")

// ErrEmptyToken is returned when the token function returns an empty token and
// a nil error.
var ErrEmptyToken = errors.New("jwtcache: token function returned an empty token")

// ErrUnparsable is returned, wrapping the parser's error, when the token
// function returns a token that cannot be parsed (or, with [ParseOptions] that
// verify signatures, cannot be verified) and [RejectUnparsable] is set.
var ErrUnparsable = errors.New("jwtcache: unparsable token")

// ErrExpired is returned when the token function returns a token that has
// already expired on arrival. Such a token is never handed out.
var ErrExpired = errors.New("jwtcache: token expired on arrival")

// ErrPanic is returned when the token function panics. The panic is recovered
// and the cache stays usable.
var ErrPanic = errors.New("jwtcache: token function panicked")

// ErrBackoff is returned, wrapping the last fetch error, to callers that have no
// unexpired token while the cache backs off after a failed fetch. The token
// function is not called again before the backoff ends.
var ErrBackoff = errors.New("jwtcache: backing off after a failed fetch")

// ErrEmptyKey is returned by [CacheMap] methods given an empty key, which
// would otherwise be a silent entry shared by every caller that forgot one.
var ErrEmptyKey = errors.New("jwtcache: empty key")
