package verify

import "errors"

// The errors of [Verifier.Verify], each wrapped with the reason (the claim or
// header at fault, and the values it was checked against). No error of this
// package carries the text of a token: only a header's kid and alg, and a
// claim's iss, and a JSON member name found twice, quoted and cut short, may
// appear in one, so that logging an error never logs a credential.
var (
	// ErrMalformed is returned for a token that is not a JWS in compact form
	// with one signature and a JSON object for header and claims: one longer
	// than [MaxTokenSize], with a character outside base64url, a header
	// without alg or kid, a crit header, a typ other than [Type] asks for, a
	// header or claims with a member name twice, a claim of the wrong JSON
	// type, or no exp claim. [BearerToken] returns it
	// for an Authorization header that is not one Bearer credential.
	ErrMalformed = errors.New("verify: malformed token")

	// ErrAlgorithm is returned for a token whose alg is not one of
	// [Algorithms]: "none" and the HMAC algorithms always are not.
	ErrAlgorithm = errors.New("verify: algorithm not allowed")

	// ErrType is returned for a token whose typ header is not the [Type]
	// asked for (an ID token where an access token is wanted, say).
	ErrType = errors.New("verify: wrong token type")

	// ErrUnknownKey is the Verifier's error, wrapping the [KeySource]'s, when
	// the key source has no key for the token's kid (a KeySet's error then
	// wraps [ErrKeySetUnknownKID]), and also when the key it has cannot
	// verify the token's algorithm: its type, curve, size, alg, use or
	// key_ops do not fit. When the keys cannot be had at all (the key set's
	// server is down, or a refresh for a new kid is not allowed yet), the
	// error also wraps [ErrKeySetStale]: match that first, and answer 503
	// (the token may be good) rather than 401, as the [Middleware] does. A
	// cancelled context stays errors.Is(err, context.Canceled).
	ErrUnknownKey = errors.New("verify: no usable key")

	// ErrSignature is returned for a token whose signature does not verify
	// with its key.
	ErrSignature = errors.New("verify: bad signature")

	// ErrIssuer is returned for a token whose iss claim is missing or is not
	// exactly the [Issuer].
	ErrIssuer = errors.New("verify: wrong issuer")

	// ErrAudience is returned for a token whose aud claim is missing or names
	// none of the [Audience] values.
	ErrAudience = errors.New("verify: wrong audience")

	// ErrExpired is returned for a token whose exp, plus the [Leeway], has
	// passed.
	ErrExpired = errors.New("verify: token expired")

	// ErrNotYetValid is returned for a token whose nbf, or iat, less the
	// [Leeway], is still to come.
	ErrNotYetValid = errors.New("verify: token not yet valid")

	// ErrNoToken is returned by [BearerToken] for a request without Bearer
	// credentials: no Authorization header, or one of another scheme.
	ErrNoToken = errors.New("verify: no bearer token")
)
