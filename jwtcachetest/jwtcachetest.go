// Package jwtcachetest provides a fake clock and a token issuer for tests of
// code that uses jwtcache.
package jwtcachetest

// The mechanism of both lives in internal/testkit, which the module's own
// tests use; this package is its public face, with jwtcache's types.

import (
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// Clock is a clock that moves only when a test moves it. Pass its Now method
// to [jwtcache.Clock], and a cache's expiry arithmetic and backoff follow it;
// the cache's [jwtcache.FetchTimeout] is still real time.
//
// A Clock is safe for concurrent use. The zero Clock reads the zero
// [time.Time] until it is moved; most tests start from [NewClock].
type Clock struct {
	c testkit.Clock
}

// NewClock returns a clock that reads start until it is moved. Any monotonic
// clock reading in start is dropped: a Clock is a wall clock that only the
// test steps.
func NewClock(start time.Time) *Clock {
	c := &Clock{}
	c.c.Set(start)
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return c.c.Now() }

// Advance moves the clock by d. A negative d steps it back, as a wall clock
// corrected by NTP may be.
func (c *Clock) Advance(d time.Duration) { c.c.Advance(d) }

// Set moves the clock to t, forward or back. Any monotonic clock reading in t
// is dropped.
func (c *Clock) Set(t time.Time) { c.c.Set(t) }

// Issuer mints JWTs signed with an ES256 key of its own, as an identity
// provider would. Tokens carry the key's ID in their kid header.
//
// An Issuer is safe for concurrent use. The zero Issuer has no key and
// panics when it mints; use [NewIssuer].
type Issuer struct {
	m *testkit.Minter // written once by NewIssuer and only read after
}

// NewIssuer returns an issuer with a new ES256 key.
func NewIssuer() *Issuer {
	return &Issuer{m: testkit.NewMinter("jwtcachetest")}
}

// minter returns i's minter; the zero Issuer's is a zero Minter, which has
// no key and panics when it mints.
func (i *Issuer) minter() *testkit.Minter {
	if i.m == nil {
		return new(testkit.Minter)
	}
	return i.m
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
	return i.minter().Mint(iat, lifetime, claims)
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
	return i.minter().TokenFunc(now, lifetime)
}

// Issued returns how many times the issuer's token functions have been
// called. Tokens minted with [Issuer.Mint] directly are not counted.
func (i *Issuer) Issued() int64 {
	return i.minter().Issued()
}

// ParseOption returns the option that verifies the issuer's signature, for
// [jwtcache.ParseOptions]: with it, a cache rejects tokens that another key
// signed.
func (i *Issuer) ParseOption() jwt.ParseOption {
	return i.minter().ParseOption()
}
