package jwtcache

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

// claims are what the cache reads from a token. A zero time means the claim is
// absent.
type claims struct {
	exp time.Time
	iat time.Time
	jti string
}

// parseOptions returns the options the cache hands to jwt.Parse: the user's,
// behind defaults that skip verification when no options were given and skip
// claim validation unless the user asked for some (see [ParseOptions]).
func parseOptions(user []jwt.ParseOption) []jwt.ParseOption {
	if len(user) == 0 {
		return []jwt.ParseOption{jwt.WithVerify(false), jwt.WithValidate(false)}
	}
	for _, o := range user {
		if _, ok := o.(jwt.ValidateOption); ok {
			return user
		}
	}
	// Prepended, so that a jwt.WithValidate(true) of the user's still wins.
	return append([]jwt.ParseOption{jwt.WithValidate(false)}, user...)
}

// parseClaims parses raw with opts and returns its claims.
func parseClaims(raw string, opts []jwt.ParseOption) (claims, error) {
	tok, err := jwt.ParseString(raw, opts...)
	if err != nil {
		return claims{}, err
	}
	return claims{exp: tok.Expiration(), iat: tok.IssuedAt(), jti: tok.JwtID()}, nil
}

// expiryOf returns the instant, on the clock that read start and received,
// from which the token must no longer be handed out, and the token's lifetime.
// start is when the fetch began, received when the token arrived; the claims
// must carry exp.
//
// Without iat, the expiry is exp read on the local clock. With iat, the token
// was issued after the fetch started, so it expires no later than
// start + (exp - iat), whatever the skew between the two hosts' clocks; a
// second comes off because iat is usually truncated to whole seconds. That
// bound is too late for a token issued before the fetch (a token function or
// provider that caches tokens), so where exp on the local clock is earlier, the
// earlier wins, unless exp on the local clock has already passed: a token that
// was just issued has not expired, so then this host's clock is ahead of the
// provider's and the iat bound is the one to trust.
func expiryOf(c claims, start, received time.Time) (expiry time.Time, lifetime time.Duration) {
	// exp carries no monotonic reading, so Sub uses the wall clock; Add keeps
	// received's monotonic reading, so the result is immune to clock steps.
	local := received.Add(c.exp.Sub(received))
	if c.iat.IsZero() || !c.exp.After(c.iat) {
		return local, local.Sub(received)
	}
	lifetime = c.exp.Sub(c.iat)
	byIat := start.Add(lifetime - time.Second)
	if local.After(received) && local.Before(byIat) {
		return local, lifetime
	}
	return byIat, lifetime
}

// schedule returns when a token that expires at expiry, with the given
// lifetime, enters its refresh window and its headroom. The headroom is capped
// at half the lifetime; the refresh window is fraction·jitter of the lifetime
// and ends where the headroom begins. Both may lie before now for a token that
// arrives late in its life.
func schedule(expiry time.Time, lifetime, headroom time.Duration, fraction, jitter float64) (refreshAt, waitAt time.Time) {
	headroom = min(headroom, lifetime/2)
	waitAt = expiry.Add(-headroom)
	window := time.Duration(float64(lifetime) * fraction * jitter)
	return waitAt.Add(-window), waitAt
}

// tokenID names a token in logs without revealing it: its jti claim when it has
// one (cut at 64 bytes), otherwise the first 12 hex digits of its SHA-256.
func tokenID(raw, jti string) string {
	if jti != "" {
		if len(jti) > 64 {
			jti = jti[:64]
		}
		return "jti:" + jti
	}
	sum := sha256.Sum256([]byte(raw))
	return "sha256:" + hex.EncodeToString(sum[:6])
}
