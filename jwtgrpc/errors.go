package jwtgrpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// ErrInsecureTransport is wrapped by the error of a call that [Credentials]
// did not send a token on because its connection lacks transport security
// (the privacy and integrity that TLS gives) and, with
// [InsecureAllowPlaintextLoopback], its peer is not a loopback address. The
// call fails unsent, with [codes.Unauthenticated].
var ErrInsecureTransport = errors.New("jwtgrpc: connection without transport security")

// errNoSource is the error of every call of Credentials not made by
// NewCredentials or NewMapCredentials, or made from a nil Cache, CacheMap or
// key function.
var errNoSource = errors.New("jwtgrpc: Credentials without a cache; use NewCredentials or NewMapCredentials with a non-nil one")

// errKey is wrapped, with its error, when a CacheMap's key function fails.
var errKey = errors.New("jwtgrpc: key for the call")

// statusError is the error of a call that got no token: its text is that of
// err, which it wraps (so that errors.Is finds jwtcache's sentinels), and its
// status has code, for [status.Code] and for grpc-go, which fails the call
// with it: grpc-go hands a per-RPC credentials error through to the caller
// as it is, if its code is not one of those that gRFC A54 reserves to the
// control plane, which codeOf never returns.
type statusError struct {
	code codes.Code
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }

func (e *statusError) Unwrap() error { return e.err }

// GRPCStatus returns the error's status, for [status.FromError].
func (e *statusError) GRPCStatus() *status.Status { return status.New(e.code, e.err.Error()) }

// tokenError returns the error of a call with context ctx that got err
// instead of a token.
func tokenError(ctx context.Context, err error) error {
	return &statusError{code: codeOf(ctx, err), err: fmt.Errorf("jwtgrpc: token for the call: %w", err)}
}

// codeOf returns the status code of a call with context ctx that got err
// instead of a token:
//
//	Canceled, DeadlineExceeded  the call's own context ended first
//	the error's own code        a status error from a token or key function (see allowed)
//	Unauthenticated             the provider refused, or gave no usable token
//	Internal                    a misconfiguration: no cache, no token function, a failed key function, a panic
//	Unavailable                 anything else: the provider is unreachable, overloaded or failing
//
// A fetch that timed out is Unavailable, not DeadlineExceeded: only the
// call's own context ending makes a call Canceled or DeadlineExceeded. An
// error wrapped in [jwtcache.ErrBackoff] has the code of the error it wraps,
// so that callers see the same code for the fetch that failed and for the
// calls that the backoff spares the provider.
func codeOf(ctx context.Context, err error) codes.Code {
	if cerr := ctx.Err(); cerr != nil {
		return status.FromContextError(cerr).Code()
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		if s := se.GRPCStatus(); s != nil && s.Code() != codes.OK {
			return allowed(s.Code())
		}
	}
	var pe *provider.Error
	switch {
	case errors.As(err, &pe):
		return providerCode(pe)
	case errors.Is(err, errNoSource), errors.Is(err, errKey),
		errors.Is(err, jwtcache.ErrNoTokenFunction), errors.Is(err, jwtcache.ErrNoName),
		errors.Is(err, jwtcache.ErrEmptyKey), errors.Is(err, jwtcache.ErrPanic):
		return codes.Internal
	case errors.Is(err, jwtcache.ErrUnparsable), errors.Is(err, jwtcache.ErrExpired),
		errors.Is(err, jwtcache.ErrEmptyToken), errors.Is(err, jwtcache.ErrRejected),
		errors.Is(err, provider.ErrTokenType), errors.Is(err, provider.ErrBadExpiresIn),
		errors.Is(err, provider.ErrNoSubjectToken), errors.Is(err, provider.ErrSubjectExpired),
		errors.Is(err, provider.ErrIssuerMismatch), errors.Is(err, provider.ErrInsecureURL),
		errors.Is(err, provider.ErrAuthMethod), errors.Is(err, provider.ErrSigningAlgorithm):
		// The provider answered, or would be asked, in a way that no retry
		// of the call mends.
		return codes.Unauthenticated
	default:
		return codes.Unavailable
	}
}

// providerCode returns the code of an OAuth error response: Unavailable for
// a server error or an overload, which a later call may not meet, and
// Unauthenticated for a refusal (invalid_client, invalid_grant, and the rest).
// gRPC's own mapping of HTTP statuses makes 429 Unavailable too
// (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
func providerCode(e *provider.Error) codes.Code {
	switch {
	case e.StatusCode >= 500, e.StatusCode == http.StatusTooManyRequests, e.StatusCode == http.StatusRequestTimeout:
		return codes.Unavailable
	}
	switch e.Code {
	case "server_error", "temporarily_unavailable", "slow_down":
		// RFC 6749, section 4.1.2.1, and RFC 8628, section 3.5; some
		// providers send them with a 400 or a 200.
		return codes.Unavailable
	}
	return codes.Unauthenticated
}

// allowed returns code, or Internal for the codes that gRFC A54 forbids
// outside the control plane
// (https://github.com/grpc/proposal/blob/master/A54-restrict-control-plane-status-codes.md),
// which grpc-go turns into Internal when per-RPC credentials return them: so
// a call fails with the same code through the interceptors as through
// [Credentials.GetRequestMetadata].
func allowed(code codes.Code) codes.Code {
	switch code {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition,
		codes.Aborted, codes.OutOfRange, codes.DataLoss:
		return codes.Internal
	}
	return code
}
