package provider_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// startBearerIDP stands in for Google's or Salesforce's token endpoint in the
// JWT bearer examples: an issuer on 127.0.0.1 whose token endpoint takes the
// JWT bearer grant, with no client authentication, for an assertion that key
// signed, and issues a token about its subject that lives an hour.
func startBearerIDP(key *ecdsa.PublicKey) (*httptest.Server, *atomic.Int32) {
	var issued atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			writeJSON(w, http.StatusOK, map[string]any{"issuer": srv.URL, "token_endpoint": srv.URL + "/token"})
			return
		}
		r.ParseForm()
		payload, err := jws.Verify([]byte(r.PostForm.Get("assertion")), jws.WithKey(jwa.ES256, key))
		var claims struct{ Sub string }
		if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || err != nil || json.Unmarshal(payload, &claims) != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		n := issued.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"access_token": fmt.Sprintf("token-%d for %s", n, claims.Sub), "token_type": "Bearer", "expires_in": 3600})
	}))
	return srv, &issued
}

// An assertion made elsewhere (here with jwx) is exchanged for an access
// token, with no client authentication: the assertion is the credential.
func ExampleClient_JWTBearer() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp, _ := startBearerIDP(&key.PublicKey)
	defer idp.Close()
	ctx := context.Background()

	client, err := provider.New(ctx, idp.URL, provider.NoClientAuth(""))
	if err != nil {
		fmt.Println(err)
		return
	}
	now := time.Now()
	claims, _ := jwt.NewBuilder().Issuer("svc@example").Subject("alice").Audience([]string{idp.URL + "/token"}).
		JwtID(rand.Text()).IssuedAt(now).Expiration(now.Add(time.Minute)).Build()
	assertion, _ := jwt.Sign(claims, jwt.WithKey(jwa.ES256, key))

	issued, err := client.JWTBearer(ctx, string(assertion))
	fmt.Println(issued.Token, issued.ExpiresIn, err)
	// Output:
	// token-1 for alice 1h0m0s <nil>
}

// The Client signs a new assertion for every token request, and a Cache
// keeps the access token: the provider is asked once.
func ExampleClient_JWTBearerSigner() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp, issued := startBearerIDP(&key.PublicKey)
	defer idp.Close()
	ctx := context.Background()

	client, err := provider.New(ctx, idp.URL, provider.NoClientAuth(""))
	if err != nil {
		fmt.Println(err)
		return
	}
	issue, err := client.JWTBearerSigner("svc@example", "alice", key)
	if err != nil {
		fmt.Println(err)
		return
	}
	cache := jwtcache.NewCache(jwtcache.Name("alice"), jwtcache.IssueFunction(issue))
	for range 3 {
		token, err := cache.EnsureToken(ctx)
		fmt.Println(token, err)
	}
	fmt.Println("tokens issued:", issued.Load())
	// Output:
	// token-1 for alice <nil>
	// token-1 for alice <nil>
	// token-1 for alice <nil>
	// tokens issued: 1
}
