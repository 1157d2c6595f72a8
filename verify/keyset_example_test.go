package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// An issuer publishes its public keys; the service that receives its tokens
// finds each token's key by the kid in the token's header.
func ExampleKeySet() {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jwk.FromRaw(&priv.PublicKey)
	_ = pub.Set(jwk.KeyIDKey, "2025-01")
	doc, _ := json.Marshal(map[string]any{"keys": []jwk.Key{pub}})
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(doc)
	}))
	defer issuer.Close()

	// Plain http is for loopback hosts only: a real issuer's URL is https.
	keys, err := verify.NewKeySet(issuer.URL+"/.well-known/jwks.json", verify.AllowedHosts("127.0.0.1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	key, err := keys.Key(ctx, "2025-01")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(key.KeyID(), key.KeyType())

	// A kid the set lacks makes it be fetched again, at most every 10
	// seconds; this one was fetched just now.
	_, err = keys.Key(ctx, "2024-12")
	fmt.Println(err)
	fmt.Println(keys.Stats().Refreshes, "refresh")
	// Output:
	// 2025-01 EC
	// verify: no key with that kid in the key set: "2024-12"
	// 1 refresh
}

// A registry keeps the key sets of many tenants' issuers.
func ExampleRegistry() {
	reg := verify.NewRegistry(100, verify.MinRefreshInterval(30*time.Second))
	fmt.Println(reg.Register("tenant-a", "https://a.idp.example/jwks"))
	fmt.Println(reg.Register("tenant-b", "http://b.idp.example/jwks") != nil)
	keys, ok := reg.Get("tenant-a")
	fmt.Println(ok, keys.URL())
	// Output:
	// <nil>
	// true
	// true https://a.idp.example/jwks
}
