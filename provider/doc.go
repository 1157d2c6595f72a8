// Package provider is the client of an identity provider's token endpoint: it
// discovers the provider's metadata (OpenID Connect Discovery 1.0, RFC 8414),
// authenticates the client (client secrets, private_key_jwt, client
// assertions, mutual TLS, or none), runs the grants that issue tokens (client
// credentials, token exchange, refresh token, JWT bearer), and binds tokens
// to a key with DPoP (RFC 9449), on the token request and, as a
// [jwtcache.Scheme], on every request that carries them.
//
// Its role is how a token is obtained. A [Client] never caches tokens: every
// [Client.Issue] asks the provider for a new one, and the root package's
// [jwtcache.Cache] and [jwtcache.CacheMap] do the caching, with a Client's
// methods as their token functions (an [Exchanger] is such a CacheMap, keyed
// by subject, and a [Delegated] one keyed by user, refreshing the users'
// tokens with refresh tokens that a [GrantStore] keeps across restarts and
// replicas):
//
//	client, err := provider.New(ctx, "https://idp.example/realms/acme",
//		provider.ClientSecretBasic("billing", secret))
//	if err != nil {
//		return err
//	}
//	cache := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.IssueFunction(client.Issue))
//
// It never verifies incoming tokens either: that is the verifying side's job,
// to which [Client.JWKSURI] hands the provider's key set, and [Discover] the
// metadata of a provider it is no client of.
//
// Every type in this package is safe for concurrent use.
package provider
