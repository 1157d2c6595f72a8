package jwtgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// TestGRPC_Credentials_TLS sends the cached token on unary, server-streaming
// and bidirectional calls over TLS from 16 goroutines: the server verifies
// every call's token and its handler finds the claims, and the provider is
// asked once.
func TestGRPC_Credentials_TLS(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	client := dial(t, s.addr, s.clientTLS, grpc.WithPerRPCCredentials(jwtgrpc.NewCredentials(p.cache())))

	const goroutines, calls = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*calls*3)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				errs <- checkCalls(context.Background(), client, "client-1")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("token function called %d times; want 1", got)
	}
	if got, want := s.attempts.Load(), int64(goroutines*calls*3); got != want {
		t.Errorf("server saw %d calls; want %d", got, want)
	}
}

// checkCalls makes a unary, a server-streaming and a bidirectional call, and
// checks that the server saw the subject want on each.
func checkCalls(ctx context.Context, client testgrpc.TestServiceClient, want string) error {
	if sub, err := call(ctx, client); err != nil || sub != want {
		return fmt.Errorf("UnaryCall() = %q, %v; want %q, nil", sub, err, want)
	}
	out, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{}, {}},
	})
	if err != nil {
		return fmt.Errorf("StreamingOutputCall() error = %v", err)
	}
	for range 2 {
		if resp, err := out.Recv(); err != nil || string(resp.GetPayload().GetBody()) != want {
			return fmt.Errorf("StreamingOutputCall Recv() = %q, %v; want %q, nil", resp.GetPayload().GetBody(), err, want)
		}
	}
	bidi, err := client.FullDuplexCall(ctx)
	if err != nil {
		return fmt.Errorf("FullDuplexCall() error = %v", err)
	}
	if resp, err := bidi.Recv(); err != nil || string(resp.GetPayload().GetBody()) != want {
		return fmt.Errorf("FullDuplexCall Recv() = %q, %v; want the greeting %q", resp.GetPayload().GetBody(), err, want)
	}
	if err := bidi.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}}); err != nil {
		return fmt.Errorf("FullDuplexCall Send() error = %v", err)
	}
	if resp, err := bidi.Recv(); err != nil || string(resp.GetPayload().GetBody()) != "ping" {
		return fmt.Errorf("FullDuplexCall Recv() = %q, %v; want the echo", resp.GetPayload().GetBody(), err)
	}
	if err := bidi.CloseSend(); err != nil {
		return fmt.Errorf("FullDuplexCall CloseSend() error = %v", err)
	}
	return nil
}

// TestGRPC_Credentials_Plaintext checks that the token never goes out in
// plaintext, but to a loopback peer with InsecureAllowPlaintextLoopback.
func TestGRPC_Credentials_Plaintext(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{plaintext: true})

	t.Run("NewClient refuses", func(t *testing.T) {
		_, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecureTransport),
			grpc.WithPerRPCCredentials(jwtgrpc.NewCredentials(p.cache())))
		if err == nil {
			t.Fatal("grpc.NewClient(insecure, Credentials) error = nil; want the transport security error")
		}
	})
	t.Run("loopback allowed", func(t *testing.T) {
		creds := jwtgrpc.NewCredentials(p.cache(), jwtgrpc.InsecureAllowPlaintextLoopback())
		if creds.RequireTransportSecurity() {
			t.Error("RequireTransportSecurity() = true; want false with InsecureAllowPlaintextLoopback")
		}
		client := dial(t, s.addr, insecureTransport, grpc.WithPerRPCCredentials(creds))
		if sub, err := call(context.Background(), client); err != nil || sub != "client-1" {
			t.Errorf("UnaryCall() = %q, %v; want client-1, nil", sub, err)
		}
	})
	t.Run("other peer refused", func(t *testing.T) {
		// A plaintext connection whose peer is not a loopback address (the
		// dialer reaches the test server, but says it is 192.0.2.1).
		fetches := p.calls.Load()
		attempts := s.attempts.Load()
		creds := jwtgrpc.NewCredentials(p.cache(), jwtgrpc.InsecureAllowPlaintextLoopback())
		for name, opt := range map[string]grpc.DialOption{
			"Credentials": grpc.WithPerRPCCredentials(creds),
			"interceptor": withInterceptors(creds),
		} {
			client := dial(t, "192.0.2.1:443", insecureTransport, opt, grpc.WithContextDialer(elsewhere(s.addr)))
			_, err := call(context.Background(), client)
			if status.Code(err) != codes.Unauthenticated || !errors.Is(err, jwtgrpc.ErrInsecureTransport) {
				t.Errorf("%s: UnaryCall() error = %v; want Unauthenticated wrapping ErrInsecureTransport", name, err)
			}
		}
		if got := s.attempts.Load() - attempts; got != 0 {
			t.Errorf("server saw %d calls; want 0", got)
		}
		// The interceptor takes its token before the connection is known.
		if got := p.calls.Load() - fetches; got > 1 {
			t.Errorf("token function called %d times; want at most 1", got)
		}
	})
	t.Run("interceptor without the option", func(t *testing.T) {
		// grpc-go refuses the interceptor's call credentials itself; the
		// token, never sent, is not dropped.
		fetches := p.calls.Load()
		creds := jwtgrpc.NewCredentials(p.cache())
		client := dial(t, s.addr, insecureTransport, withInterceptors(creds))
		for range 3 {
			if _, err := call(context.Background(), client); status.Code(err) != codes.Unauthenticated {
				t.Errorf("UnaryCall() error = %v; want Unauthenticated", err)
			}
		}
		if got := p.calls.Load() - fetches; got != 1 {
			t.Errorf("token function called %d times; want 1: a token never sent must not be dropped", got)
		}
	})
	t.Run("no request info", func(t *testing.T) {
		// Outside grpc-go, nothing says the connection is secure.
		_, err := jwtgrpc.NewCredentials(p.cache()).GetRequestMetadata(context.Background())
		if !errors.Is(err, jwtgrpc.ErrInsecureTransport) {
			t.Errorf("GetRequestMetadata(Background) error = %v; want ErrInsecureTransport", err)
		}
	})
}

