package provider

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/seed7aeb0c6e/jwtcache"
)

// grantJWTBearer is the grant_type of the JWT bearer grant (RFC 7523,
// section 2.1).
const grantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// errNoAssertion is JWTBearer's error for an empty assertion.
var errNoAssertion = errors.New("provider: jwt bearer: no assertion")

// JWTBearer asks the provider for an access token in exchange for assertion,
// a signed JWT, with the JWT bearer grant (RFC 7523, section 2.1), for the
// [DefaultRequest]'s scopes, resources and audiences: a Google service
// account's assertion, or one for Salesforce's JWT bearer flow, say. The
// assertion is trimmed of surrounding whitespace; an empty (or blank) one is
// an error, and no request is made. The Client authenticates as
// [Client.Issue] does, which this grant leaves optional (RFC 7523, section
// 3.1): with [NoClientAuth], the assertion is the only credential.
//
// Use [Client.JWTBearerSigner] for a Client that signs its assertions
// itself. A provider refuses an assertion that is expired, not for it (aud),
// signed with a key it does not trust, or already used (jti), with
// invalid_grant, which matches [ErrInvalidGrant]. The rest is as for
// [Client.Issue]. No error carries the assertion.
func (c *Client) JWTBearer(ctx context.Context, assertion string) (jwtcache.Issued, error) {
	assertion = strings.TrimSpace(assertion)
	if assertion == "" {
		return jwtcache.Issued{}, errNoAssertion
	}
	return c.jwtBearer(ctx, func(*tokenRequest) (string, error) { return assertion, nil })
}

// JWTBearerSigner returns a [jwtcache.IssueFunc], for
// [jwtcache.IssueFunction], that asks the provider for an access token with
// the JWT bearer grant, as [Client.JWTBearer] does, with an assertion it
// signs with key for each token request, retries included, as
// [PrivateKeyJWT] signs client assertions: iss is issuer (a service
// account, or the client id), sub is subject (the user or service the token
// is for; the issuer again, if it acts for itself), aud the token endpoint's
// URL (or the provider's issuer, with [AudienceIssuer]), jti a fresh random
// value, iat the time of the request by the Client's [Clock] and exp the
// [AssertionLifetime] after it. opts set these as they do for
// [PrivateKeyJWT]; the algorithm is not checked against the provider's
// token_endpoint_auth_signing_alg_values_supported, which lists those of
// client authentication.
//
// It fails if issuer or subject is empty, if the key or the algorithm is
// unusable ([ErrSigningAlgorithm]), or if [AudienceIssuer] is set on a
// Client made by [NewFromTokenURL]. The function is safe for concurrent use.
func (c *Client) JWTBearerSigner(issuer, subject string, key crypto.Signer, opts ...AssertionOption) (jwtcache.IssueFunc, error) {
	a := newKeyAssertion(issuer, grantJWTBearer, key, opts)
	a.sub = subject
	switch {
	case issuer == "":
		return nil, errors.New("provider: jwt bearer signer: empty issuer")
	case subject == "":
		return nil, errors.New("provider: jwt bearer signer: empty subject")
	case a.err != nil:
		return nil, fmt.Errorf("provider: jwt bearer signer: %w", a.err)
	case a.cfg.audIssuer && c.static != nil:
		return nil, errors.New("provider: jwt bearer signer: AudienceIssuer needs the issuer, which a Client made by NewFromTokenURL does not know")
	}
	return func(ctx context.Context) (jwtcache.Issued, error) {
		return c.jwtBearer(ctx, func(r *tokenRequest) (string, error) {
			s, err := a.signFor(r)
			if err != nil {
				return "", fmt.Errorf("provider: jwt bearer: %w", err)
			}
			return s, nil
		})
	}, nil
}

// jwtBearer makes a JWT bearer grant request with the assertion that
// assertion returns for the request, which it calls for every attempt.
func (c *Client) jwtBearer(ctx context.Context, assertion func(*tokenRequest) (string, error)) (jwtcache.Issued, error) {
	form := withRequest(url.Values{"grant_type": {grantJWTBearer}}, c.cfg.request)
	return c.grant(ctx, form, func(r *tokenRequest) error {
		s, err := assertion(r)
		if err != nil {
			return err
		}
		r.redact(s)
		r.form.Set("assertion", s)
		return nil
	})
}
