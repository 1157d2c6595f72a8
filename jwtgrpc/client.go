package jwtgrpc

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
)

// UnaryClientInterceptor returns an interceptor that sends the credentials'
// token on each unary call (taken with the call's context, as
// [Credentials.GetRequestMetadata] takes it), and retries once a call that
// the server refuses with [codes.Unauthenticated], by the rule of
// jwtcache's [jwtcache.Transport], reading the challenges of the
// "www-authenticate" metadata of the refusal's trailer and header, where a
// server sends one (RFC 6750's error codes, as an HTTP server sends them in
// a WWW-Authenticate header):
//   - invalid_token, or a refusal that says nothing more: it drops the token
//     it sent from the cache, if that is still the cached one (so that a
//     burst of refusals of one token causes one fetch), and sends the call
//     again with a fresh token, if the cache has or can fetch, within the
//     call's context, one different from the refused one;
//   - insufficient_claims with a claims parameter (a claims challenge): it
//     fetches a successor of the token with the claims (see
//     [jwtcache.ClaimsChallenge]), the token staying cached meanwhile, and
//     sends the call again with it;
//   - insufficient_scope or insufficient_user_authentication: no token of
//     the cache can do better, and the call is not sent again.
//
// Otherwise (a [codes.PermissionDenied] included), and whatever the second
// attempt's outcome, the caller gets the server's answer; a call is never
// sent more than twice. Call options apply to both attempts.
//
// A call whose own options or outgoing metadata carry credentials
// ([google.golang.org/grpc.PerRPCCredentials], an authorization value) is
// sent as it is. A call that gets no token fails unsent, with the status
// [Credentials] describes. The interceptor attaches the token as call
// credentials of its own, so that it knows which token a refusal was for;
// the connection's own [Credentials], if any, send nothing on the calls it
// handles.
func (c *Credentials) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if ownCredentials(ctx, opts) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		ctx = context.WithValue(ctx, interceptedKey{}, c)
		src, tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		sent := c.callCredentials(tok)
		// The refusal's metadata, for its challenges: grpc-go writes them
		// into sent (allocated for the call anyway) as the call ends.
		err = invoker(ctx, method, req, reply, cc, withCredentials(opts, sent, grpc.Header(&sent.header), grpc.Trailer(&sent.trailer))...)
		fresh, ok := retry(ctx, src, err, sent, sent.trailer, sent.header, true)
		if !ok {
			return err
		}
		return invoker(ctx, method, req, reply, cc, withCredentials(opts, c.callCredentials(fresh))...)
	}
}

// StreamClientInterceptor returns an interceptor that sends the credentials'
// token on each streaming call, as [Credentials.UnaryClientInterceptor] does
// on unary calls, and retries a stream that the server refuses with
// [codes.Unauthenticated], by the same rule, only while nothing has gone
// either way on it yet:
// it opens the stream again, once, with a fresh token, if the stream could
// not be opened, or if its first RecvMsg fails before any SendMsg or
// CloseSend, any message received, or any header received (Header returning
// metadata). Once something was sent, the stream is not replayed (the
// interceptor keeps no copy of the messages, and the server may have acted on
// them): the caller gets the refusal, and the refused token is dropped from
// the cache all the same (but on a claims challenge, which keeps it), so that
// the caller's next stream gets a fresh one.
//
// So a bidirectional stream whose client reads first (one that waits for the
// server's greeting) is retried, and a server-streaming call opened by
// generated code, which sends its request before it returns the stream, is
// not. A RecvMsg that the retry makes waits for the new stream; a SendMsg or
// CloseSend made meanwhile goes to it.
func (c *Credentials) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if ownCredentials(ctx, opts) {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx = context.WithValue(ctx, interceptedKey{}, c)
		src, tok, err := c.token(ctx)
		if err != nil {
			return nil, err
		}
		sent := c.callCredentials(tok)
		s, err := streamer(ctx, desc, cc, method, withCredentials(opts, sent)...)
		if err != nil {
			// No stream, no metadata: a refusal that says nothing more.
			fresh, ok := retry(ctx, src, err, sent, nil, nil, true)
			if !ok {
				return nil, err
			}
			// Retried already: the new stream needs no watching.
			return streamer(ctx, desc, cc, method, withCredentials(opts, c.callCredentials(fresh))...)
		}
		return &clientStream{c: c, ctx: ctx, src: src, open: func(st *callCredentials) (grpc.ClientStream, error) {
			return streamer(ctx, desc, cc, method, withCredentials(opts, st)...)
		}, cur: s, sent: sent}, nil
	}
}

// retry acts by the challenge rule (challenge.Handle) on src, after a call
// sent with the token of sent ended with err, with trailer and header, and
// returns the token to send it again with, if it is to be sent again (only
// if replay: nothing went either way on it yet). Only a refusal of the token
// counts: Unauthenticated (the rule's 401) or PermissionDenied (its 403),
// after the token went out; a call that failed before (no transport
// security, say) says nothing of the token.
func retry(ctx context.Context, src source, err error, sent *callCredentials, trailer, header metadata.MD, replay bool) (string, bool) {
	var st challenge.Status
	switch status.Code(err) {
	case codes.Unauthenticated:
		st = challenge.Unauthorized
	case codes.PermissionDenied:
		st = challenge.Forbidden
	default:
		return "", false
	}
	if !sent.sent.Load() {
		return "", false
	}
	// Servers that refuse a call before its handler answer with trailers
	// only (grpc-go gives them as the trailer), others may have sent the
	// challenge with the header.
	values := slices.Concat(trailer[wwwAuthenticate], header[wwwAuthenticate])
	_, fresh, ok := challenge.Handle(ctx, src, st, false, values, sent.token, replay)
	return fresh, ok
}

