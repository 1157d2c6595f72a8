package jwtgrpc_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
)

// TestGRPC_UnaryInterceptor_Revoked revokes the cached token while 8
// goroutines make calls: each call refused with it is retried once with a
// fresh token and succeeds, and the provider is asked once more, not once
// per refusal.
func TestGRPC_UnaryInterceptor_Revoked(t *testing.T) {
	p := newIDP(t)
	s := startServer(t, p, serverConfig{})
	c := p.cache()
	client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(c)))

	const goroutines, calls = 8, 5
	var before, after sync.WaitGroup
	revoked := make(chan struct{})
	errs := make(chan error, 2*goroutines*calls)
	for range goroutines {
		before.Add(1)
		after.Add(1)
		go func() {
			defer after.Done()
			for range calls {
				_, err := call(context.Background(), client)
				errs <- err
			}
			before.Done()
			<-revoked
			for range calls {
				_, err := call(context.Background(), client)
				errs <- err
			}
		}()
	}
	before.Wait()
	tok, err := c.EnsureToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.revoke(tok)
	close(revoked)
	after.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UnaryCall() error = %v; want nil", err)
		}
	}
	if got := p.calls.Load(); got != 2 {
		t.Errorf("token function called %d times; want 2", got)
	}
	refused := s.refused.Load()
	if refused < 1 || refused > goroutines {
		t.Errorf("server refused %d calls; want 1 to %d, a call per goroutine at most", refused, goroutines)
	}
	// Each refused call was sent exactly twice.
	if got, want := s.attempts.Load(), 2*goroutines*calls+refused; got != want {
		t.Errorf("server saw %d calls; want %d (%d calls, %d retries)", got, want, 2*goroutines*calls, refused)
	}
}

// TestGRPC_UnaryInterceptor_RetryOnce checks that a call is never sent more
// than twice, and only again on Unauthenticated with a different token.
func TestGRPC_UnaryInterceptor_RetryOnce(t *testing.T) {
	t.Run("refused again", func(t *testing.T) {
		p := newIDP(t)
		s := startServer(t, p, serverConfig{})
		client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(p.cache())))
		s.refuseAll(true)
		// The first call is sent twice, with the first token and a fresh
		// one. The second call's refusal of the fresh one, the second token
		// in a row refused as it arrived, makes the cache back off
		// (jwtcache.ErrRejected) and keep it: no retry, and the third call
		// is sent once with it, until the backoff ends.
		for i, want := range []int64{2, 3, 4} {
			if _, err := call(context.Background(), client); status.Code(err) != codes.Unauthenticated {
				t.Errorf("UnaryCall() error = %v; want Unauthenticated", err)
			}
			if got := s.attempts.Load(); got != want {
				t.Errorf("after %d calls, server saw %d; want %d", i+1, got, want)
			}
		}
		if got := p.calls.Load(); got != 2 {
			t.Errorf("token function called %d times; want 2", got)
		}
	})
	t.Run("no fresh token", func(t *testing.T) {
		p := newIDP(t)
		s := startServer(t, p, serverConfig{})
		c := p.cache()
		client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(c)))
		tok, err := c.EnsureToken(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s.revoke(tok)
		p.fail(errOutage)
		if _, err := call(context.Background(), client); status.Code(err) != codes.Unauthenticated {
			t.Errorf("UnaryCall() error = %v; want the server's Unauthenticated", err)
		}
		if got := s.attempts.Load(); got != 1 {
			t.Errorf("server saw %d calls; want 1: no token to retry with", got)
		}
	})
	t.Run("same token again", func(t *testing.T) {
		// A token function that hands back the token it holds.
		p := newIDP(t)
		s := startServer(t, p, serverConfig{})
		tok := p.mint("client-1", time.Hour)
		c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(context.Context) (string, error) {
			p.calls.Add(1)
			return tok, nil
		}))
		client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(c)))
		s.revoke(tok)
		if _, err := call(context.Background(), client); status.Code(err) != codes.Unauthenticated {
			t.Errorf("UnaryCall() error = %v; want Unauthenticated", err)
		}
		if got := s.attempts.Load(); got != 1 {
			t.Errorf("server saw %d calls; want 1: no different token to retry with", got)
		}
	})
	t.Run("other errors", func(t *testing.T) {
		p := newIDP(t)
		s := startServer(t, p, serverConfig{})
		client := dial(t, s.addr, s.clientTLS, withInterceptors(jwtgrpc.NewCredentials(p.cache())))
		// The test service does not implement EmptyCall.
		if _, err := client.EmptyCall(context.Background(), &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
			t.Errorf("EmptyCall() error = %v; want Unimplemented", err)
		}
		if sub, err := call(context.Background(), client); err != nil || sub != "client-1" {
			t.Errorf("UnaryCall() = %q, %v; want client-1, nil", sub, err)
		}
		if got := s.attempts.Load(); got != 2 {
			t.Errorf("server saw %d calls; want 2: no retry", got)
		}
		if got := p.calls.Load(); got != 1 {
			t.Errorf("token function called %d times; want 1: the token was not refused", got)
		}
	})
}

