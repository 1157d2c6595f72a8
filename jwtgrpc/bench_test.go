package jwtgrpc_test

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/oauth"
	"google.golang.org/grpc/peer"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
)

// perRPCCredentials are the credentials the benchmarks compare, each with a
// cached token: jwtgrpc's on a Cache, and grpc-go's oauth.TokenSource on
// oauth2.ReuseTokenSource, the usual x/oauth2 cache.
func perRPCCredentials(b *testing.B) (p *idp, creds []namedCredentials) {
	p = newIDP(b)
	tok := p.mint("client-1", time.Hour)
	cache := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
	reuse := oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(&oauth2.Token{
		AccessToken: tok, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour),
	}))
	return p, []namedCredentials{
		{"jwtgrpc", jwtgrpc.NewCredentials(cache)},
		{"oauth.TokenSource", oauth.TokenSource{TokenSource: reuse}},
	}
}

type namedCredentials struct {
	name  string
	creds credentials.PerRPCCredentials
}

// BenchmarkGRPC_PerRPC measures GetRequestMetadata, what each call pays for
// its token, on a context shaped as grpc-go's: the caller's deadline, the
// peer, and the request info of a TLS connection.
func BenchmarkGRPC_PerRPC(b *testing.B) {
	_, all := perRPCCredentials(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	ctx = secureContext(peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443}}))
	// grpc-go passes the audience as one URI.
	uri := []string{"https://127.0.0.1/grpc.testing.TestService"}
	for _, nc := range all {
		if _, err := nc.creds.GetRequestMetadata(ctx, uri...); err != nil {
			b.Fatal(err)
		}
		b.Run(nc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if md, err := nc.creds.GetRequestMetadata(ctx, uri...); err != nil || len(md) != 1 {
					b.Fatalf("GetRequestMetadata() = %v, %v", md, err)
				}
			}
		})
		b.Run(nc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if md, err := nc.creds.GetRequestMetadata(ctx, uri...); err != nil || len(md) != 1 {
						b.Errorf("GetRequestMetadata() = %v, %v", md, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGRPC_PerRPC_Call measures a whole unary call over TLS on
// loopback to the test server, which verifies every token, with each of the
// credentials, and with jwtgrpc's interceptor instead.
func BenchmarkGRPC_PerRPC_Call(b *testing.B) {
	p, all := perRPCCredentials(b)
	s := startServer(b, p, serverConfig{})
	opts := map[string]grpc.DialOption{}
	for _, nc := range all {
		opts[nc.name] = grpc.WithPerRPCCredentials(nc.creds)
	}
	opts["jwtgrpc interceptor"] = withInterceptors(all[0].creds.(*jwtgrpc.Credentials))
	for _, name := range []string{"jwtgrpc", "jwtgrpc interceptor", "oauth.TokenSource"} {
		client := dial(b, s.addr, s.clientTLS, opts[name])
		if _, err := call(context.Background(), client); err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := call(context.Background(), client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
