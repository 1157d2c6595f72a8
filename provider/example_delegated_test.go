package provider_test

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/oauth2"

	"github.com/seed7aeb0c6e/jwtcache"
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
	grants := newMemoryGrants() // in production: sqlstore.New(db) or redisstore.NewGrants(rdb)
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

// memoryGrants is a [provider.GrantStore] in memory, for the examples and
// tests: a service's would be a database, which outlives the process.
type memoryGrants struct {
	mu sync.Mutex
	m  map[string]memoryGrant
}

type memoryGrant struct {
	token   string
	version int64
}

func newMemoryGrants() *memoryGrants { return &memoryGrants{m: map[string]memoryGrant{}} }

func (g *memoryGrants) Load(ctx context.Context, key string) (string, int64, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.m[key]
	if !ok {
		return "", 0, fmt.Errorf("memoryGrants: %q: %w", key, jwtcache.ErrNotFound)
	}
	return e.token, e.version, nil
}

func (g *memoryGrants) Swap(ctx context.Context, key string, version int64, token string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key].version != version {
		return 0, fmt.Errorf("memoryGrants: %q: %w", key, provider.ErrGrantConflict)
	}
	g.m[key] = memoryGrant{token: token, version: version + 1}
	return version + 1, nil
}

func (g *memoryGrants) Delete(ctx context.Context, key string, version int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.m[key]; !ok || e.version != version {
		return false, nil
	}
	delete(g.m, key)
	return true, nil
}
