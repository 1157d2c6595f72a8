package jwtgrpc

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
)

// Credentials are gRPC per-RPC credentials that send a token from a
// [jwtcache.Cache], or from a key's cache in a [jwtcache.CacheMap], as
// "authorization: Bearer <token>" metadata on every call. Give them to
// [google.golang.org/grpc.WithPerRPCCredentials]; or, to also retry once a
// call the server refuses, install their interceptors
// ([Credentials.UnaryClientInterceptor] and
// [Credentials.StreamClientInterceptor]) instead, or as well.
//
// Unlike grpc-go's oauth.TokenSource, which calls an oauth2.TokenSource
// without the call's context (https://github.com/grpc/grpc-go/issues/5390),
// they take the token with the call's own context: its deadline and
// cancellation bound the call's wait for a token, never the fetch that other
// calls share (see [jwtcache.FetchTimeout]), and its values (a trace, say)
// reach the token function.
//
// The token goes only over a connection with transport security (TLS, ALTS,
// or local credentials over a Unix socket): [Credentials.RequireTransportSecurity]
// is true, so grpc.NewClient refuses them beside insecure transport
// credentials, and a call on a connection without privacy and integrity fails
// unsent with [ErrInsecureTransport]. [InsecureAllowPlaintextLoopback] lets
// plaintext through to a loopback peer only, for tests.
//
// A call that gets no token fails unsent, with a status that tells the
// client what to do (grpc-go keeps the code, https://github.com/grpc/grpc-go/pull/1776):
// [codes.Canceled] or [codes.DeadlineExceeded] when the call's context ended
// first; [codes.Unauthenticated] when the provider refused (an OAuth error
// response such as invalid_client, or a token the cache would not hand out:
// [jwtcache.ErrUnparsable], [jwtcache.ErrExpired], [jwtcache.ErrEmptyToken]);
// [codes.Unavailable] for an outage (the provider unreachable, a 5xx or 429
// answer, a fetch that timed out); [codes.Internal] for a misconfiguration
// (no cache, no token function, a failed key function, a panic in the token
// function); and the code of a status error that a token or key function
// returned (but [codes.Internal] for one of the codes that gRPC reserves to
// its control plane, as grpc-go itself would make it). While the cache backs
// off after a failed fetch, calls without a live token get the code of that
// fetch's error at once, and the provider is not asked again: a client
// that retries Unavailable calls does not make a herd. The error's
// message holds the cache's error, which never contains a token, and the
// error wraps it, for errors.Is: grpc-go hands it through to the caller.
//
// A call whose outgoing metadata already carries an authorization value is
// sent as it is, without the token; so is a call on which one of the
// interceptors of any Credentials attaches a token itself, so that a call
// never carries two.
//
// The zero Credentials have no cache: every call fails with
// [codes.Internal]. Use [NewCredentials] or [NewMapCredentials].
type Credentials struct {
	// All fields but last are written once by the constructor and only
	// read after. The source of the tokens: cache for NewCredentials; m and
	// key for NewMapCredentials, whose calls each get the source of their
	// key, the key function called once per call (see Credentials.token).
	cache             *jwtcache.Cache
	m                 *jwtcache.CacheMap
	key               func(context.Context) (string, error)
	plaintextLoopback bool
	// reuse is set for a lone Cache, whose calls send one token at a time:
	// last then keeps its header value, so that they share one string. A
	// CacheMap's tokens would take turns in it.
	reuse bool

	last atomic.Pointer[header] // never modified after it is stored
}

// header is the authorization value of a token.
type header struct {
	token, value string
}

var _ credentials.PerRPCCredentials = (*Credentials)(nil)

// CredentialsOption configures [Credentials].
type CredentialsOption interface {
	applyCredentials(*Credentials)
}

// credentialsOptionFunc adapts a function to [CredentialsOption].
type credentialsOptionFunc func(*Credentials)

func (f credentialsOptionFunc) applyCredentials(c *Credentials) { f(c) }

// InsecureAllowPlaintextLoopback lets the credentials send their token over a
// connection without transport security (insecure.NewCredentials(), or local
// credentials over TCP) when the connection's peer is a loopback address
// (127.0.0.0/8 or ::1): for tests, and for a proxy on the same host that
// secures the hop beyond it. To any other peer, a call still fails unsent with
// [ErrInsecureTransport]. With it, [Credentials.RequireTransportSecurity]
// returns false, without which grpc.NewClient refuses the credentials beside
// insecure transport credentials. A Unix socket needs no such option: local
// credentials (google.golang.org/grpc/credentials/local) give it privacy and
// integrity. The default is off: only a connection with transport security
// carries the token.
func InsecureAllowPlaintextLoopback() CredentialsOption {
	return credentialsOptionFunc(func(c *Credentials) { c.plaintextLoopback = true })
}

// NewCredentials returns credentials that send the token of cache, configured
// by opts. A nil cache makes credentials that fail every call with
// [codes.Internal].
func NewCredentials(cache *jwtcache.Cache, opts ...CredentialsOption) *Credentials {
	return (&Credentials{cache: cache, reuse: true}).apply(opts)
}

// NewMapCredentials returns credentials that send, on each call, the token of
// the key that key returns for the call's context (a tenant that the caller
// put there, say), configured by opts. An error from key fails the call
// unsent, with the code of a status error that key returned, or
// [codes.Internal]. A nil m or key makes credentials that fail every call with
// [codes.Internal].
func NewMapCredentials(m *jwtcache.CacheMap, key func(context.Context) (string, error), opts ...CredentialsOption) *Credentials {
	c := &Credentials{}
	if m != nil && key != nil {
		c.m, c.key = m, key
	}
	return c.apply(opts)
}

