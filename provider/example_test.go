package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// exampleIDP stands in for Keycloak, Auth0 or Okta in the examples: an
// issuer on 127.0.0.1 with a discovery document and a token endpoint, which
// issues opaque tokens that live an hour to the client billing, when it
// authenticates with the secret s3cret, or with an assertion signed by key
// (if set), or with the assertion "platform-token" (the examples' workload
// identity). An exchanged token names the subject token it was exchanged
// for.
//
// For the users' grants, it takes the authorization code
// "code-from-the-redirect" (of the user alice), and rotates refresh tokens:
// each is spent by the refresh it is used for.
type exampleIDP struct {
	*httptest.Server
	key    crypto.PublicKey
	issued int
	// refresh holds the user of each live refresh token; refreshes counts
	// the refresh tokens issued.
	refresh   map[string]string
	refreshes int
}

func startIDP() *exampleIDP {
	p := &exampleIDP{}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

func (p *exampleIDP) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/openid-configuration" {
		writeJSON(w, http.StatusOK, map[string]any{"issuer": p.URL, "token_endpoint": p.URL + "/token", "jwks_uri": p.URL + "/jwks"})
		return
	}
	r.ParseForm()
	if !p.authenticated(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "client authentication failed"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code", "refresh_token":
		p.serveUser(w, r)
		return
	}
	p.issued++
	token := fmt.Sprintf("token-%d", p.issued)
	if aud := r.PostForm["audience"]; len(aud) > 0 {
		token += " for " + strings.Join(aud, ",")
	}
	if r.PostForm.Get("grant_type") == "urn:ietf:params:oauth:grant-type:token-exchange" {
		token += ", on behalf of " + r.PostForm.Get("subject_token")
	}
	tokenType := "Bearer"
	if r.Header.Get("DPoP") != "" {
		tokenType = "DPoP" // a real provider binds it to the proof's key
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "token_type": tokenType, "expires_in": 3600})
}

// serveUser answers the grants of a user's tokens: the authorization code,
// and the refresh token, which it rotates.
func (p *exampleIDP) serveUser(w http.ResponseWriter, r *http.Request) {
	user := "alice"
	if r.PostForm.Get("grant_type") == "authorization_code" {
		if r.PostForm.Get("code") != "code-from-the-redirect" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
	} else {
		var live bool
		if user, live = p.refresh[r.PostForm.Get("refresh_token")]; !live {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "refresh token spent or unknown"})
			return
		}
		delete(p.refresh, r.PostForm.Get("refresh_token"))
	}
	p.issued++
	p.refreshes++
	if p.refresh == nil {
		p.refresh = map[string]string{}
	}
	rt := fmt.Sprintf("refresh-%d", p.refreshes)
	p.refresh[rt] = user
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": fmt.Sprintf("token-%d for %s", p.issued, user), "token_type": "Bearer",
		"expires_in": 3600, "refresh_token": rt,
	})
}

func (p *exampleIDP) authenticated(r *http.Request) bool {
	if id, secret, ok := r.BasicAuth(); ok {
		return id == "billing" && secret == "s3cret"
	}
	a := r.PostForm.Get("client_assertion")
	if a == "platform-token" {
		return true
	}
	_, err := jws.Verify([]byte(a), jws.WithKey(jwa.ES256, p.key))
	return p.key != nil && err == nil
}

