package jwtcache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/seed7aeb0c6e/jwtcache/internal/clean"
)

// Challenge is one challenge of a WWW-Authenticate header (RFC 9110, section
// 11.6.1): what a server asks of a client it turned away, such as
// Bearer error="invalid_token" (RFC 6750) or DPoP error="use_dpop_nonce"
// (RFC 9449).
type Challenge struct {
	// Scheme is the authentication scheme, as sent; schemes are compared
	// without regard to case.
	Scheme string
	// Token68 is the challenge's token68 form, if it has that form instead
	// of parameters; rare for the schemes of access tokens.
	Token68 string
	// Params are the challenge's parameters, by lower-cased name, their
	// quoted-string values unquoted. The first of a repeated name wins.
	Params map[string]string
}

// Is reports whether the challenge is of the scheme, compared without regard
// to case.
func (c Challenge) Is(scheme string) bool { return strings.EqualFold(c.Scheme, scheme) }

// Limits of ParseChallenges, so that a hostile header costs a bounded effort.
const (
	maxChallengeInput  = 16 << 10 // bytes read of all the header's values
	maxChallenges      = 16
	maxChallengeParams = 32
)

// ParseChallenges reads the challenges of h's WWW-Authenticate header, every
// value of it, in order. It is lenient, as clients are: a malformed challenge
// ends the parse of its header value, keeping the challenges before it. It
// reads at most 16 KiB of the header and keeps at most 16 challenges of 32
// parameters each.
func ParseChallenges(h http.Header) []Challenge {
	var out []Challenge
	budget := maxChallengeInput
	for _, v := range h.Values("Www-Authenticate") {
		if len(v) > budget {
			v = v[:budget]
		}
		budget -= len(v)
		out = parseChallenges(v, out)
		if budget <= 0 || len(out) >= maxChallenges {
			break
		}
	}
	return out
}

// challengeLexer reads a WWW-Authenticate value.
type challengeLexer struct {
	s string
	i int
}

// parseChallenges appends the challenges of one header value s to out:
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// Challenges and parameters are both separated by commas: a comma followed
// by "name =" continues the parameters, a comma followed by a bare token
// starts the next challenge.
func parseChallenges(s string, out []Challenge) []Challenge {
	l := &challengeLexer{s: s}
	for len(out) < maxChallenges {
		l.skipListSeparators()
		if l.done() {
			return out
		}
		scheme := l.token()
		if scheme == "" {
			return out // not a challenge: garbage from here on
		}
		c := Challenge{Scheme: scheme}
		hadSpace := l.skipSpace()
		if !l.done() && l.peek() == ',' {
			// The end of a challenge without parameters, or an empty
			// element before its first parameter: "Bearer , error=x".
			save := l.i
			l.skipListSeparators()
			if l.done() || !l.paramAhead() {
				l.i = save
				out = append(out, c)
				continue
			}
			hadSpace = true
		}
		if l.done() {
			out = append(out, c)
			continue
		}
		if !hadSpace {
			return out // "Bearer=x", "Bearer\"x\"": malformed
		}
		if t, ok := l.token68(); ok {
			c.Token68 = t
			out = append(out, c)
			continue
		}
		ok := l.params(&c)
		out = append(out, c)
		if !ok {
			return out
		}
	}
	return out
}

// params reads the parameters of c, up to the end of the value or the comma
// before the next challenge; it reports false if it stopped at something
// malformed.
func (l *challengeLexer) params(c *Challenge) bool {
	for {
		name := l.token()
		if name == "" {
			return false
		}
		l.skipSpace()
		if l.done() || l.peek() != '=' {
			return false
		}
		l.i++
		l.skipSpace()
		var value string
		if !l.done() && l.peek() == '"' {
			v, ok := l.quoted()
			if !ok {
				return false
			}
			value = v
		} else if value = l.token(); value == "" {
			return false
		}
		if c.Params == nil {
			c.Params = make(map[string]string, 4)
		}
		key := strings.ToLower(name)
		if _, seen := c.Params[key]; !seen && len(c.Params) < maxChallengeParams {
			c.Params[key] = value
		}
		l.skipSpace()
		if l.done() {
			return true
		}
		if l.peek() != ',' {
			return false
		}
		// A comma: another parameter, or the next challenge.
		save := l.i
		l.skipListSeparators()
		if l.done() {
			return true
		}
		if !l.paramAhead() {
			l.i = save
			return true
		}
	}
}

