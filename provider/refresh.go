package provider

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/seed7aeb0c6e/jwtcache"
)

// Refreshed is the answer to a refresh token grant: the access token, and the
// refresh token to use next.
type Refreshed struct {
	jwtcache.Issued
	// RefreshToken is the refresh token to use next: the new one when the
	// provider rotated it (then the one sent is spent, and using it again
	// may make the provider revoke the whole grant), else the one sent.
	RefreshToken string
	// Rotated reports whether the provider sent a new refresh token.
	Rotated bool
}

// errNoRefreshToken is Refresh's error for an empty refresh token.
var errNoRefreshToken = errors.New("provider: refresh: no refresh token")

// Refresh asks the provider for a new access token with the refresh token
// grant (RFC 6749, section 6), for the [DefaultRequest]'s scopes, resources
// and audiences (a scope beyond the grant's is refused by the provider),
// authenticating as the client as [Client.Issue] does. The response's
// refresh token, if it sent one, is [Refreshed.RefreshToken], and the one
// sent must not be used again: store it before using the access token (see
// [Delegated], which does).
//
// A request whose response was lost after it was sent (the connection broke
// or timed out: the provider may have rotated the token) is made again, once,
// with the same refresh token, as providers' reuse grace windows allow
// (Okta's, Auth0's); a provider without one refuses it, and revokes the grant
// as reuse. A refusal with invalid_grant matches [ErrInvalidGrant]: the
// grant is gone, and no retry can help. An empty (or blank) refresh token is
// an error, and no request is made. No error carries a token.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Refreshed, error) {
	if strings.TrimSpace(refreshToken) == "" {
		return Refreshed{}, errNoRefreshToken
	}
	prepare := func(r *tokenRequest) error {
		r.redact(refreshToken)
		return nil
	}
	var resp response
	var err error
	for try := 0; try < 2; try++ {
		// A fresh form each time: the client authentication adds to it.
		form := withRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, c.cfg.request)
		resp, err = c.request(ctx, form, prepare)
		if lost := (*lostError)(nil); !errors.As(err, &lost) || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return Refreshed{}, err
	}
	out := Refreshed{Issued: resp.Issued, RefreshToken: refreshToken}
	if resp.refresh != "" && resp.refresh != refreshToken {
		out.RefreshToken, out.Rotated = resp.refresh, true
	}
	return out, nil
}