// elsewhere returns a dialer that connects to addr, on loopback, with a
// connection that reports a peer address on a documentation network.
func elsewhere(addr string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return remoteConn{Conn: c}, nil
	}
}

type remoteConn struct{ net.Conn }

func (remoteConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 443}
}

// TestGRPC_Credentials_Loopback checks which peers the plaintext option
// lets a token go to.
func TestGRPC_Credentials_Loopback(t *testing.T) {
	p := newIDP(t)
	creds := jwtgrpc.NewCredentials(p.cache(), jwtgrpc.InsecureAllowPlaintextLoopback())
	plaintext := credentials.RequestInfo{AuthInfo: credentials.TLSInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}}
	tests := []struct {
		addr net.Addr
		ok   bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv4(127, 9, 9, 9), Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 1}, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}, false},
		{&net.TCPAddr{IP: net.IPv4(0, 0, 0, 0), Port: 1}, false},
		{&net.UnixAddr{Name: "/tmp/grpc.sock", Net: "unix"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		ctx := credentials.NewContextWithRequestInfo(context.Background(), plaintext)
		if tt.addr != nil {
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: tt.addr})
		}
		md, err := creds.GetRequestMetadata(ctx)
		if got := err == nil; got != tt.ok || (err != nil && !errors.Is(err, jwtgrpc.ErrInsecureTransport)) {
			t.Errorf("GetRequestMetadata(plaintext to %v) = %v, %v; want a token: %v", tt.addr, md, err, tt.ok)
		}
	}
}

