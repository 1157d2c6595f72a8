package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// exampleKeys is a fixed key set; a service uses a *KeySet instead.
type exampleKeys map[string]jwk.Key

func (s exampleKeys) Key(_ context.Context, kid string) (jwk.Key, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("no key %q", kid)
}

// Example protects a handler with a Verifier's middleware, which admits a
// request with a valid bearer token and puts its claims in the context.
func Example() {
	// The identity provider's signing key, and the public key it publishes.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	pub, err := jwk.FromRaw(&priv.PublicKey)
	if err != nil {
		log.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, "key-1")

	v, err := verify.New(exampleKeys{"key-1": pub},
		verify.Issuer("https://issuer.example"),
		verify.Audience("api://orders"),
	)
	if err != nil {
		log.Fatal(err)
	}
	handler := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := verify.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s, scopes %q", c.Subject(), c.Scope())
	}))
	srv := httptest.NewServer(handler)
	defer srv.Close()

	// A token as the identity provider issues it.
	tok, _ := jwt.NewBuilder().
		Issuer("https://issuer.example").
		Audience([]string{"api://orders"}).
		Subject("client-1").
		Expiration(time.Now().Add(time.Hour)).
		Claim("scope", "orders:read").
		Build()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, "key-1")
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		log.Fatal(err)
	}

	for _, auth := range []string{"Bearer " + string(signed), "Bearer not-a-token", ""} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %q %q\n", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	// Output:
	// 200 "" "hello client-1, scopes [\"orders:read\"]"
	// 401 "Bearer error=\"invalid_token\"" "Unauthorized\n"
	// 401 "Bearer" "Unauthorized\n"
}

// ExampleVerifier_Verify checks a token outside HTTP, such as one taken from
// a message's metadata.
func ExampleVerifier_Verify() {
	v, err := verify.New(exampleKeys{},
		verify.Issuer("https://issuer.example"),
		verify.Audience("api://orders"),
	)
	if err != nil {
		log.Fatal(err)
	}
	_, err = v.Verify(context.Background(), "not.a.token")
	fmt.Println(err)
	// Output:
	// verify: malformed token: header is not base64url
}
