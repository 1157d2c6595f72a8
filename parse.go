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
