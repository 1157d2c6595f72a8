// Package jwtcache caches the outbound JWTs a service obtains from an identity
// provider and attaches to its own calls.
//
// A token's life in a [Cache] has four phases. While it is fresh, every call
// returns it at the cost of an atomic load and a clock read. Once it enters its
// refresh window (by default a jittered fifth of its lifetime, ending where the
// headroom begins), calls still return it at once, and the first of them starts
// one background fetch of its successor. In the headroom (by default the last
// 10 seconds), a call waits for a fresh token, falling back to the old one if
// the fetch fails. Once expired, a token is never handed out again.
//
// Every type in this package is safe for concurrent use.
package jwtcache
