// Package jwtcache caches the outbound JWTs a service obtains from an identity
// provider, refreshed ahead of expiry and never handed out expired
// (docs/lifecycle.md); a [Transport] puts them on HTTP requests. Its types are
// safe for concurrent use.
package jwtcache
