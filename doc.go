// Package jwtcache caches the outbound JWTs a service obtains from an identity
// provider and attaches to its own calls.
//
// A token's life in a [Cache] has four phases, each a share of its local life
// (from the fetch's start to its expiry), so that one set of defaults suits
// tokens that live five seconds and tokens that live a day. While it is fresh,
// every call returns it at the cost of an atomic load and a clock read. Once it
// enters its refresh window (by default from 75-80% of its life, jittered, to
// the headroom), calls still return it at once, and the first of them starts
// one background fetch of its successor. In the headroom (by default the last
// 10 seconds, or the last twentieth of a shorter life), a call waits for a
// fresh token, falling back to the old one if the fetch fails. Once expired, a
// token is never handed out again.
//
// A [Transport] puts the token on outgoing HTTP requests (Bearer, or DPoP
// through a [Scheme]) and acts on what servers answer: the challenges of
// their WWW-Authenticate headers, with at most one retry.
//
// Every type in this package is safe for concurrent use.
package jwtcache