// A client of the provider, found by discovery, feeds a cache: the provider
// is asked once for a token that lives an hour.
func ExampleNew() {
	idp := startIDP()
	defer idp.Close()
	ctx := context.Background()

	client, err := provider.New(ctx, idp.URL, provider.ClientSecretBasic("billing", "s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	cache := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.IssueFunction(client.Issue))
	for range 3 {
		token, err := cache.EnsureToken(ctx)
		fmt.Println(token, err)
	}
	fmt.Println("tokens issued:", idp.issued)
	// Output:
	// token-1 <nil>
	// token-1 <nil>
	// token-1 <nil>
	// tokens issued: 1
}

// An Issuer discovers when first needed, so that a service starts while its
// provider is down; the clients of its tenants share its metadata.
func ExampleIssuer() {
	idp := startIDP()
	defer idp.Close()
	ctx := context.Background()

	iss, err := provider.NewIssuer(idp.URL) // no request yet
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := iss.Client(provider.ClientSecretBasic("billing", "s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	cache := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.IssueFunction(client.Issue))
	token, err := cache.EnsureToken(ctx) // discovers, then asks for a token
	fmt.Println(token, err)
	// Output:
	// token-1 <nil>
}

// A CacheMap keyed by Request.Key holds a token per audience.
func ExampleClient_IssueKey() {
	idp := startIDP()
	defer idp.Close()
	ctx := context.Background()

	client, err := provider.New(ctx, idp.URL, provider.ClientSecretBasic("billing", "s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	apis := jwtcache.NewCacheMap(jwtcache.MapName("apis"), jwtcache.MapIssueFunction(client.IssueKey))
	orders := provider.Request{Audience: []string{"https://orders.example"}}.Key()
	invoices := provider.Request{Audience: []string{"https://invoices.example"}}.Key()
	for _, key := range []string{orders, invoices, orders} {
		token, err := apis.EnsureToken(ctx, key)
		fmt.Println(token, err)
	}
	// Output:
	// token-1 for https://orders.example <nil>
	// token-2 for https://invoices.example <nil>
	// token-1 for https://orders.example <nil>
}

// A client authenticates with a key instead of a secret: each token request
// carries a fresh assertion signed with it.
func ExamplePrivateKeyJWT() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	idp := startIDP()
	defer idp.Close()
	idp.key = key.Public() // registered with the provider

	client, err := provider.New(context.Background(), idp.URL,
		provider.PrivateKeyJWT("billing", key, provider.KeyID("billing-2026")))
	if err != nil {
		fmt.Println(err)
		return
	}
	iss, err := client.Issue(context.Background())
	fmt.Println(iss.Token, iss.ExpiresIn, err)
	// Output:
	// token-1 1h0m0s <nil>
}

// A workload authenticates with the token its platform mounts (a Kubernetes
// projected service account token), read again for every request.
func ExampleClientAssertionFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("platform-token\n"), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	idp := startIDP()
	defer idp.Close()

	client, err := provider.New(context.Background(), idp.URL, provider.ClientAssertionFile("billing", path))
	if err != nil {
		fmt.Println(err)
		return
	}
	iss, err := client.Issue(context.Background())
	fmt.Println(iss.Token, err)
	// Output:
	// token-1 <nil>
}

// A provider without a discovery document is reached at its token URL.
func ExampleNewFromTokenURL() {
	idp := startIDP()
	defer idp.Close()

	client, err := provider.NewFromTokenURL(idp.URL+"/token", provider.ClientSecretBasic("billing", "s3cret"),
		provider.DefaultRequest(provider.Request{Audience: []string{"https://orders.example"}}))
	if err != nil {
		fmt.Println(err)
		return
	}
	iss, err := client.Issue(context.Background())
	fmt.Println(iss.Token, err)
	// Output:
	// token-1 for https://orders.example <nil>
}

// The token endpoint's error response is an *Error.
func ExampleError() {
	idp := startIDP()
	defer idp.Close()

	client, err := provider.New(context.Background(), idp.URL, provider.ClientSecretBasic("billing", "wrong"))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = client.Issue(context.Background())
	var e *provider.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.StatusCode)
	}
	fmt.Println(err)
	// Output:
	// invalid_client 401
	// provider: token request: invalid_client (HTTP 401): client authentication failed
}

// A Request's key is canonical: the same sets give the same key, whatever
// their order, and ParseKey reads it back.
func ExampleRequest_Key() {
	a := provider.Request{Audience: []string{"https://orders.example"}, Scopes: []string{"write", "read"}}
	b := provider.Request{Audience: []string{"https://orders.example"}, Scopes: []string{"read write", "read"}}
	fmt.Println(a.Key())
	fmt.Println(a.Key() == b.Key())
	r, err := provider.ParseKey(a.Key())
	fmt.Println(r.Audience, r.Scopes, err)
	// Output:
	// aud=https%3A%2F%2Forders.example;res=;scope=read,write
	// true
	// [https://orders.example] [read write] <nil>
}

// exampleMTLSIDP stands in for a provider with mutual TLS: discovery on one
// server, and the token endpoint its mtls_endpoint_aliases names on another,
// which requires a client certificate issued by the examples' CA. It issues
// tokens that name the certificate's subject.
type exampleMTLSIDP struct {
	*httptest.Server // discovery
	mtls             *httptest.Server
	issued           atomic.Int32
}

func startMTLSIDP(pki *mtlsPKI) *exampleMTLSIDP {
	p := &exampleMTLSIDP{}
	p.Server = pki.startTLS(http.HandlerFunc(p.discovery), tls.NoClientCert)
	p.mtls = pki.startTLS(http.HandlerFunc(p.token), tls.RequireAndVerifyClientCert)
	return p
}

func (p *exampleMTLSIDP) Close() {
	p.mtls.Close()
	p.Server.Close()
}

func (p *exampleMTLSIDP) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.URL,
		"token_endpoint":                        p.URL + "/token",
		"mtls_endpoint_aliases":                 map[string]string{"token_endpoint": p.mtls.URL + "/token"},
		"token_endpoint_auth_methods_supported": []string{"tls_client_auth"},
	})
}

