package provider_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// newAPIClient returns an HTTP client whose requests to apiHost carry a token
// from the provider at issuer, for the client billing.
func newAPIClient(ctx context.Context, issuer, secret, apiHost string) (*http.Client, error) {
	client, err := provider.New(ctx, issuer, provider.ClientSecretBasic("billing", secret))
	if err != nil {
		return nil, err // no discovery document, another issuer, plain HTTP to a remote host
	}
	cache := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.IssueFunction(client.Issue))
	return &http.Client{
		Transport: jwtcache.NewTransport(cache, nil, jwtcache.Hosts(apiHost)),
		Timeout:   10 * time.Second,
	}, nil
}

// The path most services need, the README's: from a provider's issuer URL to
// an HTTP client whose requests carry its tokens. The provider here is a
// discovery document and a token endpoint on 127.0.0.1 (startIDP, which
// issues tokens that live an hour to billing, with the secret s3cret), and
// the API a server on 127.0.0.1 that prints what it gets. One token serves
// every request while it lives.
func Example_httpClient() {
	idp := startIDP()
	defer idp.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Method, r.URL.Path, r.Header.Get("Authorization"))
	}))
	defer api.Close()

	httpClient, err := newAPIClient(context.Background(), idp.URL, "s3cret", "127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, path := range []string{"/invoices", "/invoices/42", "/orders"} {
		resp, err := httpClient.Get(api.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	fmt.Println("tokens issued:", idp.issued)
	// Output:
	// GET /invoices Bearer token-1
	// GET /invoices/42 Bearer token-1
	// GET /orders Bearer token-1
	// tokens issued: 1
}
