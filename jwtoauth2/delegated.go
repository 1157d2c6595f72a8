package jwtoauth2

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// ProviderClient returns a [provider.Client] of cfg's token endpoint, with
// cfg's client credentials and scopes, for a [provider.Delegated]: the cache
// of the access tokens of users whose first tokens came from cfg.Exchange.
// The client authenticates as cfg.Endpoint.AuthStyle says: in the
// Authorization header (client_secret_basic) for AuthStyleInHeader and
// AuthStyleAutoDetect (x/oauth2 tries it first), in the form
// (client_secret_post) for AuthStyleInParams, and with its client_id alone
// when cfg has no ClientSecret (a public client). opts configure the Client
// (its HTTP client, say). A nil cfg, or one without a ClientID or a TokenURL,
// is an error wrapping [jwtcache.ErrInvalid].
func ProviderClient(cfg *oauth2.Config, opts ...provider.Option) (*provider.Client, error) {
	switch {
	case cfg == nil:
		return nil, fmt.Errorf("%w: jwtoauth2: ProviderClient: nil oauth2.Config", jwtcache.ErrInvalid)
	case cfg.ClientID == "" || cfg.Endpoint.TokenURL == "":
		return nil, fmt.Errorf("%w: jwtoauth2: ProviderClient: the oauth2.Config has no ClientID or no Endpoint.TokenURL", jwtcache.ErrInvalid)
	}
	var auth provider.ClientAuth
	switch {
	case cfg.ClientSecret == "":
		auth = provider.NoClientAuth(cfg.ClientID)
	case cfg.Endpoint.AuthStyle == oauth2.AuthStyleInParams:
		auth = provider.ClientSecretPost(cfg.ClientID, cfg.ClientSecret)
	default:
		auth = provider.ClientSecretBasic(cfg.ClientID, cfg.ClientSecret)
	}
	if len(cfg.Scopes) > 0 {
		opts = append([]provider.Option{provider.DefaultRequest(provider.Request{Scopes: cfg.Scopes})}, opts...)
	}
	c, err := provider.NewFromTokenURL(cfg.Endpoint.TokenURL, auth, opts...)
	if err != nil {
		return nil, fmt.Errorf("jwtoauth2: ProviderClient: %w", err)
	}
	return c, nil
}

// DelegatedTokenSource returns the user key's access tokens in d as an
// [oauth2.TokenSource], for code that takes one (oauth2.Transport, an API's
// generated client). Unlike cfg.TokenSource, it persists every refresh token
// the provider rotates (in d's [provider.GrantStore]) before it hands out the
// access token, and shares the refreshes with the fleet: the answer to
// golang/oauth2#84 for those who keep their oauth2.Config. Each Token call is
// [provider.Delegated.Token] on ctx; an error matching
// [provider.ErrInvalidGrant] says the user must authorize again. As with
// [TokenSource], do not wrap it in [oauth2.ReuseTokenSource].
func DelegatedTokenSource(ctx context.Context, d *provider.Delegated, key string) oauth2.TokenSource {
	return MapTokenSource(ctx, d.Map(), key)
}
