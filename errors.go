package jwtcache

import (
	"errors"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
)

// The errors of this package, each to match with [errors.Is]. Errors from a
// token function, a [Store] or a server come back wrapped in them or beside
// them, never holding a token.
var (
	// ErrInvalid is what an error for a value that cannot be meant wraps: an
	// option out of its range, a nil argument. It names the option or the
	// argument and the value. Constructors that return errors return it;
	// the others (NewCache, NewCacheMap, NewTransport) log it at once and
	// return it from every call, so that a mistake is loud, never deep in a
	// request.
	ErrInvalid = bounds.ErrInvalid

	// ErrNoTokenFunction is returned by every call of a [Cache] built without a
	// [TokenFunction], or of a [CacheMap] built without a [MapTokenFunction].
	ErrNoTokenFunction = errors.New("jwtcache: no token function")

	// ErrNoName is returned by every call of a [Cache] (or a [CacheMap]) that has
	// a [SharedStore] but no [Name] (or [MapName]): its tokens would share the
	// store's default namespace with those of every other unnamed cache, and a
	// token meant for one audience would be sent to another.
	ErrNoName = errors.New("jwtcache: a cache with a shared store needs a Name")

	// ErrEmptyToken is returned when the token function returns an empty token and
	// a nil error.
	ErrEmptyToken = errors.New("jwtcache: token function returned an empty token")

	// ErrUnparsable is returned, with the parser's reason, when the token function
	// returns a token that cannot be parsed and [RejectUnparsable] is set, or one
	// that fails the verification or validation that [ParseOptions] ask for.
	ErrUnparsable = errors.New("jwtcache: unparsable token")

	// ErrExpired is returned when the token function returns a token that has
	// already expired on arrival. Such a token is never handed out.
	ErrExpired = errors.New("jwtcache: token expired on arrival")

	// ErrPanic is returned when a fetch panics: in the token function, in the
	// parsing of what it returned, or in a [Store]. The panic is recovered and the
	// cache stays usable.
	ErrPanic = errors.New("jwtcache: panic in a fetch")

	// ErrBackoff is returned, wrapping the last fetch error, to callers that have no
	// unexpired token while the cache backs off after a failed fetch. The token
	// function is not called again before the backoff ends.
	ErrBackoff = errors.New("jwtcache: backing off after a failed fetch")

	// ErrEmptyKey is returned by [CacheMap] methods given an empty key, which
	// would otherwise be a silent entry shared by every caller that forgot one.
	ErrEmptyKey = errors.New("jwtcache: empty key")

	// ErrRejected is the error a cache records, and [ErrBackoff] wraps, after
	// servers rejected two of its tokens in a row, each just after it arrived
	// (through [Cache.InvalidateToken], as a [Transport] does on a 401): the
	// provider issues tokens that some server refuses (a wrong audience, a route
	// misconfigured), and fetching one per refused request would only hammer it.
	// The cache keeps the last token, served (other servers may take it) but no
	// longer fresh, and fetches again after the backoff, as after a failed fetch.
	// A token rejected later in its life (a revocation), or one that lives until
	// its refresh, ends the streak: the next rejection is replaced at once.
	ErrRejected = errors.New("jwtcache: servers rejected the tokens as they arrived")

	// ErrNotFound is what a [Store]'s Load wraps when it holds no token for a
	// key. The cache takes any other error from Load (a value the store cannot
	// read back, say) as a miss too, but logs and counts it as a store failure.
	ErrNotFound = errors.New("jwtcache: no token in the store")

	// ErrInsecureRequest is the error of a [Transport] asked to put a token on a
	// request that is not HTTPS to a host other than a loopback one: the token
	// would cross the network in the clear. [InsecureAllowPlainHTTP] allows it.
	ErrInsecureRequest = errors.New("jwtcache: a token is sent over HTTPS only (or plain HTTP to a loopback host)")

	// ErrInsufficientScope is what a [ChallengeError] is, with [errors.Is], when
	// the server said the token lacks a scope it needs (RFC 6750's
	// insufficient_scope): a new token of the same request would lack it too, so
	// the transport returns this error instead of fetching one.
	ErrInsufficientScope = errors.New("jwtcache: the token's scope is insufficient")

	// ErrInsufficientUserAuthentication is what a [ChallengeError] is, with
	// [errors.Is], when the server asked for a stronger or more recent
	// authentication of a user (RFC 9470's insufficient_user_authentication),
	// which no token function of a cache can perform.
	ErrInsufficientUserAuthentication = errors.New("jwtcache: the server asks for a stronger user authentication")

	// ErrNotImplemented is [ErrNoTokenFunction], under the name jwtcache-go gave
	// the error of a cache built without a token function. It is the same value,
	// and returned unwrapped, so both == and [errors.Is] match it.
	//
	// Deprecated: use [ErrNoTokenFunction].
	ErrNotImplemented = ErrNoTokenFunction
)
