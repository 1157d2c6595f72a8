package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// Claims are the claims of a verified token. A Claims is never modified after
// [Verifier.Verify] returns it, and is safe for concurrent use; its methods
// return copies of what they hold.
type Claims struct {
	// All written once by parseClaims and only read after.
	issuer, subject, id         string
	audience, scope             []string
	expiry, notBefore, issuedAt time.Time
	raw                         map[string]json.RawMessage
	payload                     []byte // the claims set as signed, for Decode
}

// Subject returns the sub claim, or "" if the token has none.
func (c *Claims) Subject() string { return c.subject }

// Issuer returns the iss claim, which is the verifier's [Issuer].
func (c *Claims) Issuer() string { return c.issuer }

// Audience returns the aud claim, as a list even if the token gave one
// string; it names at least one of the verifier's [Audience].
func (c *Claims) Audience() []string { return slices.Clone(c.audience) }

// Expiry returns the exp claim.
func (c *Claims) Expiry() time.Time { return c.expiry }

// IssuedAt returns the iat claim, or the zero time if the token has none.
func (c *Claims) IssuedAt() time.Time { return c.issuedAt }

// NotBefore returns the nbf claim, or the zero time if the token has none.
func (c *Claims) NotBefore() time.Time { return c.notBefore }

// ID returns the jti claim, or "" if the token has none.
func (c *Claims) ID() string { return c.id }

// Scope returns the scopes the token grants: those of its "scope" claim (a
// space-separated string, RFC 9068, section 2.2.3) followed by those of its
// "scp" claim (a string or a list of strings, as some providers issue), each
// once; nil if it has neither.
func (c *Claims) Scope() []string { return slices.Clone(c.scope) }

// HasScope reports whether [Claims.Scope] includes scope. It does not
// allocate.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.scope, scope) }

// Get returns the claim name as encoding/json decodes it into an any (a
// string, float64, bool, nil, []any or map[string]any), and whether the token
// has it. Every call decodes the claim afresh, so the caller may modify what
// it returns.
func (c *Claims) Get(name string) (any, bool) {
	raw, ok := c.raw[name]
	if !ok {
		return nil, false
	}
	var x any
	_ = json.Unmarshal(raw, &x) // raw is a part of a valid JSON object
	return x, true
}

// Decode decodes the token's claims into v, as [json.Unmarshal] does: into a
// struct of the caller's with json tags, say, for custom claims. The
// registered claims have been checked already; Decode checks nothing more.
func (c *Claims) Decode(v any) error {
	if err := json.Unmarshal(c.payload, v); err != nil {
		return fmt.Errorf("verify: decode claims: %w", err)
	}
	return nil
}

// parseClaims decodes payload, the claims of a token whose signature has
// been verified: a JSON object whose registered claims have their JSON
// types, exp included. It checks no value against a Verifier's
// configuration. Its errors wrap [ErrMalformed].
func parseClaims(payload []byte) (*Claims, error) {
	c, err := decodeClaims(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return c, nil
}

// decodeClaims is parseClaims without the sentinel.
func decodeClaims(payload []byte) (*Claims, error) {
	if !utf8.Valid(payload) {
		// RFC 7519, section 7.2: the claims set is UTF-8. Two subjects that
		// differ only in invalid bytes would become one once re-encoded.
		return nil, errors.New("claims are not valid UTF-8")
	}
	m, err := jose.Members(payload)
	if err != nil {
		return nil, fmt.Errorf("the claims set %w", err)
	}
	c := &Claims{raw: m, payload: payload}
	var hasExp bool
	if c.issuer, err = jose.String(m, "iss"); err != nil {
		return nil, err
	}
	if c.subject, err = jose.String(m, "sub"); err != nil {
		return nil, err
	}
	if c.id, err = jose.String(m, "jti"); err != nil {
		return nil, err
	}
	if c.audience, err = jose.Strings(m, "aud", false); err != nil {
		return nil, err
	}
	if c.expiry, hasExp, err = jose.Time(m, "exp"); err != nil {
		return nil, err
	}
	if c.notBefore, _, err = jose.Time(m, "nbf"); err != nil {
		return nil, err
	}
	if c.issuedAt, _, err = jose.Time(m, "iat"); err != nil {
		return nil, err
	}
	scope, err := jose.Strings(m, "scope", true)
	if err != nil {
		return nil, err
	}
	scp, err := jose.Strings(m, "scp", true)
	if err != nil {
		return nil, err
	}
	for _, s := range append(scope, scp...) {
		if !slices.Contains(c.scope, s) {
			c.scope = append(c.scope, s)
		}
	}
	if !hasExp {
		return nil, errors.New("no exp claim")
	}
	return c, nil
}