// paramAhead reports whether a parameter ("name =") starts at the position.
func (l *challengeLexer) paramAhead() bool {
	save := l.i
	defer func() { l.i = save }()
	if l.token() == "" {
		return false
	}
	l.skipSpace()
	return !l.done() && l.peek() == '='
}

// token68 reads a token68 that ends the challenge (at the end of the value
// or before a comma), and reports whether there was one; otherwise the
// position is unchanged.
func (l *challengeLexer) token68() (string, bool) {
	start := l.i
	for !l.done() && isToken68(l.peek()) {
		l.i++
	}
	if l.i == start {
		return "", false
	}
	for !l.done() && l.peek() == '=' {
		l.i++
	}
	t := l.s[start:l.i]
	l.skipSpace()
	if l.done() || l.peek() == ',' {
		return t, true
	}
	l.i = start
	return "", false
}

// quoted reads a quoted-string, and reports false if it is not terminated.
func (l *challengeLexer) quoted() (string, bool) {
	l.i++ // the opening quote
	var b strings.Builder
	for !l.done() {
		switch ch := l.peek(); ch {
		case '"':
			l.i++
			return b.String(), true
		case '\\':
			l.i++
			if l.done() {
				return "", false
			}
			b.WriteByte(l.peek())
		default:
			b.WriteByte(ch)
		}
		l.i++
	}
	return "", false
}

// token reads an RFC 9110 token, possibly empty.
func (l *challengeLexer) token() string {
	start := l.i
	for !l.done() && isTchar(l.peek()) {
		l.i++
	}
	return l.s[start:l.i]
}

// skipSpace skips optional white space, and reports whether there was any.
func (l *challengeLexer) skipSpace() bool {
	start := l.i
	for !l.done() && (l.peek() == ' ' || l.peek() == '\t') {
		l.i++
	}
	return l.i > start
}

// skipListSeparators skips white space and commas (empty list elements).
func (l *challengeLexer) skipListSeparators() {
	for !l.done() && (l.peek() == ' ' || l.peek() == '\t' || l.peek() == ',') {
		l.i++
	}
}

func (l *challengeLexer) done() bool { return l.i >= len(l.s) }
func (l *challengeLexer) peek() byte { return l.s[l.i] }

// isTchar reports whether ch may appear in an RFC 9110 token.
func isTchar(ch byte) bool {
	switch {
	case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0
}

// isToken68 reports whether ch may appear in a token68, before its padding.
func isToken68(ch byte) bool {
	switch {
	case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", ch) >= 0
}

// ErrInsufficientScope is what a [ChallengeError] is, with [errors.Is], when
// the server said the token lacks a scope it needs (RFC 6750's
// insufficient_scope): a new token of the same request would lack it too, so
// the transport returns this error instead of fetching one.
var ErrInsufficientScope = errors.New("jwtcache: the token's scope is insufficient")

// ErrInsufficientUserAuthentication is what a [ChallengeError] is, with
// [errors.Is], when the server asked for a stronger or more recent
// authentication of a user (RFC 9470's insufficient_user_authentication),
// which no token function of a cache can perform.
var ErrInsufficientUserAuthentication = errors.New("jwtcache: the server asks for a stronger user authentication")

// ChallengeError is the error of a [Transport] whose request a server refused
// with a challenge that no token of the cache can satisfy (see
// [ErrInsufficientScope], [ErrInsufficientUserAuthentication]). The response
// is closed. Its fields are the server's, cleaned of control characters,
// shortened, and with the token that was sent cut out.
type ChallengeError struct {
	// StatusCode is the response's status: 401 or 403.
	StatusCode int
	// Scheme is the challenge's scheme: Bearer or DPoP.
	Scheme string
	// Code is the challenge's error parameter.
	Code string
	// Description is the challenge's error_description parameter, if any.
	Description string
	// Scope is the scope the server says the request needs, if it says.
	Scope string
	// ACRValues and MaxAge are an insufficient_user_authentication
	// challenge's parameters (RFC 9470), if any.
	ACRValues, MaxAge string
}

// Error implements error.
func (e *ChallengeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "jwtcache: HTTP %d: %s %s", e.StatusCode, e.Scheme, e.Code)
	if e.Scope != "" {
		fmt.Fprintf(&b, ": the request needs scope %q", e.Scope)
	}
	if e.ACRValues != "" {
		fmt.Fprintf(&b, ", acr_values %q", e.ACRValues)
	}
	if e.MaxAge != "" {
		fmt.Fprintf(&b, ", max_age %s", e.MaxAge)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, " (%s)", e.Description)
	}
	return b.String()
}

