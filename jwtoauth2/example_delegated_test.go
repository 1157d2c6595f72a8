package jwtoauth2_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	"golang.org/x/oauth2"

	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/jwtoauth2"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// An application that keeps its oauth2.Config: the user's authorization code
// is exchanged as before, and the refresh token handed to a Delegated, which
// stores each rotated refresh token before the TokenSource hands out the
// access token (golang/oauth2#84).
func ExampleDelegatedTokenSource() {
	idp := rotatingEndpoint() // stands in for Okta, Auth0, Entra ID, Keycloak
	defer idp.Close()
	ctx := context.Background()
	cfg := &oauth2.Config{ClientID: "sync", ClientSecret: "s3cret",
		Endpoint: oauth2.Endpoint{TokenURL: idp.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}

	first, err := cfg.Exchange(ctx, "code-from-the-redirect")
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := jwtoauth2.ProviderClient(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	grants := jwtcachetest.NewGrants() // in production: a database, sqlstore.New(db)
	users, err := provider.NewDelegated(client, grants)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := users.Authorize(ctx, "alice", first.RefreshToken); err != nil {
		fmt.Println(err)
		return
	}

	ts := jwtoauth2.DelegatedTokenSource(ctx, users, "alice") // for oauth2.Transport, or an API's client
	tok, err := ts.Token()
	if err != nil {
		fmt.Println(err)
		return
	}
	stored, version, _ := grants.Load(ctx, "alice")
	fmt.Println(tok.AccessToken, "| stored:", stored, "version", version)
	// Output: access-2 | stored: refresh-2 version 2
}

// rotatingEndpoint is a token endpoint that takes the authorization code
// "code-from-the-redirect" and rotates refresh tokens: each refresh spends
// the one it is given.
func rotatingEndpoint() *httptest.Server {
	var mu sync.Mutex
	n, live := 0, ""
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		ok := r.PostForm.Get("code") == "code-from-the-redirect" ||
			(r.PostForm.Get("grant_type") == "refresh_token" && r.PostForm.Get("refresh_token") == live)
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		n++
		live = fmt.Sprintf("refresh-%d", n)
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("access-%d", n), "token_type": "Bearer",
			"expires_in": 3600, "refresh_token": live})
	}))
}
