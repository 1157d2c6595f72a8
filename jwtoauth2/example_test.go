package jwtoauth2_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtoauth2"
)

// A service-to-service client: client-credentials tokens from the identity
// provider, cached, and sent on every call to the API.
func ExampleClientCredentials() {
	idp, issued := tokenEndpoint(nil, "Bearer") // stands in for Keycloak, Auth0, Okta
	defer idp.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Fields(r.Header.Get("Authorization"))[0])
	}))
	defer api.Close()

	cache := jwtcache.NewCache(
		jwtcache.Name("billing"),
		jwtcache.TokenFunction(jwtoauth2.ClientCredentials(&clientcredentials.Config{
			ClientID:     "svc",
			ClientSecret: "s3cret",
			TokenURL:     idp.URL + "/token",
		})),
	)
	client := &http.Client{
		Transport: jwtcache.NewTransport(cache, nil, jwtcache.Hosts(strings.TrimPrefix(api.URL, "http://"))),
		Timeout:   10 * time.Second,
	}

	for range 3 {
		resp, err := client.Get(api.URL + "/invoices")
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Status, string(body))
	}
	fmt.Println("tokens issued:", issued.Load())
	// Output:
	// 200 OK Bearer
	// 200 OK Bearer
	// 200 OK Bearer
	// tokens issued: 1
}

// The cache as an oauth2.TokenSource, for libraries that take one, such as
// gRPC's per-RPC credentials: grpc.WithPerRPCCredentials(oauth.TokenSource{
// TokenSource: jwtoauth2.TokenSource(ctx, cache)}) (but see jwtgrpc, which
// takes the token with each call's context).
func ExampleTokenSource() {
	idp, _ := tokenEndpoint(nil, "Bearer")
	defer idp.Close()
	cache := jwtcache.NewCache(jwtcache.TokenFunction(jwtoauth2.ClientCredentials(&clientcredentials.Config{
		ClientID: "svc", ClientSecret: "s3cret", TokenURL: idp.URL + "/token",
	})))

	ts := jwtoauth2.TokenSource(context.Background(), cache)
	tok, err := ts.Token()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.Type(), tok.Valid(), time.Until(tok.Expiry).Round(time.Hour))
	// Output: Bearer true 1h0m0s
}
