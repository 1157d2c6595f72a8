package jwtgrpc_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtgrpc"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// Example sends cached tokens on the calls of a gRPC client, and verifies
// them on the server, over TLS.
func Example() {
	// The server: each call's token is verified with the issuer's keys, and
	// the handler finds its claims with verify.FromContext.
	verifier, err := verify.New(issuerKeys, verify.Issuer(testIssuer), verify.Audience(testAudience))
	if err != nil {
		log.Fatal(err)
	}
	logger := slog.Default() // told why a call was refused, never the token
	srv := grpc.NewServer(grpc.Creds(exampleServerTLS),
		grpc.ChainUnaryInterceptor(jwtgrpc.UnaryServerInterceptor(verifier, jwtgrpc.Logger(logger))),
		grpc.ChainStreamInterceptor(jwtgrpc.StreamServerInterceptor(verifier, jwtgrpc.Logger(logger))))
	testgrpc.RegisterTestServiceServer(srv, testService{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop() // Stop returns once Serve has

	// The client: one cache of the service's token, sent on every call,
	// and renewed and sent again once if the server refuses it.
	cache := jwtcache.NewCache(
		jwtcache.Name("orders-client"),
		jwtcache.TokenFunction(clientCredentials), // asks the identity provider, with ctx
	)
	creds := jwtgrpc.NewCredentials(cache)
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(exampleClientTLS),
		grpc.WithChainUnaryInterceptor(creds.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(creds.StreamClientInterceptor()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the server saw", resp.GetUsername())
	// Output: the server saw orders-client
}

// ExampleNewCredentials gives a client per-RPC credentials, which send the
// token on every call but do not retry a call the server refuses.
func ExampleNewCredentials() {
	addr, stop := exampleServer()
	defer stop()

	cache := jwtcache.NewCache(jwtcache.Name("orders-client"), jwtcache.TokenFunction(clientCredentials))
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(exampleClientTLS),
		grpc.WithPerRPCCredentials(jwtgrpc.NewCredentials(cache)),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("the server saw", resp.GetUsername())
	// Output: the server saw orders-client
}

// ExampleNewMapCredentials sends each tenant's token, from a CacheMap keyed
// by the tenant that the caller puts in the call's context.
func ExampleNewMapCredentials() {
	addr, stop := exampleServer()
	defer stop()

	type tenantKey struct{}
	tenants := jwtcache.NewCacheMap(
		jwtcache.MapName("orders-client"),
		// A token for the tenant, from the identity provider.
		jwtcache.MapTokenFunction(func(ctx context.Context, tenant string) (string, error) {
			return exampleToken(tenant), nil
		}),
	)
	creds := jwtgrpc.NewMapCredentials(tenants, func(ctx context.Context) (string, error) {
		if tenant, ok := ctx.Value(tenantKey{}).(string); ok {
			return tenant, nil
		}
		return "", fmt.Errorf("no tenant in the context")
	})
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(exampleClientTLS),
		grpc.WithChainUnaryInterceptor(creds.UnaryClientInterceptor()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	client := testgrpc.NewTestServiceClient(conn)
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		ctx := context.WithValue(context.Background(), tenantKey{}, tenant)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("the server saw", resp.GetUsername())
	}
	_, err = client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	fmt.Println("without a tenant:", status.Code(err))
	// Output:
	// the server saw tenant-a
	// the server saw tenant-b
	// without a tenant: Internal
}

// ExampleUnaryServerInterceptor refuses a call without a valid token with
// Unauthenticated, and a message that says nothing of why.
func ExampleUnaryServerInterceptor() {
	addr, stop := exampleServer()
	defer stop()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(exampleClientTLS))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	fmt.Println(status.Code(err), status.Convert(err).Message())
	// Output: Unauthenticated missing or invalid bearer token
}

// The identity provider of the examples: its minter, the key set it
// publishes, and TLS credentials for a server on 127.0.0.1.
var (
	exampleIDP                         = testkit.NewMinter("grpc-example-idp")
	issuerKeys                         = keySource{exampleIDP.KeyID(): exampleIDP.PublicKey()}
	exampleServerTLS, exampleClientTLS = exampleTLS()
)

// exampleToken is the identity provider's token for sub.
func exampleToken(sub string) string {
	return mintFor(exampleIDP, time.Now(), sub, "example", time.Hour)
}

func exampleTLS() (server, client credentials.TransportCredentials) {
	server, client, err := newTLS()
	if err != nil {
		log.Fatal(err)
	}
	return server, client
}

// clientCredentials stands for a client-credentials token request to the
// identity provider.
func clientCredentials(context.Context) (string, error) {
	return exampleToken("orders-client"), nil
}

// exampleServer starts the examples' server on 127.0.0.1, which verifies
// each call's token and answers with its subject.
func exampleServer() (addr string, stop func()) {
	verifier, err := verify.New(issuerKeys, verify.Issuer(testIssuer), verify.Audience(testAudience))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(exampleServerTLS),
		grpc.ChainUnaryInterceptor(jwtgrpc.UnaryServerInterceptor(verifier)))
	testgrpc.RegisterTestServiceServer(srv, testService{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return lis.Addr().String(), func() {
		srv.Stop()
		<-done
	}
}
