// Package verify is the receiving side of jwtcache: it checks the tokens sent
// to a service, against the issuer's published key set. It never obtains,
// caches or sends outbound tokens; that is the root package's role.
//
// A [KeySet] keeps one issuer's JSON Web Key Set (RFC 7517): it fetches the set
// over HTTPS, caches it as the server's caching headers allow, revalidates it,
// refreshes it ahead of expiry, and fetches it again, at a bounded rate, when a
// token names a key it lacks. A [Registry] keeps the key sets of many issuers.
//
// Every type in this package is safe for concurrent use.
package verify
