package jwtcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

// claims are what the cache reads from a token. A zero time means the claim is
// absent.
type claims struct {
	exp time.Time
	iat time.Time
	jti string
	jkt string // cnf.jkt (RFC 9449): the key the token is bound to
}

// parser is how a Cache reads tokens. It is built once by NewCache and only
// read after.
type parser struct {
	parse    []jwt.ParseOption    // for jwt.Parse, which never validates claims
	validate []jwt.ValidateOption // for jwt.Validate; none: no validation
	// strict makes any failure to parse, verify or validate an error: the
	// user asked for checks, so a token that fails them is not passed on.
	strict bool
}

// insecure reads a token's claims without verifying or validating it. It is
// shared by every Cache without ParseOptions, and never modified.
var insecure = &parser{parse: []jwt.ParseOption{jwt.WithVerify(false), jwt.WithValidate(false)}}

// newParser sorts the user's ParseOptions (see [ParseOptions]): claim
// validators go to jwt.Validate without jwx's time checks, because the cache
// does its own expiry arithmetic and jwx's checks fail on clock skew; the rest
// go to jwt.Parse, with validation off.
func newParser(user []jwt.ParseOption) *parser {
	user = slices.DeleteFunc(slices.Clone(user), func(o jwt.ParseOption) bool { return o == nil })
	if len(user) == 0 {
		return insecure
	}
	p := &parser{strict: true}
	for _, o := range user {
		if v, ok := o.(jwt.ValidateOption); ok {
			p.validate = append(p.validate, v)
		} else {
			p.parse = append(p.parse, o)
		}
	}
	// Last, so that they win over any the user gave.
	p.parse = append(p.parse, jwt.WithValidate(false))
	if len(p.validate) > 0 {
		p.validate = append(p.validate, jwt.WithResetValidators(true))
	}
	return p
}

// claims parses, verifies and validates raw, and returns its claims. Its
// errors are the parser's, with any quoted text in them (jwx quotes claim
// values) cut out.
func (p *parser) claims(raw string) (claims, error) {
	tok, err := jwt.ParseString(raw, p.parse...)
	if err == nil && len(p.validate) > 0 {
		err = jwt.Validate(tok, p.validate...)
	}
	if err != nil {
		return claims{}, errors.New(quoted.ReplaceAllString(err.Error(), `"…"`))
	}
	return claims{exp: tok.Expiration(), iat: tok.IssuedAt(), jti: tok.JwtID(), jkt: confirmationKey(tok)}, nil
}

// confirmationKey returns the jkt member of tok's cnf claim (RFC 7800, RFC
// 9449): the thumbprint of the key the token is bound to; empty if it has
// none, or not as a string.
func confirmationKey(tok jwt.Token) string {
	cnf, ok := tok.Get("cnf")
	if !ok {
		return ""
	}
	m, _ := cnf.(map[string]any)
	jkt, _ := m["jkt"].(string)
	return jkt
}

// quoted matches quoted text in an error message.
var quoted = regexp.MustCompile(`"[^"]*"|'[^']{2,}'`)

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
// provider that caches tokens), so where exp on the local clock is earlier,
// the earlier wins. A token whose exp has passed on the local clock is thus
// expired, even if the provider's clock lags this host's: an expired token
// and a lagging clock cannot be told apart, and an expired token is never
// handed out.
func expiryOf(c claims, start, received time.Time) (expiry time.Time, lifetime time.Duration) {
	// exp carries no monotonic reading, so Sub uses the wall clock; Add keeps
	// received's monotonic reading, so the result is immune to clock steps.
	local := received.Add(c.exp.Sub(received))
	if c.iat.IsZero() || !c.exp.After(c.iat) {
		return local, local.Sub(received)
	}
	lifetime = c.exp.Sub(c.iat)
	return minTime(local, start.Add(lifetime-time.Second)), lifetime
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// maxHeadroomShare bounds the headroom: at most a twentieth of a token's local
// life, so that a short-lived token is not replaced long before it must be.
const maxHeadroomShare = 20

// schedule returns when a token that expires at expiry, with local life life
// (from the fetch's start to expiry), enters its refresh window and its
// headroom. The headroom is the smaller of headroom and life/20. The refresh
// window opens fraction·life before expiry, less up to a fifth of that by the
// jitter u in [0, 1), and ends where the headroom begins (it is empty if the
// headroom is longer). So with the default fraction, 0.25, a token is
// refreshed no earlier than 0.75 of its local life, whatever its lifetime, and
// a window of at least 0.15 of its life leaves a slow fetch time to finish
// before any caller waits. Both instants may lie before now for a token that
// arrives late in its life.
func schedule(expiry time.Time, life, headroom time.Duration, fraction, u float64) (refreshAt, waitAt time.Time) {
	life = max(life, 0) // a clock that stepped back mid-fetch
	headroom = min(headroom, life/maxHeadroomShare)
	waitAt = expiry.Add(-headroom)
	lead := time.Duration(float64(life) * fraction * (1 - u/5))
	return expiry.Add(-max(lead, headroom)), waitAt
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
