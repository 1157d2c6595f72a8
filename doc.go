// Package jwtcache caches the outbound JWTs a service obtains from an identity
// provider and attaches to its own calls. A hit on a [Cache] is an atomic load
// and a clock read; a token is refreshed in the background from 75-80% of its
// life, and an expired one is never handed out (docs/lifecycle.md). A
// [Transport] puts tokens on HTTP requests. Every type is safe for concurrent
// use.
package jwtcache