// TestGRPC_Credentials_StatusCodes checks the status of a call that gets no
// token, for each kind of failure, on GetRequestMetadata as grpc-go calls
// it: a refusal is Unauthenticated, an outage Unavailable, and the message
// never holds a token.
func TestGRPC_Credentials_StatusCodes(t *testing.T) {
	p := newIDP(t)
	expired := p.mint("client-1", -time.Minute)
	ok := func(tok string) jwtcache.TokenFunc {
		return func(context.Context) (string, error) { return tok, nil }
	}
	fails := func(err error) jwtcache.TokenFunc {
		return func(context.Context) (string, error) { return "", err }
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	past, cancelPast := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancelPast()
	tests := []struct {
		name   string
		creds  *jwtgrpc.Credentials
		ctx    context.Context // the default is Background
		calls  int             // the default is 1; the last call's error is checked
		want   codes.Code
		wantIs error
		secret string // must not be in the message
	}{
		{name: "provider refused: invalid_client, 401",
			creds: creds(fails(&provider.Error{Code: "invalid_client", StatusCode: 401})), want: codes.Unauthenticated},
		{name: "provider refused: invalid_grant, 400",
			creds: creds(fails(&provider.Error{Code: "invalid_grant", StatusCode: 400})), want: codes.Unauthenticated},
		{name: "provider refused: invalid_scope in a 200",
			creds: creds(fails(&provider.Error{Code: "invalid_scope", StatusCode: 200})), want: codes.Unauthenticated},
		{name: "provider failed: server_error, 500",
			creds: creds(fails(&provider.Error{Code: "server_error", StatusCode: 500})), want: codes.Unavailable},
		{name: "provider overloaded: 429",
			creds: creds(fails(&provider.Error{Code: "invalid_request", StatusCode: 429})), want: codes.Unavailable},
		{name: "provider overloaded: temporarily_unavailable, 400",
			creds: creds(fails(&provider.Error{Code: "temporarily_unavailable", StatusCode: 400})), want: codes.Unavailable},
		{name: "provider 503 without an OAuth body",
			creds: creds(fails(errors.New("provider: token request: HTTP 503, without an OAuth error response"))), want: codes.Unavailable},
		{name: "provider unreachable",
			creds: creds(fails(errOutage)), want: codes.Unavailable},
		{name: "backing off after a refusal",
			creds: creds(fails(&provider.Error{Code: "invalid_client", StatusCode: 401})), calls: 2,
			want: codes.Unauthenticated, wantIs: jwtcache.ErrBackoff},
		{name: "backing off after an outage",
			creds: creds(fails(errOutage)), calls: 2, want: codes.Unavailable, wantIs: jwtcache.ErrBackoff},
		{name: "token type not Bearer",
			creds: creds(fails(fmt.Errorf("%w: %q", provider.ErrTokenType, "DPoP"))), want: codes.Unauthenticated, wantIs: provider.ErrTokenType},
		{name: "unparsable token",
			creds: creds(ok("opaque-secret-token"), jwtcache.RejectUnparsable(true)),
			want:  codes.Unauthenticated, wantIs: jwtcache.ErrUnparsable, secret: "opaque-secret-token"},
		{name: "expired on arrival",
			creds: creds(ok(expired)), want: codes.Unauthenticated, wantIs: jwtcache.ErrExpired, secret: expired},
		{name: "empty token",
			creds: creds(ok("")), want: codes.Unauthenticated, wantIs: jwtcache.ErrEmptyToken},
		{name: "status from the token function",
			creds: creds(fails(status.Error(codes.PermissionDenied, "not this client"))), want: codes.PermissionDenied},
		{name: "control-plane status from the token function",
			creds: creds(fails(status.Error(codes.FailedPrecondition, "no"))), want: codes.Internal},
		{name: "token function panics",
			creds: creds(func(context.Context) (string, error) { panic("boom") }), want: codes.Internal, wantIs: jwtcache.ErrPanic},
		{name: "fetch timeout",
			creds: creds(func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }, jwtcache.FetchTimeout(time.Millisecond)),
			want:  codes.Unavailable, wantIs: context.DeadlineExceeded},
		{name: "call cancelled",
			creds: creds(ok("unused")), ctx: cancelled, want: codes.Canceled, wantIs: context.Canceled},
		{name: "call deadline passed",
			creds: creds(ok("unused")), ctx: past, want: codes.DeadlineExceeded, wantIs: context.DeadlineExceeded},
		{name: "no token function",
			creds: jwtgrpc.NewCredentials(jwtcache.NewCache()), want: codes.Internal, wantIs: jwtcache.ErrNoTokenFunction},
		{name: "nil cache",
			creds: jwtgrpc.NewCredentials(nil), want: codes.Internal},
		{name: "zero Credentials",
			creds: &jwtgrpc.Credentials{}, want: codes.Internal},
		{name: "nil Credentials",
			creds: nil, want: codes.Internal},
		{name: "nil CacheMap",
			creds: jwtgrpc.NewMapCredentials(nil, tenantKey), want: codes.Internal},
		{name: "nil key function",
			creds: jwtgrpc.NewMapCredentials(jwtcache.NewCacheMap(jwtcache.MapTokenFunction(p.tenantToken)), nil), want: codes.Internal},
		{name: "key function fails",
			creds: jwtgrpc.NewMapCredentials(jwtcache.NewCacheMap(jwtcache.MapTokenFunction(p.tenantToken)), tenantKey),
			want:  codes.Internal, wantIs: errNoTenant},
		{name: "key function returns a status",
			creds: jwtgrpc.NewMapCredentials(jwtcache.NewCacheMap(jwtcache.MapTokenFunction(p.tenantToken)),
				func(context.Context) (string, error) { return "", status.Error(codes.PermissionDenied, "no tenant") }),
			want: codes.PermissionDenied},
		{name: "empty key",
			creds: jwtgrpc.NewMapCredentials(jwtcache.NewCacheMap(jwtcache.MapTokenFunction(p.tenantToken)),
				func(context.Context) (string, error) { return "", nil }),
			want: codes.Internal, wantIs: jwtcache.ErrEmptyKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var md map[string]string
			var err error
			for range max(tt.calls, 1) {
				md, err = tt.creds.GetRequestMetadata(secureContext(ctx))
			}
			if md != nil || status.Code(err) != tt.want {
				t.Fatalf("GetRequestMetadata() = %v, %v; want no metadata, %v", md, err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("GetRequestMetadata() error = %v; want it to wrap %v", err, tt.wantIs)
			}
			if msg := status.Convert(err).Message(); !strings.HasPrefix(msg, "jwtgrpc: ") || (tt.secret != "" && strings.Contains(msg, tt.secret)) {
				t.Errorf("status message = %q; want a jwtgrpc error without the token", msg)
			}
		})
	}
}

