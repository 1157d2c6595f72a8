// Package jwtcache caches the outbound JWTs a service obtains from an identity
// provider and attaches to its own calls.
//
// A token in a [Cache] is fresh for 75-80% of its local life (jittered): a
// call costs an atomic load and a clock read. Then its refresh window opens:
// calls still return it at once, and the first starts one background fetch of
// its successor. In the headroom (its last 10 seconds, or twentieth of its
// life), calls wait for the successor, and get the old token if that fetch
// fails. Once expired, a token is never handed out. A [Transport] puts tokens
// on HTTP requests and retries once on a 401; see docs/lifecycle.md.
//
// Every type in this package is safe for concurrent use.
package jwtcache
