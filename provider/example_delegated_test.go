package provider_test

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// A service acting for its users: the application exchanges a user's
// authorization code itself (here with x/oauth2), hands the refresh token to
// Authorize, and from then on asks the Delegated for the user's access
// token. Each refresh rotates the refresh token; the Delegated stores the
// new one before it hands out the access token, so that a restart (or
// another replica, with a jwtcache.SharedStore) continues the chain.
func ExampleDelegated() {
	idp := startIDP()
	defer idp.Close()
	ctx := context.Background()

	// The user came back from the provider's login page with a code.
	oauth := &oauth2.Config{ClientID: "billing", ClientSecret: "s3cret",
		Endpoint: oauth2.Endpoint{TokenURL: idp.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	first, err := oauth.Exchange(ctx, "code-from-the-redirect")
	if err != nil {
		fmt.Println(err)
		return
	}

	client, err := provider.New(ctx, idp.URL, provider.ClientSecretBasic("billing", "s3cret"))
	if err != nil {
		fmt.Println(err)
		return
	}
	grants := jwtcachetest.NewGrants() // in production: a database, sqlstore.New(db)
	users, err := provider.NewDelegated(client, grants, jwtcache.MapName("users"))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := users.Authorize(ctx, "alice", first.RefreshToken); err != nil {
		fmt.Println(err)
		return
	}

	for range 2 {
		token, err := users.Token(ctx, "alice")
		fmt.Println(token, err)
	}
	stored, version, _ := grants.Load(ctx, "alice")
	fmt.Println("stored:", stored, "version", version)
	_, err = users.Token(ctx, "bob")
	fmt.Println(err)
	// Output:
	// token-2 for alice <nil>
	// token-2 for alice <nil>
	// stored: refresh-2 version 2
	// jwtcache: fetch token: provider: invalid_grant: the grant is gone, and the user must authorize again: no refresh token is stored for "bob"
}
