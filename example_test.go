package jwtcache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// identityProvider stands in for Keycloak, Auth0 or Okta in the examples: it
// issues ES256 tokens that live for an hour, and counts them.
type identityProvider struct {
	minter *testkit.Minter
	public jwk.Key // verifies its tokens, as its JWKS would publish it
	issued int
}

func newIdentityProvider() *identityProvider {
	m := testkit.NewMinter("https://idp.example")
	return &identityProvider{minter: m, public: m.PublicKey()}
}

// clientCredentials is what a real token function does over HTTP: ask the
// provider for a token for this service.
func (p *identityProvider) clientCredentials(ctx context.Context) (string, error) {
	p.issued++
	return p.minter.Mint(time.Now(), time.Hour, map[string]any{jwt.SubjectKey: "billing-service"}), nil
}

func Example() {
	idp := newIdentityProvider()
	cache := jwtcache.NewCache(
		jwtcache.Name("billing"),
		jwtcache.TokenFunction(idp.clientCredentials),
	)

	for range 3 {
		token, err := cache.EnsureToken(context.Background())
		if err != nil {
			fmt.Println("no token:", err)
			return
		}
		_ = token // req.Header.Set("Authorization", "Bearer "+token)
	}
	fmt.Println("calls: 3, tokens issued:", idp.issued)
	// Output: calls: 3, tokens issued: 1
}

func ExampleCache_Token() {
	idp := newIdentityProvider()
	cache := jwtcache.NewCache(jwtcache.TokenFunction(idp.clientCredentials))

	tok, err := cache.Token(context.Background())
	if err != nil {
		fmt.Println("no token:", err)
		return
	}
	// Expiry is the token's exp, corrected for clock skew: an hour, less a
	// second for iat's truncation to whole seconds.
	fmt.Println("expires in about", time.Until(tok.Expiry).Round(time.Minute))
	// Output: expires in about 1h0m0s
}

// Verify the provider's signature on every fetched token. A token that fails
// verification is an error wrapping ErrUnparsable, never handed out.
func ExampleParseOptions() {
	idp := newIdentityProvider()
	impostor := newIdentityProvider() // signs with a key we do not trust

	newCache := func(tf jwtcache.TokenFunc) *jwtcache.Cache {
		return jwtcache.NewCache(
			jwtcache.TokenFunction(tf),
			jwtcache.ParseOptions(jwt.WithKey(jwa.ES256, idp.public)),
			jwtcache.RejectUnparsable(true),
			jwtcache.Logger(nil),
		)
	}

	_, err := newCache(idp.clientCredentials).EnsureToken(context.Background())
	fmt.Println("genuine token:", err)
	_, err = newCache(impostor.clientCredentials).EnsureToken(context.Background())
	fmt.Println("forged token rejected:", errors.Is(err, jwtcache.ErrUnparsable))
	// Output:
	// genuine token: <nil>
	// forged token rejected: true
}

// An opaque (non-JWT) token is passed through uncached by default, so every
// call fetches, and a warning is logged at most once a minute. With
// RejectUnparsable(true), it is an error instead.
func ExampleRejectUnparsable() {
	calls := 0
	opaque := func(context.Context) (string, error) {
		calls++
		return "opaque-access-token", nil
	}
	quiet := jwtcache.Logger(slog.New(slog.DiscardHandler))

	passThrough := jwtcache.NewCache(jwtcache.TokenFunction(opaque), quiet)
	for range 2 {
		tok, err := passThrough.EnsureToken(context.Background())
		fmt.Println(tok, err)
	}
	fmt.Println("fetches:", calls)

	strict := jwtcache.NewCache(jwtcache.TokenFunction(opaque), jwtcache.RejectUnparsable(true), quiet)
	_, err := strict.EnsureToken(context.Background())
	fmt.Println(errors.Is(err, jwtcache.ErrUnparsable))
	// Output:
	// opaque-access-token <nil>
	// opaque-access-token <nil>
	// fetches: 2
	// true
}

// After the server rejects a token, drop exactly that token: of many
// concurrent rejections, only the first causes a fetch.
func ExampleCache_InvalidateToken() {
	idp := newIdentityProvider()
	cache := jwtcache.NewCache(jwtcache.TokenFunction(idp.clientCredentials))

	token, _ := cache.EnsureToken(context.Background())
	// ... the resource server answered 401 Unauthorized for token ...
	fmt.Println(cache.InvalidateToken(token)) // drops it
	fmt.Println(cache.InvalidateToken(token)) // already gone

	fresh, _ := cache.EnsureToken(context.Background())
	fmt.Println("new token:", fresh != token, "issued:", idp.issued)
	// Output:
	// true
	// false
	// new token: true issued: 2
}

// One cache per tenant: each key gets its own token, fetched on first use and
// refreshed on its own schedule. Options given to the map configure every
// tenant's cache.
func ExampleNewCacheMap() {
	var mu sync.Mutex // tenants' fetches may run at the same time
	issued := map[string]int{}
	idp := newIdentityProvider()
	tenants := jwtcache.NewCacheMap(
		jwtcache.MapName("tenants"),
		jwtcache.MapTokenFunction(func(ctx context.Context, tenant string) (string, error) {
			mu.Lock()
			issued[tenant]++
			mu.Unlock()
			// Ask the tenant's realm for a token: here, the stand-in provider.
			return idp.clientCredentials(ctx)
		}),
		jwtcache.MaxKeys(1000),            // the least recently used go first
		jwtcache.IdleTimeout(time.Hour),   // tenants not seen for an hour go
		jwtcache.Headroom(30*time.Second), // an Option: applies to every tenant
	)

	for _, tenant := range []string{"acme", "globex", "acme", "acme"} {
		if _, err := tenants.EnsureToken(context.Background(), tenant); err != nil {
			fmt.Println("no token:", err)
			return
		}
	}
	fmt.Println("tenants:", tenants.Len(), "tokens for acme:", issued["acme"], "for globex:", issued["globex"])
	// Output: tenants: 2 tokens for acme: 1 for globex: 1
}