func (c *Credentials) apply(opts []CredentialsOption) *Credentials {
	for _, o := range opts {
		if o != nil {
			o.applyCredentials(c)
		}
	}
	return c
}

// GetRequestMetadata returns the call's authorization metadata, "Bearer "
// and the token, as [Credentials] describes; grpc-go calls it for each call
// with the call's context. It returns no metadata for a call that carries its
// own authorization metadata or the token of an interceptor, and fails with a
// status error for a call on a connection without transport security or that
// gets no token.
func (c *Credentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if ctx.Value(interceptedKey{}) != nil || hasAuthorization(ctx) {
		return nil, nil
	}
	if err := c.checkTransport(ctx); err != nil {
		return nil, err
	}
	_, tok, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	return c.bearer(tok), nil
}

// RequireTransportSecurity reports whether the credentials need a connection
// with transport security: true unless [InsecureAllowPlaintextLoopback] was
// given (the credentials then check each call's peer instead).
func (c *Credentials) RequireTransportSecurity() bool {
	return c == nil || !c.plaintextLoopback
}

// token returns the source of a call with context ctx and a token from it,
// or the call's status error.
func (c *Credentials) token(ctx context.Context) (source, string, error) {
	src := source{c: c}
	switch {
	case c == nil || (c.cache == nil && c.m == nil):
		return src, "", tokenError(ctx, errNoSource)
	case c.m != nil:
		k, err := c.key(ctx)
		if err != nil {
			return src, "", tokenError(ctx, fmt.Errorf("%w: %w", errKey, err))
		}
		src.key = k
	}
	tok, err := src.Token(ctx)
	if err != nil {
		return src, "", tokenError(ctx, err)
	}
	return src, tok, nil
}

// source is the token source of a call, as the challenge rule acts on it
// (challenge.Source): the Credentials' Cache, or their CacheMap's key for
// the call, resolved once. Its methods return the cache's errors as they are.
type source struct {
	c   *Credentials
	key string // for a CacheMap
}

func (s source) Token(ctx context.Context) (string, error) {
	if s.c.m != nil {
		return s.c.m.EnsureToken(ctx, s.key)
	}
	return s.c.cache.EnsureToken(ctx)
}

func (s source) Invalidate(token string) bool {
	if s.c.m != nil {
		return s.c.m.InvalidateToken(s.key, token)
	}
	return s.c.cache.InvalidateToken(token)
}

func (s source) Renew(ctx context.Context, token string) (string, error) {
	var t jwtcache.Token
	var err error
	if s.c.m != nil {
		t, err = renewMap(s.c.m, ctx, s.key, token)
	} else {
		t, err = renewCache(s.c.cache, ctx, token)
	}
	return t.Value, err
}

// renewCache and renewMap are jwtcache's unexported (*Cache).renew and
// (*CacheMap).renew, which it hands to the packages under it through
// challenge.RenewCache and challenge.RenewMap (see there) rather than
// export them: so that a claims challenge renews a token here as it does in
// jwtcache's Transport. They are asserted as this package is initialized,
// after jwtcache, which sets them: a mismatch of their types fails at once.
var (
	renewCache = challenge.RenewCache.(func(*jwtcache.Cache, context.Context, string) (jwtcache.Token, error))
	renewMap   = challenge.RenewMap.(func(*jwtcache.CacheMap, context.Context, string, string) (jwtcache.Token, error))
)

// checkTransport returns nil if a call with context ctx may carry a token:
// its connection has privacy and integrity (as grpc-go's own check decides,
// with credentials.CheckSecurityLevel) or, with plaintextLoopback, its peer
// is a loopback address. grpc-go puts both the connection's security
// information and its peer in the context of GetRequestMetadata.
func (c *Credentials) checkTransport(ctx context.Context) error {
	ri, _ := credentials.RequestInfoFromContext(ctx)
	err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity)
	if err == nil {
		return nil
	}
	if c != nil && c.plaintextLoopback {
		p, _ := peer.FromContext(ctx)
		if p != nil && loopback(p.Addr) {
			return nil
		}
		return &statusError{code: codes.Unauthenticated,
			err: fmt.Errorf("%w: the peer %s is not a loopback address: %v", ErrInsecureTransport, peerAddr(p), err)}
	}
	return &statusError{code: codes.Unauthenticated,
		err: fmt.Errorf("%w (use TLS, or InsecureAllowPlaintextLoopback for a loopback test server): %v", ErrInsecureTransport, err)}
}

// loopback reports whether a is a loopback IP address and port.
func loopback(a net.Addr) bool {
	if a, ok := a.(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	if a == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsLoopback()
}

// peerAddr returns p's address for an error message.
func peerAddr(p *peer.Peer) string {
	if p == nil || p.Addr == nil {
		return "(unknown)"
	}
	return p.Addr.String()
}

// bearer returns the metadata that carries tok.
func (c *Credentials) bearer(tok string) map[string]string {
	if !c.reuse {
		return map[string]string{"authorization": "Bearer " + tok}
	}
	h := c.last.Load()
	if h == nil || h.token != tok {
		h = &header{token: tok, value: "Bearer " + tok}
		c.last.Store(h)
	}
	return map[string]string{"authorization": h.value}
}

// hasAuthorization reports whether the outgoing metadata in ctx carries an
// authorization value.
func hasAuthorization(ctx context.Context) bool {
	md, ok := metadata.FromOutgoingContext(ctx)
	return ok && len(md["authorization"]) > 0
}

// interceptedKey is the context key that marks a call on which an
// interceptor attaches a token itself.
type interceptedKey struct{}
