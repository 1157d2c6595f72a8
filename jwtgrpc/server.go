package jwtgrpc

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// ServerOption configures [UnaryServerInterceptor] and
// [StreamServerInterceptor].
type ServerOption interface {
	applyServer(*authenticator)
}

// serverOptionFunc adapts a function to [ServerOption].
type serverOptionFunc func(*authenticator)

func (f serverOptionFunc) applyServer(a *authenticator) { f(a) }

// Logger sets where the server interceptors log why they refused a call: at
// [slog.LevelDebug] a call without a bearer token, at [slog.LevelWarn] one
// they could not verify for want of the issuer's keys, at [slog.LevelInfo]
// any other, with the method and the error, which never carries the token. A
// nil l logs nothing. The default is nil.
func Logger(l *slog.Logger) ServerOption {
	return serverOptionFunc(func(a *authenticator) { a.logger = l })
}

// UnaryServerInterceptor returns an interceptor that admits to the handler
// only the calls with a bearer token that v accepts, and puts the token's
// claims in the handler's context for [verify.FromContext].
//
// The token is read from the call's "authorization" metadata, which must have
// one value: "Bearer" (in any case), spaces, and the token, by the rules of
// [verify.BearerToken] (RFC 6750, section 2.1). A call without one, or with
// one that v refuses, fails with [codes.Unauthenticated] and a message that
// does not say why; the [Logger] is told. A call that v could not check for
// want of the issuer's keys ([verify.ErrKeySetStale]: the key set could not
// be fetched) fails with [codes.Unavailable] instead, so that clients keep
// their tokens (a client told Unauthenticated drops its token and fetches
// another, which would not help); one whose context ended during the check
// fails with [codes.Canceled] or [codes.DeadlineExceeded]. A nil v fails
// every call with [codes.Internal].
func UnaryServerInterceptor(v *verify.Verifier, opts ...ServerOption) grpc.UnaryServerInterceptor {
	a := newAuthenticator(v, opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns an interceptor that admits to the handler
// only the streams with a bearer token that v accepts, as
// [UnaryServerInterceptor] does for unary calls, and puts the token's claims
// in the context of the stream the handler gets.
func StreamServerInterceptor(v *verify.Verifier, opts ...ServerOption) grpc.StreamServerInterceptor {
	a := newAuthenticator(v, opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
	}
}

// Messages of the refusals, which say nothing of why.
const (
	msgUnauthenticated = "missing or invalid bearer token"
	msgUnavailable     = "cannot verify tokens now"
	msgNoVerifier      = "server misconfigured"
)

// authenticator is what the server interceptors share. Its fields are
// written once by newAuthenticator and only read after.
type authenticator struct {
	v      *verify.Verifier
	logger *slog.Logger // nil: no logging
}

func newAuthenticator(v *verify.Verifier, opts []ServerOption) *authenticator {
	a := &authenticator{v: v}
	for _, o := range opts {
		if o != nil {
			o.applyServer(a)
		}
	}
	return a
}

// authenticate returns ctx with the claims of the call's token, or the
// call's status error.
func (a *authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if a.v == nil {
		a.log(ctx, slog.LevelError, method, errors.New("jwtgrpc: server interceptor without a Verifier"))
		return nil, status.Error(codes.Internal, msgNoVerifier)
	}
	token, err := verify.ParseBearer(metadata.ValueFromIncomingContext(ctx, "authorization"))
	var c *verify.Claims
	if err == nil {
		c, err = a.v.Verify(ctx, token)
	}
	if err != nil {
		return nil, a.refuse(ctx, method, err)
	}
	return verify.NewContext(ctx, c), nil
}

// refuse logs why a call was refused with err and returns its status error.
func (a *authenticator) refuse(ctx context.Context, method string, err error) error {
	switch {
	case ctx.Err() != nil:
		a.log(ctx, slog.LevelDebug, method, err)
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, verify.ErrNoToken):
		a.log(ctx, slog.LevelDebug, method, err)
	case errors.Is(err, verify.ErrKeySetStale):
		a.log(ctx, slog.LevelWarn, method, err)
		return status.Error(codes.Unavailable, msgUnavailable)
	default:
		a.log(ctx, slog.LevelInfo, method, err)
	}
	return status.Error(codes.Unauthenticated, msgUnauthenticated)
}

func (a *authenticator) log(ctx context.Context, level slog.Level, method string, err error) {
	if a.logger == nil {
		return
	}
	a.logger.LogAttrs(ctx, level, "jwtgrpc: call refused",
		slog.String("method", method), slog.Any("error", err))
}

// serverStream is a stream whose context carries the claims.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