// An HTTP client whose requests carry the cached token, to the API's host only.
// A 401 from the API drops the rejected token and retries once with a fresh one.
func ExampleNewTransport() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "authorization:", strings.Fields(r.Header.Get("Authorization"))[0])
	}))
	defer api.Close()

	idp := newIdentityProvider()
	cache := jwtcache.NewCache(jwtcache.TokenFunction(idp.clientCredentials))
	client := &http.Client{
		Transport: jwtcache.NewTransport(cache, http.DefaultTransport,
			jwtcache.Hosts(strings.TrimPrefix(api.URL, "http://"))),
		Timeout: 10 * time.Second,
	}

	resp, err := client.Get(api.URL + "/invoices")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: authorization: Bearer
}

// ExampleSharedStore has two replicas of a service share one token through a
// Store (here one in memory; package redisstore has one on Redis). The store's
// namespace is the cache's Name, which a cache with a store must have.
func ExampleSharedStore() {
	idp := newIdentityProvider()
	store := newMemStore(testkit.NewClock(time.Now()))
	replica := func() *jwtcache.Cache {
		return jwtcache.NewCache(
			jwtcache.Name("billing"),
			jwtcache.TokenFunction(idp.clientCredentials),
			jwtcache.SharedStore(store),
		)
	}
	a, b := replica(), replica()
	ta, _ := a.EnsureToken(context.Background())
	tb, _ := b.EnsureToken(context.Background())
	fmt.Println("same token:", ta == tb, "tokens issued:", idp.issued)

	unnamed := jwtcache.NewCache(jwtcache.TokenFunction(idp.clientCredentials), jwtcache.SharedStore(store))
	_, err := unnamed.EnsureToken(context.Background())
	fmt.Println(errors.Is(err, jwtcache.ErrNoName))
	// Output:
	// same token: true tokens issued: 1
	// true
}

// ExampleIssueFunction caches an opaque access token (one that is not a JWT,
// as Zitadel or Ory Hydra issue) for the lifetime the provider gave in its
// token response's expires_in.
func ExampleIssueFunction() {
	issued := 0
	cache := jwtcache.NewCache(
		jwtcache.Name("billing"),
		jwtcache.IssueFunction(func(ctx context.Context) (jwtcache.Issued, error) {
			issued++
			// What a token response said: {"access_token": "...", "expires_in": 3600, "scope": "invoices:read"}
			return jwtcache.Issued{Token: "opaque-" + fmt.Sprint(issued), ExpiresIn: time.Hour, Scope: "invoices:read"}, nil
		}),
	)
	for range 3 {
		tok, _ := cache.Token(context.Background())
		fmt.Println(tok.Value, tok.Scope, time.Until(tok.Expiry).Round(time.Minute))
	}
	fmt.Println("tokens issued:", issued)
	// Output:
	// opaque-1 invoices:read 1h0m0s
	// opaque-1 invoices:read 1h0m0s
	// opaque-1 invoices:read 1h0m0s
	// tokens issued: 1
}

// The transport reads the server's challenge: a token that lacks a scope
// (insufficient_scope) is not fetched again, since a new one would lack it
// too, and the caller gets an error that names the scope. (A token the
// server calls invalid_token is dropped, and the request retried once with a
// fresh one.)
func ExampleChallengeError() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/admin":
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="orders:admin"`)
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer api.Close()

	idp := newIdentityProvider()
	cache := jwtcache.NewCache(jwtcache.TokenFunction(idp.clientCredentials))
	client := &http.Client{Transport: jwtcache.NewTransport(cache, nil)}

	_, err := client.Get(api.URL + "/admin")
	fmt.Println(errors.Is(err, jwtcache.ErrInsufficientScope))
	var challenge *jwtcache.ChallengeError
	if errors.As(err, &challenge) {
		fmt.Println(challenge.StatusCode, challenge.Code, challenge.Scope)
	}
	fmt.Println("tokens issued:", idp.issued)
	// Output:
	// true
	// 403 insufficient_scope orders:admin
	// tokens issued: 1
}

// A multi-tenant client: the tenant of each request rides in its context.
func ExampleRequestKey() {
	tenants := jwtcache.NewCacheMap(jwtcache.MapName("tenants"), jwtcache.Logger(nil),
		jwtcache.MapIssueFunction(func(ctx context.Context, tenant string) (jwtcache.Issued, error) {
			return jwtcache.Issued{Token: "token-of-" + tenant, ExpiresIn: time.Hour}, nil
		}))
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("Authorization"))
	}))
	defer api.Close()
	client := &http.Client{Transport: jwtcache.NewMapTransport(tenants, jwtcache.RequestKey, nil)}
	for _, tenant := range []string{"acme", "globex"} {
		req, _ := http.NewRequestWithContext(jwtcache.WithKey(context.Background(), tenant), http.MethodGet, api.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
	_, err := client.Do(req)
	fmt.Println(errors.Is(err, jwtcache.ErrEmptyKey))
	// Output:
	// Bearer token-of-acme
	// Bearer token-of-globex
	// true
}
