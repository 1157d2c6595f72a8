package jwtcache

import (
	"context"
	"fmt"
	"strings"

	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
	"github.com/seed7aeb0c6e/jwtcache/internal/clean"
)

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
		return e.Code == challenge.CodeInsufficientScope
	case ErrInsufficientUserAuthentication:
		return e.Code == challenge.CodeInsufficientUserAuth
	}
	return false
}

// newChallengeError returns the error for challenge c of a response with
// status, cleaned of the token sent.
func newChallengeError(status int, c challenge.Challenge, sent string) *ChallengeError {
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
	return challenge.Claims(ctx)
}
