package jwtcache

import "errors"

// ErrNoTokenFunction is returned by every call of a [Cache] built without a
// [TokenFunction], or of a [CacheMap] built without a [MapTokenFunction].
var ErrNoTokenFunction = errors.New("jwtcache: no token function")

// ErrNoName is returned by every call of a [Cache] (or a [CacheMap]) that has
// a [SharedStore] but no [Name] (or [MapName]): its tokens would share the
// store's default namespace with those of every other unnamed cache, and a
// token meant for one audience would be sent to another.
var ErrNoName = errors.New("jwtcache: a cache with a shared store needs a Name")

// ErrEmptyToken is returned when the token function returns an empty token and
// a nil error.
var ErrEmptyToken = errors.New("jwtcache: token function returned an empty token")

// ErrUnparsable is returned, with the parser's reason, when the token function
// returns a token that cannot be parsed and [RejectUnparsable] is set, or one
// that fails the verification or validation that [ParseOptions] ask for.
var ErrUnparsable = errors.New("jwtcache: unparsable token")

// ErrExpired is returned when the token function returns a token that has
// already expired on arrival. Such a token is never handed out.
var ErrExpired = errors.New("jwtcache: token expired on arrival")

// ErrPanic is returned when a fetch panics: in the token function, in the
// parsing of what it returned, or in a [Store]. The panic is recovered and the
// cache stays usable.
var ErrPanic = errors.New("jwtcache: panic in a fetch")

// ErrBackoff is returned, wrapping the last fetch error, to callers that have no
// unexpired token while the cache backs off after a failed fetch. The token
// function is not called again before the backoff ends.
var ErrBackoff = errors.New("jwtcache: backing off after a failed fetch")

// ErrEmptyKey is returned by [CacheMap] methods given an empty key, which
// would otherwise be a silent entry shared by every caller that forgot one.
var ErrEmptyKey = errors.New("jwtcache: empty key")

// ErrRejected is the error a cache records, and [ErrBackoff] wraps, after
// servers rejected two of its tokens in a row, each just after it arrived
// (through [Cache.InvalidateToken], as a [Transport] does on a 401): the
// provider issues tokens that some server refuses (a wrong audience, a route
// misconfigured), and fetching one per refused request would only hammer it.
// The cache keeps the last token, served (other servers may take it) but no
// longer fresh, and fetches again after the backoff, as after a failed fetch.
// A token rejected later in its life (a revocation), or one that lives until
// its refresh, ends the streak: the next rejection is replaced at once.
var ErrRejected = errors.New("jwtcache: servers rejected the tokens as they arrived")