// TestGRPC_StreamInterceptor_Revoked checks that a stream refused with a
// revoked token is opened again with a fresh one when nothing went either
// way on it yet, and is not when something did, in which case the token is
// dropped for the next stream.
func TestGRPC_StreamInterceptor_Revoked(t *testing.T) {
	tests := []struct {
		name      string
		stream    func(testgrpc.TestServiceClient) error // uses the revoked token first
		wantCode  codes.Code
		wantTries int64 // streams the server saw for it
	}{
		{"bidi, receive first", greeted, codes.OK, 2},
		{"bidi, Header first", func(client testgrpc.TestServiceClient) error {
			bidi, err := client.FullDuplexCall(context.Background())
			if err != nil {
				return err
			}
			// grpc-go answers Header on a refused stream with no metadata
			// and no error: the refusal comes with the first RecvMsg.
			if _, err := bidi.Header(); err != nil {
				return err
			}
			if _, err := bidi.Recv(); err != nil {
				return err
			}
			if md, err := bidi.Header(); err != nil || md == nil {
				return errors.New("no header from the stream opened again")
			}
			return bidi.CloseSend()
		}, codes.OK, 2},
		{"bidi, send first", func(client testgrpc.TestServiceClient) error {
			bidi, err := client.FullDuplexCall(context.Background())
			if err != nil {
				return err
			}
			// A Send on a stream the server refused may succeed or fail
			// with io.EOF; the status comes with Recv.
			_ = bidi.Send(&testgrpc.StreamingOutputCallRequest{})
			_, err = bidi.Recv()
			return err
		}, codes.Unauthenticated, 1},
		{"server streaming", func(client testgrpc.TestServiceClient) error {
			// Generated code sends the request before returning the stream.
			out, err := client.StreamingOutputCall(context.Background(), &testgrpc.StreamingOutputCallRequest{
				ResponseParameters: []*testgrpc.ResponseParameters{{}},
			})
			if err != nil {
				return err
			}
			_, err = out.Recv()
			return err
		}, codes.Unauthenticated, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t)
			s := startServer(t, p, serverConfig{})
			c := p.cache()
			client := dial(t, s.addr, s.clientTLS, grpc.WithChainStreamInterceptor(jwtgrpc.NewCredentials(c).StreamClientInterceptor()))
			tok, err := c.EnsureToken(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s.revoke(tok)
			if err := tt.stream(client); status.Code(err) != tt.wantCode {
				t.Fatalf("stream error = %v; want %v", err, tt.wantCode)
			}
			if got := s.attempts.Load(); got != tt.wantTries {
				t.Errorf("server saw %d streams; want %d", got, tt.wantTries)
			}
			// Either way the refused token is gone: the next stream gets a
			// fresh one at the first try.
			if err := greeted(client); err != nil {
				t.Errorf("next stream error = %v; want nil", err)
			}
			if got := s.attempts.Load(); got != tt.wantTries+1 {
				t.Errorf("server saw %d streams; want %d", got, tt.wantTries+1)
			}
			if got := p.calls.Load(); got != 2 {
				t.Errorf("token function called %d times; want 2", got)
			}
		})
	}
}

