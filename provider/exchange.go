package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// grantTokenExchange is the grant_type of token exchange (RFC 8693, section
// 2.1).
const grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"

// tokenTypeAccessToken is the token type identifier of an OAuth access token
// (RFC 8693, section 3).
const tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// Exchange is a token exchange request (RFC 8693, section 2.1): the subject
// token of the party a service acts for, which the provider trades for a
// token of its own, for the audiences, resources and scopes of Request.
//
// Token types are the identifiers of RFC 8693, section 3:
// urn:ietf:params:oauth:token-type:access_token, ...:refresh_token,
// ...:id_token, ...:jwt, ...:saml1 and ...:saml2, or one the provider
// defines.
type Exchange struct {
	// SubjectToken is the token of the party on whose behalf the request is
	// made: the access token a caller presented, say. It must not be empty.
	SubjectToken string
	// SubjectTokenType is the type of SubjectToken, always sent; empty is
	// an access token (urn:ietf:params:oauth:token-type:access_token).
	SubjectTokenType string
	// SubjectExpiry is when SubjectToken expires, if the caller knows (from
	// token introspection, say); zero if not. For a JWT subject, the earlier
	// of this and its exp claim counts.
	SubjectExpiry time.Time
	// ActorToken is the token of the party that acts, for delegation (RFC
	// 8693, section 1.1); empty for impersonation.
	ActorToken string
	// ActorTokenType is the type of ActorToken; empty is an access token. It
	// must be empty without an ActorToken.
	ActorTokenType string
	// Request holds the audiences, resources and scopes of the token asked
	// for, sent as the audience, resource and scope parameters.
	Request Request
	// RequestedTokenType is the type of token asked for; empty leaves it to
	// the provider (an access token, mostly).
	RequestedTokenType string
}

// Exchange asks the provider for a token in exchange for x's subject token,
// with the token exchange grant (RFC 8693), authenticating as the client as
// [Client.Issue] does. The subject token's type is always sent; an empty (or
// blank) subject token is [ErrNoSubjectToken], and no request is made.
//
// The issued token never outlives the subject: its
// [jwtcache.Issued.ExpiresIn] is capped to end when the subject expires, which
// is when its exp claim says for a JWT subject (and the earlier of that and
// [Exchange.SubjectExpiry], if set), or SubjectExpiry for an opaque one. A
// subject already expired is [ErrSubjectExpired], and no request is made.
// The exp claim is read without verifying the subject's signature, which
// is sound because it only ever shortens a lifetime: the provider verifies
// the subject itself, and a forged exp can make the token's cached life
// shorter than the provider granted, never longer. An opaque subject without
// SubjectExpiry leaves the lifetime to the provider's expires_in, and the
// token may then outlive the subject: the provider decides. If the provider
// sends no expires_in, an issued JWT is still capped, while an opaque token
// keeps no lifetime, and a cache passes it through uncached.
//
// The token must come as a Bearer token, or, when RequestedTokenType asks
// for a token that is not an access token (an ID token, a JWT, a SAML
// assertion), with the token_type N_A that RFC 8693, section 2.2.1, gives
// such a token; anything else is [ErrTokenType]. When RequestedTokenType is
// set, the response's issued_token_type, if it has one, must be it. The rest
// is as for [Client.Issue]. No error carries the subject or actor token.
func (c *Client) Exchange(ctx context.Context, x Exchange) (jwtcache.Issued, error) {
	if strings.TrimSpace(x.SubjectToken) == "" {
		return jwtcache.Issued{}, ErrNoSubjectToken
	}
	if x.ActorToken == "" && x.ActorTokenType != "" {
		return jwtcache.Issued{}, errors.New("provider: token exchange: an actor token type without an actor token")
	}
	form := url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {x.SubjectToken},
		"subject_token_type": {cmp.Or(x.SubjectTokenType, tokenTypeAccessToken)},
	}
	if x.ActorToken != "" {
		form.Set("actor_token", x.ActorToken)
		form.Set("actor_token_type", cmp.Or(x.ActorTokenType, tokenTypeAccessToken))
	}
	if x.RequestedTokenType != "" {
		form.Set("requested_token_type", x.RequestedTokenType)
	}
	withRequest(form, x.Request)
	expiry := x.SubjectExpiry
	if cl, ok := peekClaims(x.SubjectToken); ok && !cl.Expiry.IsZero() && (expiry.IsZero() || cl.Expiry.Before(expiry)) {
		expiry = cl.Expiry
	}
	return c.grant(ctx, form, func(r *tokenRequest) error {
		r.redact(x.SubjectToken, x.ActorToken)
		if !expiry.IsZero() {
			if !r.now.Before(expiry.Add(-minSubjectLeft)) {
				return subjectExpired(expiry)
			}
			r.bound(expiry)
		}
		r.accept = x.accept
		return nil
	})
}

// accept is the token type check of x's response.
func (x *Exchange) accept(r *tokenRequest, tokenType, issuedType string) error {
	want := x.RequestedTokenType
	if want != "" && issuedType != "" && issuedType != want {
		return fmt.Errorf("provider: token response: issued_token_type %q, not the %q asked for", r.clean(issuedType, 128), r.clean(want, 128))
	}
	if strings.EqualFold(tokenType, r.tokenType()) ||
		strings.EqualFold(tokenType, "N_A") && want != "" && want != tokenTypeAccessToken {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrTokenType, r.clean(tokenType, 32))
}

// minSubjectLeft is how long a subject token must have left to be exchanged:
// one closer to its end would be exchanged again and again for ever shorter
// lives, the last milliseconds before its exp, which the provider refuses
// (invalid_grant) or answers with a token that arrives expired.
const minSubjectLeft = 2 * time.Second

// subjectExpired is the error of a subject token that expires at expiry, too
// soon to be exchanged.
func subjectExpired(expiry time.Time) error {
	return fmt.Errorf("%w (at %s, less than %s from now): the caller needs a new token", ErrSubjectExpired, expiry.UTC().Format(time.RFC3339), minSubjectLeft)
}
