// Package challenge reads the challenges of a WWW-Authenticate header (RFC
// 9110, section 11.6.1) and holds the one rule by which a client acts on a
// refusal of its token: the rule of jwtcache's Transport and of jwtgrpc's
// client interceptors, which both call [Handle].
//
// It is internal: the challenges are read for the rule (and for package
// provider's DPoP nonces), not offered as an API (issue 17). It never fetches
// or caches a token itself: a [Source] does.
package challenge

import "strings"

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

// Limits of Parse, so that a hostile header costs a bounded effort.
const (
	maxChallengeInput  = 16 << 10 // bytes read of all the header's values
	maxChallenges      = 16
	maxChallengeParams = 32
)

// Parse reads the challenges of the values of a WWW-Authenticate header (an
// HTTP response's, resp.Header.Values("Www-Authenticate"), or the
// www-authenticate metadata of a gRPC call), in order. It is lenient, as
// clients are: a malformed challenge ends the parse of its value, keeping the
// challenges before it. It reads at most 16 KiB of the values and keeps at
// most 16 challenges of 32 parameters each.
func Parse(values []string) []Challenge {
	var out []Challenge
	budget := maxChallengeInput
	for _, v := range values {
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
