// Package jwtcache caches the outbound JWTs a service obtains from an identity
// provider and attaches to its own calls.
//
// A token in a [Cache] is served at the cost of an atomic load and a clock
// read; from 75-80% of its life (jittered) its successor is fetched in the
// background, and callers wait only in its last moments (the headroom) or
// when there is none. An expired token is never handed out. A [Transport]
// puts tokens on HTTP requests; docs/lifecycle.md tells a token's whole life.
//
// Every type in this package is safe for concurrent use.
package jwtcache
