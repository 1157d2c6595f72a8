package jwtgrpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
)

// TestGRPC_ServerInterceptor checks what the server interceptors admit, on
// unary and streaming calls: a call with one valid bearer token reaches the
// handler with its claims; any other is refused with Unauthenticated and a
// message that does not say why, and the log says why without the token.
func TestGRPC_ServerInterceptor(t *testing.T) {
	p := newIDP(t)
	valid := p.mint("client-1", time.Hour)
	expired := p.mint("client-1", -time.Hour)
	// The valid token's header (its kid) and claims, signed by another key.
	other := testkit.NewMinter("forger").Mint(time.Now(), time.Hour, nil)
	forged := valid[:strings.LastIndex(valid, ".")] + other[strings.LastIndex(other, "."):]
	tests := []struct {
		name      string
		values    []string // authorization metadata
		wantCode  codes.Code
		wantLevel string // of the log record
		wantLog   string // in the log record
	}{
		{"valid", []string{"Bearer " + valid}, codes.OK, "", ""},
		{"scheme in lower case", []string{"bearer " + valid}, codes.OK, "", ""},
		{"scheme in capitals, three spaces", []string{"BEARER   " + valid}, codes.OK, "", ""},
		{"no metadata", nil, codes.Unauthenticated, "DEBUG", "no bearer token"},
		{"another scheme", []string{"Basic dXNlcjpwYXNz"}, codes.Unauthenticated, "DEBUG", "no bearer token"},
		{"scheme only", []string{"Bearer"}, codes.Unauthenticated, "INFO", "malformed"},
		{"two values", []string{"Bearer " + valid, "Bearer " + valid}, codes.Unauthenticated, "INFO", "2 Authorization headers"},
		{"bad character", []string{"Bearer " + valid[:10] + "," + valid[10:]}, codes.Unauthenticated, "INFO", "malformed"},
		{"garbage", []string{"Bearer abc"}, codes.Unauthenticated, "INFO", "malformed"},
		{"expired", []string{"Bearer " + expired}, codes.Unauthenticated, "INFO", "expired"},
		{"forged", []string{"Bearer " + forged}, codes.Unauthenticated, "INFO", "bad signature"},
	}
	s := startServer(t, p, serverConfig{})
	client := dial(t, s.addr, s.clientTLS)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			for _, v := range tt.values {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
			}
			logged := len(s.logs.String())
			sub, err := call(ctx, client)
			checkRefusal(t, "UnaryCall", err, tt.wantCode)
			if tt.wantCode == codes.OK && sub != "client-1" {
				t.Errorf("UnaryCall() = %q; want the subject client-1", sub)
			}
			bidi, err := client.FullDuplexCall(ctx)
			if err == nil {
				var resp *testgrpc.StreamingOutputCallResponse
				resp, err = bidi.Recv()
				if tt.wantCode == codes.OK && string(resp.GetPayload().GetBody()) != "client-1" {
					t.Errorf("FullDuplexCall Recv() = %q; want the subject client-1", resp.GetPayload().GetBody())
				}
				_ = bidi.CloseSend()
			}
			checkRefusal(t, "FullDuplexCall", err, tt.wantCode)

			log := s.logs.String()[logged:]
			if tt.wantCode == codes.OK {
				if log != "" {
					t.Errorf("log = %q; want nothing for an admitted call", log)
				}
				return
			}
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				if !strings.Contains(line, "level="+tt.wantLevel) || !strings.Contains(line, tt.wantLog) ||
					!strings.Contains(line, "method=/grpc.testing.TestService/") {
					t.Errorf("log record %q; want level %s, %q and the method", line, tt.wantLevel, tt.wantLog)
				}
			}
			if strings.Count(log, "\n") != 2 {
				t.Errorf("log = %q; want a record for each of the 2 calls", log)
			}
			for _, v := range tt.values {
				if tok := strings.TrimLeft(strings.TrimPrefix(strings.ToLower(v), "bearer"), " "); len(tok) > 8 && strings.Contains(strings.ToLower(log), tok) {
					t.Errorf("log = %q; want no token in it", log)
				}
			}
		})
	}
}

// checkRefusal checks that a call's error has code want and, for a refusal,
// the message that says nothing of why.
func checkRefusal(t *testing.T, method string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s() error = %v; want %v", method, err, want)
	}
	if want == codes.Unauthenticated {
		if msg := status.Convert(err).Message(); msg != "missing or invalid bearer token" {
			t.Errorf("%s() message = %q; want the one that says nothing of why", method, msg)
		}
	}
}

// TestGRPC_ServerInterceptor_KeySetStale checks that a call the server
// cannot check for want of the issuer's keys fails with Unavailable, not
// Unauthenticated, so that a jwtgrpc client keeps its token.
func TestGRPC_ServerInterceptor_KeySetStale(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{keys: staleKeys{}})
	c := p.cache()
	client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(c)))
	for range 3 {
		_, err := call(context.Background(), client)
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "cannot verify tokens now" {
			t.Errorf("UnaryCall() error = %v; want Unavailable, cannot verify tokens now", err)
		}
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("token function called %d times; want 1: the token was not refused", got)
	}
	if got := s.attempts.Load(); got != 3 {
		t.Errorf("server saw %d calls; want 3: no retry", got)
	}
	if log := s.logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "no usable key set") {
		t.Errorf("log = %q; want a warning that names the stale key set", log)
	}
}

// TestGRPC_ServerInterceptor_NilVerifier checks that interceptors without a
// verifier refuse every call, with Internal, and do not panic.
func TestGRPC_ServerInterceptor_NilVerifier(t *testing.T) {
	logger, logs := testkit.NewLogger()
	unary := jwtgrpc.UnaryServerInterceptor(nil, jwtgrpc.Logger(logger), nil)
	_, err := unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/s/m"}, func(context.Context, any) (any, error) {
		t.Error("handler called")
		return nil, nil
	})
	if status.Code(err) != codes.Internal {
		t.Errorf("unary interceptor error = %v; want Internal", err)
	}
	stream := jwtgrpc.StreamServerInterceptor(nil)
	err = stream(nil, fakeServerStream{}, &grpc.StreamServerInfo{FullMethod: "/s/m"}, func(any, grpc.ServerStream) error {
		t.Error("handler called")
		return nil
	})
	if status.Code(err) != codes.Internal {
		t.Errorf("stream interceptor error = %v; want Internal", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("log = %q; want an error record", logs.String())
	}
}

// fakeServerStream is a ServerStream with a background context, and nothing
// else.
type fakeServerStream struct{ grpc.ServerStream }

func (fakeServerStream) Context() context.Context { return context.Background() }