func (p *exampleMTLSIDP) token(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	if r.PostForm.Get("client_id") != "billing" {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	token := fmt.Sprintf("token-%d for %s", p.issued.Add(1), r.TLS.PeerCertificates[0].Subject.CommonName)
	tokenType := "Bearer"
	if r.Header.Get("DPoP") != "" {
		tokenType = "DPoP" // a real provider binds it to the proof's key
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "token_type": tokenType, "expires_in": 3600})
}

// A client authenticates with its certificate, which the provider may bind
// its tokens to. The code that rotates the certificate has the function
// return the new one, then calls Rotated: the cache drops the tokens of the
// old certificate, and the next token request presents the new one.
func ExampleTLSClientAuth() {
	pki := newPKI() // the provider trusts its CA
	idp := startMTLSIDP(pki)
	defer idp.Close()
	hc := pki.httpClient() // trusts the provider's CA, as RootCAs
	defer hc.CloseIdleConnections()
	ctx := context.Background()

	var current atomic.Pointer[tls.Certificate]
	current.Store(pki.client("billing-2026-03", time.Now().Add(24*time.Hour)))
	client, err := provider.New(ctx, idp.URL,
		provider.TLSClientAuth("billing", func() (*tls.Certificate, error) { return current.Load(), nil }),
		provider.HTTPClient(hc))
	if err != nil {
		fmt.Println(err)
		return
	}
	cache := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.IssueFunction(client.Issue))
	for range 2 {
		fmt.Println(cache.EnsureToken(ctx))
	}

	// The rotation: the new certificate first, then Rotated.
	current.Store(pki.client("billing-2026-04", time.Now().Add(24*time.Hour)))
	provider.Rotated(cache)
	fmt.Println(cache.EnsureToken(ctx))
	// Output:
	// token-1 for billing-2026-03 <nil>
	// token-1 for billing-2026-03 <nil>
	// token-2 for billing-2026-04 <nil>
}

// A service that calls the orders API on behalf of its callers exchanges
// each caller's token once, and reuses what it got for that caller's later
// calls, until the caller's token expires.
func ExampleNewExchanger() {
	idp := startIDP()
	defer idp.Close()
	ctx := context.Background()

	client, err := provider.New(ctx, idp.URL, provider.ClientSecretBasic("billing", "s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	orders := provider.NewExchanger(client, provider.Request{Audience: []string{"https://orders.example"}})
	// The access tokens the service's callers presented.
	for _, caller := range []string{"alice-token", "bob-token", "alice-token"} {
		fmt.Println(orders.EnsureToken(ctx, caller))
	}
	fmt.Println("exchanges:", orders.Stats().Fetches)
	// Output:
	// token-1 for https://orders.example, on behalf of alice-token <nil>
	// token-2 for https://orders.example, on behalf of bob-token <nil>
	// token-1 for https://orders.example, on behalf of alice-token <nil>
	// exchanges: 2
}

// A DPoP key proves possession on the token request and on every request
// that carries the token: the cache holds a DPoP token, and the transport
// sends it as "Authorization: DPoP" with a fresh proof for each request.
func ExampleNewDPoP() {
	idp := startIDP()
	defer idp.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		fmt.Println(r.Method, r.URL.Path, scheme, "with a proof:", r.Header.Get("DPoP") != "")
	}))
	defer api.Close()

	key, err := provider.NewDPoP(nil) // a new P-256 key; or the fleet's own crypto.Signer
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := provider.New(context.Background(), idp.URL, provider.ClientSecretBasic("billing", "s3cret"), provider.DPoPProof(key))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Binding keeps the token to replicas that hold the key, if the cache
	// shares its tokens through a store.
	cache := jwtcache.NewCache(jwtcache.Name("orders"), jwtcache.IssueFunction(client.Issue), key.Binding())
	httpClient := &http.Client{Transport: jwtcache.NewTransport(cache, nil, jwtcache.AuthScheme(key))}
	for _, path := range []string{"/orders", "/orders/42"} {
		resp, err := httpClient.Get(api.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
	}
	fmt.Println("tokens issued:", idp.issued, "algorithm:", key.Algorithm())
	// Output:
	// GET /orders DPoP with a proof: true
	// GET /orders/42 DPoP with a proof: true
	// tokens issued: 1 algorithm: ES256
}