// Is makes the error match the sentinel of its Code.
func (e *ChallengeError) Is(target error) bool {
	switch target {
	case ErrInsufficientScope:
		return e.Code == codeInsufficientScope
	case ErrInsufficientUserAuthentication:
		return e.Code == codeInsufficientUserAuth
	}
	return false
}

// The error codes of challenges that the transport acts on, beyond RFC 6750's
// invalid_token, which it treats as any other 401.
const (
	codeInsufficientScope    = "insufficient_scope"               // RFC 6750
	codeInsufficientClaims   = "insufficient_claims"              // Microsoft's claims challenge (CAE)
	codeInsufficientUserAuth = "insufficient_user_authentication" // RFC 9470
	codeUseDPoPNonce         = "use_dpop_nonce"                   // RFC 9449
)

// newChallengeError returns the error for challenge c of a response with
// status, cleaned of the token sent.
func newChallengeError(status int, c Challenge, sent string) *ChallengeError {
	clean := func(s string, limit int) string { return clean.Text(s, limit, sent) }
	return &ChallengeError{
		StatusCode:  status,
		Scheme:      clean(c.Scheme, 16),
		Code:        clean(c.Params["error"], 64),
		Description: clean(c.Params["error_description"], 256),
		Scope:       clean(c.Params["scope"], 256),
		ACRValues:   clean(c.Params["acr_values"], 256),
		MaxAge:      clean(c.Params["max_age"], 16),
	}
}

// claimsOf returns the claims of an insufficient_claims challenge c: its
// claims parameter, a JSON object, base64-encoded as Microsoft Entra ID sends
// it (or not), and reports whether it has one.
func claimsOf(c Challenge) (string, bool) {
	raw := strings.TrimSpace(c.Params["claims"])
	if raw == "" || len(raw) > maxClaims {
		return "", false
	}
	if raw[0] == '{' {
		return raw, json.Valid([]byte(raw))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil {
			if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "{") && json.Valid(b) {
				return s, true
			}
			return "", false
		}
	}
	return "", false
}

// maxClaims bounds a claims challenge.
const maxClaims = 8 << 10

// claimsKey is the context key of a claims challenge.
type claimsKey struct{}

// withClaimsChallenge returns ctx with the claims of a claims challenge.
func withClaimsChallenge(ctx context.Context, claims string) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// ClaimsChallenge returns the claims that a server asked for in a claims
// challenge (an insufficient_claims challenge, with a JSON object of claims
// such as {"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}),
// and reports whether ctx carries one. A [Transport] that meets such a
// challenge fetches another token on a context with the claims, which the
// fetch keeps, while the token challenged stays cached, fresh, until it
// arrives: a token function that supports claims challenges reads them here
// and asks the provider for a token that has them (package provider's Client
// sends them as the claims parameter of its token request); one that does
// not fetches an ordinary token. Such a fetch adopts no token from a
// [SharedStore], which may lack the claims. A fetch already under way when
// the challenge came (a refresh ahead) serves it without them, and the
// request then gets its 401; so does one during the backoff after a failed
// fetch, which a claims fetch that fails starts as any other.
func ClaimsChallenge(ctx context.Context) (claims string, ok bool) {
	claims, ok = ctx.Value(claimsKey{}).(string)
	return claims, ok
}