// creds returns Credentials on a cache with token function f.
func creds(f jwtcache.TokenFunc, opts ...jwtcache.Option) *jwtgrpc.Credentials {
	return jwtgrpc.NewCredentials(jwtcache.NewCache(append([]jwtcache.Option{
		jwtcache.TokenFunction(f), jwtcache.Logger(nil), jwtcache.Backoff(time.Hour, time.Hour),
	}, opts...)...))
}

// TestGRPC_Credentials_StatusOnTheWire checks that a caller gets the status
// of a call that got no token as GetRequestMetadata returned it: grpc-go
// keeps the code and the error.
func TestGRPC_Credentials_StatusOnTheWire(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	tests := []struct {
		name   string
		err    error
		want   codes.Code
		wantIs error
	}{
		{"refused", &provider.Error{Code: "invalid_client", StatusCode: 401}, codes.Unauthenticated, nil},
		{"outage", errOutage, codes.Unavailable, jwtcache.ErrBackoff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.fail(tt.err)
			defer p.fail(nil)
			fetches := p.calls.Load()
			creds := jwtgrpc.NewCredentials(p.cache(jwtcache.Backoff(time.Hour, time.Hour)))
			for name, opt := range map[string]grpc.DialOption{
				"Credentials": grpc.WithPerRPCCredentials(creds),
				"interceptor": withInterceptors(creds),
			} {
				client := dial(t, s.addr, s.clientTLS, opt)
				for i := range 5 {
					// WaitForReady: grpc-go once retried such calls forever
					// (https://github.com/grpc/grpc-go/issues/3749).
					_, err := call(context.Background(), client, grpc.WaitForReady(true))
					if status.Code(err) != tt.want {
						t.Errorf("%s: UnaryCall() #%d error = %v; want %v", name, i+1, err, tt.want)
					}
					if i > 0 && tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
						t.Errorf("%s: UnaryCall() #%d error = %v; want it to wrap %v", name, i+1, err, tt.wantIs)
					}
				}
			}
			// The backoff spares the provider: one fetch for ten calls.
			if got := p.calls.Load() - fetches; got != 1 {
				t.Errorf("token function called %d times; want 1", got)
			}
		})
	}
	if got := s.attempts.Load(); got != 0 {
		t.Errorf("server saw %d calls; want 0: a call without a token is not sent", got)
	}
}

