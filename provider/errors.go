package provider

import (
	"errors"
	"fmt"
	"strings"

	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
)

// ErrIssuerMismatch is returned, naming both, when the issuer in a discovery
// document is not the configured issuer byte for byte. A trailing slash
// counts: https://idp.example and https://idp.example/ are different issuers,
// and the tokens of one do not validate against the other
// (https://github.com/coreos/go-oidc/issues/203).
var ErrIssuerMismatch = discovery.ErrIssuerMismatch

// ErrInsecureURL is returned for an issuer or an endpoint that is not HTTPS,
// unless its host is a loopback one (localhost, 127.0.0.0/8, ::1). No request
// is made to such a URL.
var ErrInsecureURL = discovery.ErrInsecureURL

// ErrAuthMethod is returned by [New] when the provider's metadata lists the
// client authentication methods its token endpoint supports
// (token_endpoint_auth_methods_supported), and the [ClientAuth] given is not
// among them.
var ErrAuthMethod = errors.New("provider: client authentication method not supported by the provider")

// ErrSigningAlgorithm is returned when a client assertion's signing algorithm
// does not suit its key, or, when the provider lists the algorithms it
// accepts (token_endpoint_auth_signing_alg_values_supported), is not among
// them.
var ErrSigningAlgorithm = errors.New("provider: unusable client assertion signing algorithm")

// ErrTokenType is returned, naming the type, for a token response whose
// token_type is not Bearer (compared without regard to case), or that has
// none: a DPoP-bound token sent as a bearer token would be refused, and any
// other type is one this package does not know how to send. A Client with
// [DPoPProof] wants DPoP instead, and refuses a DPoP JWT bound to another
// key. The one exception is [Client.Exchange] asked for a token that is not
// an access token, which takes the token_type N_A.
var ErrTokenType = errors.New("provider: token type is not the one asked for")

// ErrBadExpiresIn is returned for a token response whose expires_in is zero,
// negative, or not a number: such a token is expired on arrival, or its
// lifetime is unknown.
var ErrBadExpiresIn = errors.New("provider: bad expires_in in token response")

// ErrNoSubjectToken is returned by [Client.Exchange] and the [Exchanger] for
// an empty (or blank) subject token, before any request is made: a caller
// that presented no token has nothing to exchange, and must not share a
// token with others that did not either.
var ErrNoSubjectToken = errors.New("provider: no subject token")

// ErrSubjectExpired is returned by [Client.Exchange] and the [Exchanger] when
// the subject token has expired (by its exp claim, or
// [Exchange.SubjectExpiry]), before any request is made.
var ErrSubjectExpired = errors.New("provider: subject token expired")

// ErrInvalidGrant is matched, by errors.Is, by an [*Error] whose code is
// invalid_grant, and wrapped by the errors of a [Delegated] whose user has no
// grant left: the refresh token (or the assertion) was refused as invalid,
// expired, revoked or already used, or none is stored. No retry can succeed:
// the user must authorize again, and whatever holds the grant should ask
// them to.
var ErrInvalidGrant = errors.New("provider: invalid_grant: the grant is gone, and the user must authorize again")

// Error is an error response from the token endpoint (RFC 6749, section 5.2),
// for errors.As. Its fields are what the provider sent, stripped of control
// characters, shortened, and with anything the request carried as a secret
// (a client secret, a client assertion) replaced by "[redacted]", so that an
// Error can be logged.
type Error struct {
	// Code is the error code: invalid_request, invalid_client,
	// invalid_grant, unauthorized_client, unsupported_grant_type,
	// invalid_scope, or one the provider defines.
	Code string
	// Description is the provider's error_description, if any.
	Description string
	// URI is the provider's error_uri, if any.
	URI string
	// StatusCode is the HTTP status of the response.
	StatusCode int
}

// Is reports whether e matches target: [ErrInvalidGrant], for the code
// invalid_grant.
func (e *Error) Is(target error) bool {
	return target == ErrInvalidGrant && e.Code == "invalid_grant"
}

// Error returns "provider: token request: <code> (HTTP <status>)", followed by
// the description and the URI when the provider gave them.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider: token request: %s (HTTP %d)", e.Code, e.StatusCode)
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.URI != "" {
		b.WriteString(" (see ")
		b.WriteString(e.URI)
		b.WriteString(")")
	}
	return b.String()
}
