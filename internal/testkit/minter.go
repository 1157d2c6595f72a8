package testkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Minter mints JWTs signed with an ES256 key of its own, as an identity
// provider would. Tokens carry the key's ID (its RFC 7638 thumbprint) in their
// kid header.
//
// The zero Minter has no key and panics when it mints; use [NewMinter].
type Minter struct {
	// name, key and public are written once by NewMinter and only read
	// after.
	name   string
	key    jwk.Key
	public jwk.Key

	seq    atomic.Int64 // numbers the tokens for their jti
	issued atomic.Int64 // counts the calls of token functions
}

// Subject is the sub claim a Minter sets on every token, unless overridden.
const Subject = "client"

// NewMinter returns a minter with a new ES256 key, whose tokens carry the
// iss name and a jti of name, a dash and a number.
func NewMinter(name string) *Minter {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		// crypto/rand does not fail on the platforms Go supports.
		panic(fmt.Sprintf("%s: generate key: %v", name, err))
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		panic(fmt.Sprintf("%s: key: %v", name, err))
	}
	if err := jwk.AssignKeyID(key); err != nil {
		panic(fmt.Sprintf("%s: key ID: %v", name, err))
	}
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256)
	public, err := key.PublicKey()
	if err != nil {
		panic(fmt.Sprintf("%s: public key: %v", name, err))
	}
	return &Minter{name: name, key: key, public: public}
}

// Mint returns a token issued at iat that expires lifetime later. Its iat and
// exp are whole seconds, as a JWT's times are: iat is truncated to the second,
// and exp is that plus lifetime. It also carries the minter's iss, sub
// [Subject] and a jti unique to the minter. claims are added to these and
// override them; a claim whose value is nil is left out, so that, say,
// {"exp": nil} mints a token without exp. A nil claims adds nothing.
//
// Mint panics if a claim cannot be set, such as an exp that is neither a
// time nor a number: test code mints tokens where a failure can only be a
// bug in the test.
func (m *Minter) Mint(iat time.Time, lifetime time.Duration, claims map[string]any) string {
	iat = iat.Truncate(time.Second)
	all := map[string]any{
		jwt.IssuerKey:     m.name,
		jwt.SubjectKey:    Subject,
		jwt.JwtIDKey:      m.name + "-" + strconv.FormatInt(m.seq.Add(1), 10),
		jwt.IssuedAtKey:   iat,
		jwt.ExpirationKey: iat.Add(lifetime),
	}
	for k, v := range claims {
		all[k] = v
	}
	tok := jwt.New()
	for k, v := range all {
		if v == nil {
			continue
		}
		if err := tok.Set(k, v); err != nil {
			panic(fmt.Sprintf("%s: claim %s: %v", m.prefix(), k, err))
		}
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, m.key))
	if err != nil {
		panic(fmt.Sprintf("%s: sign: %v", m.prefix(), err))
	}
	return string(raw)
}

// prefix starts the minter's panic messages: its name, or testkit for the
// zero Minter.
func (m *Minter) prefix() string {
	if m.name == "" {
		return "testkit"
	}
	return m.name
}

// TokenFunc returns a token function that, on each call, mints a token issued
// at now() that lives for lifetime, and counts the call in [Minter.Issued].
// The function never fails and never blocks, so it ignores its context.
func (m *Minter) TokenFunc(now func() time.Time, lifetime time.Duration) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		m.issued.Add(1)
		return m.Mint(now(), lifetime, nil), nil
	}
}

// Issued returns how many times the minter's token functions have been
// called. Tokens minted with [Minter.Mint] directly are not counted.
func (m *Minter) Issued() int64 {
	return m.issued.Load()
}

// PublicKey returns the public half of the minter's key, with its key ID,
// for a verifier's key set.
func (m *Minter) PublicKey() jwk.Key {
	return m.public
}

// KeyID returns the key ID in the kid header of the minter's tokens.
func (m *Minter) KeyID() string {
	return m.public.KeyID()
}

// ParseOption returns the option that verifies the minter's signature: with
// it, jwt.Parse rejects tokens that another key signed.
func (m *Minter) ParseOption() jwt.ParseOption {
	return jwt.WithKey(jwa.ES256, m.public)
}

// Claims returns the claims of raw, parsed without verifying or validating
// them: those of a token the test minted or received, read from the token
// itself rather than from what the code under test made of it. If raw is no
// JWT, Claims reports an error (as t.Errorf does, so it may be called from
// any goroutine) and returns a token without claims.
func Claims(tb testing.TB, raw string) jwt.Token {
	tb.Helper()
	tok, err := jwt.ParseString(raw, jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		tb.Errorf("parse token: %v", err)
		return jwt.New()
	}
	return tok
}