// greeted opens a bidirectional stream, receives the greeting, has a
// message echoed and closes.
func greeted(client testgrpc.TestServiceClient) error {
	bidi, err := client.FullDuplexCall(context.Background())
	if err != nil {
		return err
	}
	if resp, err := bidi.Recv(); err != nil {
		return err
	} else if got := string(resp.GetPayload().GetBody()); got != "client-1" {
		return errors.New("greeting for " + got)
	}
	if err := bidi.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}}); err != nil {
		return err
	}
	if resp, err := bidi.Recv(); err != nil {
		return err
	} else if got := string(resp.GetPayload().GetBody()); got != "ping" {
		return errors.New("echo " + got)
	}
	return bidi.CloseSend()
}

// TestGRPC_ProviderOutage takes the provider down: calls go on with the live
// token through its refresh window; once it has expired they fail with
// Unavailable, at once and without a retry, while the provider is asked
// about once per backoff; and they succeed again once it is back.
func TestGRPC_ProviderOutage(t *testing.T) {
	for _, name := range []string{"Credentials", "interceptor"} {
		t.Run(name, func(t *testing.T) {
			// One clock, which moves only when the test moves it, for the
			// provider, the cache and the server.
			clock := testkit.NewClock(time.Now())
			p := newIDP(t)
			p.now = clock.Now
			s := startServer(t, p, serverConfig{clock: clock.Now})
			creds := jwtgrpc.NewCredentials(p.cache(jwtcache.Clock(clock.Now)))
			opt := grpc.WithPerRPCCredentials(creds)
			if name == "interceptor" {
				opt = withInterceptors(creds)
			}
			client := dial(t, s.addr, s.clientTLS, opt)
			if _, err := call(context.Background(), client); err != nil {
				t.Fatal(err)
			}
			<-p.started

			p.fail(errOutage)
			clock.Advance(50 * time.Minute) // in the refresh window
			for range 10 {
				if sub, err := call(context.Background(), client); err != nil || sub != "client-1" {
					t.Errorf("UnaryCall(live token, provider down) = %q, %v; want client-1, nil", sub, err)
				}
			}
			<-p.started // the refresh, which fails
			if got := p.calls.Load(); got != 2 {
				t.Errorf("token function called %d times; want 2", got)
			}

			clock.Advance(11 * time.Minute) // past the token's expiry
			attempts := s.attempts.Load()
			for range 10 {
				_, err := call(context.Background(), client)
				if status.Code(err) != codes.Unavailable {
					t.Errorf("UnaryCall(no token, provider down) error = %v; want Unavailable", err)
				}
			}
			if got := p.calls.Load(); got != 3 {
				t.Errorf("token function called %d times; want 3: one fetch, then the backoff", got)
			}
			if got := s.attempts.Load() - attempts; got != 0 {
				t.Errorf("server saw %d calls; want 0", got)
			}

			p.fail(nil)
			clock.Advance(2 * time.Second) // past the backoff
			if sub, err := call(context.Background(), client); err != nil || sub != "client-1" {
				t.Errorf("UnaryCall(provider back) = %q, %v; want client-1, nil", sub, err)
			}
		})
	}
}

// TestGRPC_SlowFetch_Deadline gives a call a deadline shorter than the
// fetch it waits for: the call fails with DeadlineExceeded at its deadline,
// but the fetch goes on, and the next call gets its token without another.
func TestGRPC_SlowFetch_Deadline(t *testing.T) {
	for _, name := range []string{"Credentials", "interceptor"} {
		t.Run(name, func(t *testing.T) {
			p := newIDP(t)
			s := startServer(t, p, serverConfig{})
			creds := jwtgrpc.NewCredentials(p.cache())
			opt := grpc.WithPerRPCCredentials(creds)
			if name == "interceptor" {
				opt = withInterceptors(creds)
			}
			client := dial(t, s.addr, s.clientTLS, opt)
			release := p.hold()
			// Should the wait ignore the deadline, the call still ends.
			defer time.AfterFunc(10*time.Second, release).Stop()

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := call(ctx, client)
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("UnaryCall(deadline) error = %v; want DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("UnaryCall(deadline) took %s; want about 100ms", d)
			}
			release()
			if sub, err := call(context.Background(), client); err != nil || sub != "client-1" {
				t.Errorf("UnaryCall() = %q, %v; want client-1, nil", sub, err)
			}
			if got := p.calls.Load(); got != 1 {
				t.Errorf("token function called %d times; want 1: the fetch outlived the call", got)
			}
			if got := s.attempts.Load(); got != 1 {
				t.Errorf("server saw %d calls; want 1", got)
			}
		})
	}
}
