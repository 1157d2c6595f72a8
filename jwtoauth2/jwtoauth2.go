// Package jwtoauth2 connects jwtcache with golang.org/x/oauth2: token
// functions from oauth2 configs and token sources, a jwtcache Cache as an
// [oauth2.TokenSource], and users' tokens from an [oauth2.Config] held by a
// [provider.Delegated], which stores the refresh tokens that rotate
// ([DelegatedTokenSource]).
package jwtoauth2

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/seed7aeb0c6e/jwtcache"
)

// ClientCredentials returns a token function that asks cfg's token endpoint
// for a new token on every call, with the client-credentials grant (the
// Keycloak service account, Auth0 or Okta machine-to-machine case). It uses the
// context it is called with, so the cache's fetch timeout bounds the request;
// an [http.Client] for the request can ride on that context under
// [oauth2.HTTPClient], as everywhere in oauth2.
func ClientCredentials(cfg *clientcredentials.Config) jwtcache.TokenFunc {
	return func(ctx context.Context) (string, error) {
		tok, err := cfg.Token(ctx)
		return accessToken(tok, err)
	}
}

// FromTokenSource returns a token function that calls the token source that
// newSource returns for the fetch's context, such as a config's TokenSource
// method:
//
//	jwtoauth2.FromTokenSource(func(ctx context.Context) oauth2.TokenSource {
//		return conf.TokenSource(ctx, refreshToken)
//	})
//
// The source should fetch a new token on every call: a caching source (one
// made by [oauth2.ReuseTokenSource], or kept between calls) hands back the
// token the cache already holds, which the cache notices and does not take as
// fresh, but which defeats its refreshing ahead of expiry.
func FromTokenSource(newSource func(context.Context) oauth2.TokenSource) jwtcache.TokenFunc {
	return func(ctx context.Context) (string, error) {
		tok, err := newSource(ctx).Token()
		return accessToken(tok, err)
	}
}

// accessToken returns tok's access token, or err.
func accessToken(tok *oauth2.Token, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if tok == nil {
		return "", errors.New("jwtoauth2: token source returned no token")
	}
	if t := tok.Type(); t != "Bearer" {
		return "", fmt.Errorf("jwtoauth2: token type %q, not Bearer", t)
	}
	return tok.AccessToken, nil
}

// TokenSource returns c as an [oauth2.TokenSource], for libraries that take
// one: gRPC's per-RPC credentials (oauth.TokenSource), or an HTTP client built
// as &http.Client{Transport: &oauth2.Transport{Source: ts}}. Each Token call
// is a [jwtcache.Cache.Token] call on ctx, so it costs what a cache hit costs.
// For gRPC, the nested module jwtgrpc does better: its credentials take the
// token with each call's context, which oauth.TokenSource cannot give
// (https://github.com/grpc/grpc-go/issues/5390), and its interceptors retry a
// call the server refuses.
//
// Do not wrap it in [oauth2.ReuseTokenSource] (which oauth2.NewClient and
// Config.Client do): that keeps a token until 10 seconds before its Expiry,
// so the cache's refreshing ahead and invalidation never reach the caller,
// and a token the cache passed through uncached (one without exp, whose
// Expiry is zero) would be reused forever. The returned token's Expiry is the
// cache's view of when the token expires.
func TokenSource(ctx context.Context, c *jwtcache.Cache) oauth2.TokenSource {
	return cacheSource{ctx: ctx, token: c.Token}
}

// MapTokenSource is [TokenSource] for key's token in m.
func MapTokenSource(ctx context.Context, m *jwtcache.CacheMap, key string) oauth2.TokenSource {
	return cacheSource{ctx: ctx, token: func(ctx context.Context) (jwtcache.Token, error) { return m.Token(ctx, key) }}
}

// cacheSource adapts a cache to oauth2.TokenSource.
type cacheSource struct {
	ctx   context.Context
	token func(context.Context) (jwtcache.Token, error)
}

// Token implements [oauth2.TokenSource].
func (s cacheSource) Token() (*oauth2.Token, error) {
	tok, err := s.token(s.ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Token{AccessToken: tok.Value, TokenType: "Bearer", Expiry: tok.Expiry}, nil
}
