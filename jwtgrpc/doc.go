// Package jwtgrpc sends the tokens of a jwtcache cache on gRPC calls, and
// verifies the tokens a gRPC server receives.
//
// It is an integration, a nested module of its own so that jwtcache does not
// depend on grpc-go. On the client side, [Credentials] are per-RPC
// credentials that take the token with each call's own context, refuse to
// send it without transport security, and fail a call that gets no token
// with a status code a client can act on; their interceptors
// ([Credentials.UnaryClientInterceptor], [Credentials.StreamClientInterceptor])
// also act on a refusal by the rule of jwtcache's Transport (a fresh token
// for a refused one, a successor with the claims of a claims challenge) and
// retry the call once. On the server side, [UnaryServerInterceptor] and
// [StreamServerInterceptor] verify each call's bearer token with a
// [verify.Verifier] and hand its claims to the handler through
// [verify.FromContext]. It never fetches or caches tokens itself: the root
// package does that.
//
// Every type in this package is safe for concurrent use.
package jwtgrpc