// wwwAuthenticate is the metadata key of a refusal's challenges.
const wwwAuthenticate = "www-authenticate"

// callCredentials returns the call credentials that carry tok.
func (c *Credentials) callCredentials(tok string) *callCredentials {
	return &callCredentials{c: c, token: tok}
}

// callCredentials are the per-call credentials an interceptor attaches: one
// token, checked against the connection as [Credentials] check theirs.
type callCredentials struct {
	c     *Credentials
	token string
	// sent is set once GetRequestMetadata handed the token to the
	// transport, so that a call refused before that does not drop it.
	sent atomic.Bool
	// header and trailer are a unary call's, which grpc-go writes as the
	// call ends, before the invoker returns; read only after.
	header, trailer metadata.MD
}

var _ credentials.PerRPCCredentials = (*callCredentials)(nil)

func (cc *callCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if err := cc.c.checkTransport(ctx); err != nil {
		return nil, err
	}
	cc.sent.Store(true)
	return cc.c.bearer(cc.token), nil
}

func (cc *callCredentials) RequireTransportSecurity() bool {
	return cc.c.RequireTransportSecurity()
}

// clientStream is a stream that a StreamClientInterceptor may open again,
// once, as its doc says.
type clientStream struct {
	// c, ctx, src and open are written once by the interceptor and only
	// read after; open opens the stream again with other credentials.
	c    *Credentials
	ctx  context.Context
	src  source
	open func(*callCredentials) (grpc.ClientStream, error)

	mu sync.Mutex
	// guards cur, sent, used and retried; held, during a retry, until the
	// new stream is in place, so that a SendMsg meanwhile goes to it.
	cur  grpc.ClientStream
	sent *callCredentials // the credentials of cur
	// used is set once anything went either way on the stream: no retry
	// after that. retried is set once the stream was opened again.
	used    bool
	retried bool
}

func (s *clientStream) current() (grpc.ClientStream, *callCredentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.sent
}

// use marks the stream used and returns the stream to use.
func (s *clientStream) use() grpc.ClientStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used = true
	return s.cur
}

func (s *clientStream) Header() (metadata.MD, error) {
	cur, _ := s.current()
	md, err := cur.Header()
	if md != nil {
		// The server accepted the stream: a refusal later is not of its
		// opening. grpc-go returns no metadata for a stream that failed.
		s.use()
	}
	return md, err
}

func (s *clientStream) Trailer() metadata.MD {
	cur, _ := s.current()
	return cur.Trailer()
}

func (s *clientStream) CloseSend() error {
	return s.use().CloseSend()
}

func (s *clientStream) Context() context.Context {
	cur, _ := s.current()
	return cur.Context()
}

func (s *clientStream) SendMsg(m any) error {
	return s.use().SendMsg(m)
}

func (s *clientStream) RecvMsg(m any) error {
	cur, sent := s.current()
	err := cur.RecvMsg(m)
	if err == nil {
		s.use()
		return nil
	}
	next, ok := s.reopen(cur, sent, err)
	if !ok {
		return err
	}
	return next.RecvMsg(m)
}

// reopen opens the stream again after cur, sent with the token of sent,
// failed with err, if nothing went either way on it and it was not opened
// again before; it drops a refused token either way (see retry).
func (s *clientStream) reopen(cur grpc.ClientStream, sent *callCredentials, err error) (grpc.ClientStream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retried || s.cur != cur {
		// The retry's refusal: as after a unary call's, its token stays
		// for the next call to drop, so that a server that refuses every
		// token costs a fetch per call, not two.
		return nil, false
	}
	if code := status.Code(err); code != codes.Unauthenticated && code != codes.PermissionDenied {
		return nil, false // the end of the stream (io.EOF), or another error: no metadata to read
	}
	// The stream has ended: Header does not block.
	header, _ := cur.Header()
	fresh, ok := retry(s.ctx, s.src, err, sent, cur.Trailer(), header, !s.used)
	if !ok {
		return nil, false
	}
	s.retried = true
	st := s.c.callCredentials(fresh)
	next, oerr := s.open(st)
	if oerr != nil {
		return nil, false
	}
	s.cur, s.sent = next, st
	return next, true
}

// ownCredentials reports whether a call brings credentials of its own: call
// credentials in its options, or an authorization value in its outgoing
// metadata.
func ownCredentials(ctx context.Context, opts []grpc.CallOption) bool {
	for _, o := range opts {
		if _, ok := o.(grpc.PerRPCCredsCallOption); ok {
			return true
		}
	}
	return hasAuthorization(ctx)
}

// withCredentials returns opts, the call credentials st and more, in a new
// slice: appending to opts could write into the caller's array.
func withCredentials(opts []grpc.CallOption, st *callCredentials, more ...grpc.CallOption) []grpc.CallOption {
	out := make([]grpc.CallOption, 0, len(opts)+1+len(more))
	return append(append(append(out, opts...), grpc.PerRPCCredentials(st)), more...)
}