// TestGRPC_Credentials_OwnAuthorization checks that a call that carries its
// own authorization metadata is sent with it, and without the cache's token.
func TestGRPC_Credentials_OwnAuthorization(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	creds := jwtgrpc.NewCredentials(p.cache())
	own := p.mint("someone-else", time.Hour)
	for name, opt := range map[string]grpc.DialOption{
		"Credentials": grpc.WithPerRPCCredentials(creds),
		"interceptor": withInterceptors(creds),
	} {
		client := dial(t, s.addr, s.clientTLS, opt)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+own)
		if sub, err := call(ctx, client); err != nil || sub != "someone-else" {
			t.Errorf("%s: UnaryCall(own token) = %q, %v; want someone-else, nil", name, sub, err)
		}
	}
	// The interceptor also leaves alone a call with call credentials of its
	// own (on the connection's credentials, grpc-go sends both).
	client := dial(t, s.addr, s.clientTLS, withInterceptors(creds))
	ownCreds := jwtgrpc.NewCredentials(jwtcache.NewCache(jwtcache.TokenFunction(func(context.Context) (string, error) {
		return own, nil
	})))
	if sub, err := call(context.Background(), client, grpc.PerRPCCredentials(ownCreds)); err != nil || sub != "someone-else" {
		t.Errorf("UnaryCall(own call credentials) = %q, %v; want someone-else, nil", sub, err)
	}
	if got := p.calls.Load(); got != 0 {
		t.Errorf("token function called %d times; want 0", got)
	}
}

// TestGRPC_Credentials_OneAuthorization checks that a connection with both
// the Credentials and interceptors sends one token per call: the server,
// which refuses a call with two, accepts every call.
func TestGRPC_Credentials_OneAuthorization(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	creds := jwtgrpc.NewCredentials(p.cache())
	other := jwtgrpc.NewCredentials(p.cache())
	client := dial(t, s.addr, s.clientTLS, grpc.WithPerRPCCredentials(creds),
		grpc.WithChainUnaryInterceptor(other.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(other.StreamClientInterceptor()))
	if err := checkCalls(context.Background(), client, "client-1"); err != nil {
		t.Error(err)
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("token function called %d times; want 1 (only the interceptor's cache)", got)
	}
}

// TestGRPC_MapCredentials_Tenant sends each tenant's token, chosen by a key
// from the call's context, from goroutines calling for three tenants at
// once; a call without a tenant fails unsent.
func TestGRPC_MapCredentials_Tenant(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	m := jwtcache.NewCacheMap(jwtcache.MapTokenFunction(p.tenantToken), jwtcache.Logger(nil))
	creds := jwtgrpc.NewMapCredentials(m, tenantKey)
	for name, opts := range map[string][]grpc.DialOption{
		"Credentials": {grpc.WithPerRPCCredentials(creds)},
		"interceptor": {grpc.WithChainUnaryInterceptor(creds.UnaryClientInterceptor()), grpc.WithChainStreamInterceptor(creds.StreamClientInterceptor())},
	} {
		t.Run(name, func(t *testing.T) {
			client := dial(t, s.addr, s.clientTLS, opts...)
			var wg sync.WaitGroup
			errs := make(chan error, 30)
			for i := range 30 {
				tenant := []string{"tenant-a", "tenant-b", "tenant-c"}[i%3]
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- checkCalls(withTenant(context.Background(), tenant), client, tenant)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			attempts := s.attempts.Load()
			if _, err := call(context.Background(), client); status.Code(err) != codes.Internal || !errors.Is(err, errNoTenant) {
				t.Errorf("UnaryCall(no tenant) error = %v; want Internal wrapping the key function's error", err)
			}
			if got := s.attempts.Load() - attempts; got != 0 {
				t.Errorf("server saw %d calls without a tenant; want 0", got)
			}
		})
	}
	if got := p.calls.Load(); got != 3 {
		t.Errorf("token function called %d times; want 3, one per tenant", got)
	}

	// A tenant's token revoked: the interceptor drops that tenant's, and
	// only that tenant's, and retries with a fresh one.
	client := dial(t, s.addr, s.clientTLS, withInterceptors(creds))
	ctxA := withTenant(context.Background(), "tenant-a")
	tok, err := m.EnsureToken(ctxA, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	s.revoke(tok)
	for _, tenant := range []string{"tenant-a", "tenant-b", "tenant-a"} {
		if sub, err := call(withTenant(context.Background(), tenant), client); err != nil || sub != tenant {
			t.Errorf("UnaryCall(%s) = %q, %v; want %s, nil", tenant, sub, err, tenant)
		}
	}
	if got := p.calls.Load(); got != 4 {
		t.Errorf("token function called %d times; want 4, one more for tenant-a", got)
	}
}

// tenantKey is a CacheMap key function: the tenant in the context.
func tenantKey(ctx context.Context) (string, error) {
	if t, ok := ctx.Value(tenantCtxKey{}).(string); ok {
		return t, nil
	}
	return "", errNoTenant
}

var errNoTenant = errors.New("no tenant in the context")

type tenantCtxKey struct{}

func withTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantCtxKey{}, tenant)
}
