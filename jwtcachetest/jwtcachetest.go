// Package jwtcachetest provides a fake clock and a token issuer for tests of
// code that uses jwtcache.
package jwtcachetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
)

// Clock is a clock that moves only when a test moves it. Pass its Now method
// to [jwtcache.Clock], and a cache's expiry arithmetic and backoff follow it;
// the cache's [jwtcache.FetchTimeout] is still real time.
//
// A Clock is safe for concurrent use. The zero Clock reads the zero
// [time.Time] until it is moved; most tests start from [NewClock].
type Clock struct {
	mu sync.Mutex
	// guards now
	now time.Time
}

// NewClock returns a clock that reads start until it is moved. Any monotonic
// clock reading in start is dropped: a Clock is a wall clock that only the
// test steps.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start.Round(0)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d. A negative d steps it back, as a wall clock
// corrected by NTP may be.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t, forward or back. Any monotonic clock reading in t
// is dropped.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.Round(0)
}

// Issuer mints JWTs signed with an ES256 key of its own, as an identity
// provider would. Tokens carry the key's ID in their kid header.
//
// An Issuer is safe for concurrent use. The zero Issuer has no key and
// panics when it mints; use [NewIssuer].
type Issuer struct {
	// key and public are written once by NewIssuer and only read after.
	key    jwk.Key
	public jwk.Key

	seq    atomic.Int64 // numbers the tokens for their jti
	issued atomic.Int64 // counts the calls of token functions
}

// Claims the Issuer sets on every token, unless overridden.
const (
	issuer  = "jwtcachetest"
	subject = "client"
)

// NewIssuer returns an issuer with a new ES256 key.
func NewIssuer() *Issuer {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		// crypto/rand does not fail on the platforms Go supports.
		panic(fmt.Sprintf("jwtcachetest: generate key: %v", err))
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		panic(fmt.Sprintf("jwtcachetest: key: %v", err))
	}
	if err := jwk.AssignKeyID(key); err != nil {
		panic(fmt.Sprintf("jwtcachetest: key ID: %v", err))
	}
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256)
	public, err := key.PublicKey()
	if err != nil {
		panic(fmt.Sprintf("jwtcachetest: public key: %v", err))
	}
	return &Issuer{key: key, public: public}
}

// Mint returns a token issued at iat that expires lifetime later. Its iat and
// exp are whole seconds, as a JWT's times are: iat is truncated to the second,
// and exp is that plus lifetime. It also carries iss "jwtcachetest", sub
// "client" and a jti unique to the issuer. claims are added to these and
// override them; a claim whose value is nil is left out, so that, say,
// {"exp": nil} mints a token without exp. A nil claims adds nothing.
//
// Mint panics if a claim cannot be set, such as an exp that is neither a
// time nor a number: test code mints tokens where a failure can only be a
// bug in the test.
func (i *Issuer) Mint(iat time.Time, lifetime time.Duration, claims map[string]any) string {
	iat = iat.Truncate(time.Second)
	all := map[string]any{
		jwt.IssuerKey:     issuer,
		jwt.SubjectKey:    subject,
		jwt.JwtIDKey:      "jwtcachetest-" + strconv.FormatInt(i.seq.Add(1), 10),
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
			panic(fmt.Sprintf("jwtcachetest: claim %s: %v", k, err))
		}
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, i.key))
	if err != nil {
		panic(fmt.Sprintf("jwtcachetest: sign: %v", err))
	}
	return string(raw)
}

// TokenFunc returns a token function that, on each call, mints a token issued
// at clock's time that lives for lifetime, and counts the call in
// [Issuer.Issued]. A nil clock is the system clock. The function never fails
// and never blocks, so it ignores its context.
func (i *Issuer) TokenFunc(clock *Clock, lifetime time.Duration) jwtcache.TokenFunc {
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	return func(context.Context) (string, error) {
		i.issued.Add(1)
		return i.Mint(now(), lifetime, nil), nil
	}
}

// Issued returns how many times the issuer's token functions have been
// called. Tokens minted with [Issuer.Mint] directly are not counted.
func (i *Issuer) Issued() int64 {
	return i.issued.Load()
}

// ParseOption returns the option that verifies the issuer's signature, for
// [jwtcache.ParseOptions]: with it, a cache rejects tokens that another key
// signed.
func (i *Issuer) ParseOption() jwt.ParseOption {
	return jwt.WithKey(jwa.ES256, i.public)
}
