package provider_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// The refresh token grant and the Delegated cache against the real
// oidc-provider of the harness, with grants minted as an authorization code
// flow would leave them, with and without rotation (and its reuse
// detection, which revokes the whole grant).

// refreshResource is the API the users' access tokens are for.
const refreshResource = "https://api.example"

// startRefreshing starts a provider whose client "sync" refreshes users'
// grants for refreshResource (5-second access tokens), rotating the refresh
// tokens if rotate, and returns it with a client of it.
func startRefreshing(t *testing.T, rotate bool) (*oidcServer, *provider.Client) {
	t.Helper()
	s := startOIDC(t, oidcConfig{
		Clients: []oidcClient{{ID: "sync", Secret: harnessSecret,
			Metadata: map[string]any{"grant_types": []string{"refresh_token", "client_credentials"}}}},
		Resources:     []oidcResource{{Identifier: refreshResource, Scope: "read", TTL: 5 * time.Second}},
		RefreshTokens: &oidcRefreshTokens{Rotate: rotate, Resource: refreshResource, Scope: "read"},
	})
	c := newOIDCClient(t, s, provider.ClientSecretBasic("sync", harnessSecret),
		provider.DefaultRequest(provider.Request{Resources: []string{refreshResource}, Scopes: []string{"read"}}))
	return s, c
}

func TestRefreshToken_OIDC(t *testing.T) {
	t.Parallel()
	s, c := startRefreshing(t, false)
	_, rt := s.Grant(t, "sync", "alice")
	ctx := context.Background()
	for i := range 2 {
		got, err := c.Refresh(ctx, rt)
		if err != nil {
			t.Fatalf("Refresh() #%d error = %v", i+1, err)
		}
		if got.Rotated || got.RefreshToken != rt {
			t.Errorf("Refresh() #%d: Rotated = %v, a new refresh token = %v; want the same one, not rotated", i+1, got.Rotated, got.RefreshToken != rt)
		}
		tok := verifyAccessToken(t, s, s.Client(t), got.Token)
		if tok.Subject() != "alice" || !slices.Equal(tok.Audience(), []string{refreshResource}) {
			t.Errorf("access token sub %q, aud %v; want alice, [%s]", tok.Subject(), tok.Audience(), refreshResource)
		}
		if got.ExpiresIn != 5*time.Second || got.Scope != "read" {
			t.Errorf("ExpiresIn %v, Scope %q; want 5s, read", got.ExpiresIn, got.Scope)
		}
	}
	if n := s.Refreshed(t, "alice"); n != 2 {
		t.Errorf("provider refreshed %d times; want 2", n)
	}

	t.Run("unknown refresh token", func(t *testing.T) {
		_, err := c.Refresh(ctx, "not-a-refresh-token")
		if !errors.Is(err, provider.ErrInvalidGrant) {
			t.Fatalf("Refresh(unknown) error = %v; want ErrInvalidGrant", err)
		}
		if strings.Contains(err.Error(), "not-a-refresh-token") {
			t.Errorf("error %q carries the refresh token", err)
		}
	})
}

func TestRefreshRotation_OIDC(t *testing.T) {
	t.Parallel()
	s, c := startRefreshing(t, true)
	_, rt := s.Grant(t, "sync", "alice")
	ctx := context.Background()

	got, err := c.Refresh(ctx, rt)
	if err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	if !got.Rotated || got.RefreshToken == rt || got.RefreshToken == "" {
		t.Fatalf("Refresh(): Rotated = %v; want a new refresh token", got.Rotated)
	}

	t.Run("Delegated stores each rotation", func(t *testing.T) {
		_, rt := s.Grant(t, "sync", "bob")
		grants := jwtcachetest.NewGrants()
		d, err := provider.NewDelegated(c, grants, jwtcache.MapName("users"), jwtcache.Logger(nil))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Authorize(ctx, "bob", rt); err != nil {
			t.Fatal(err)
		}
		const refreshes = 5
		seen := map[string]bool{rt: true}
		for i := range refreshes {
			d.Map().Invalidate("bob") // as on a 401, or at the end of the token's life
			if _, err := d.Token(ctx, "bob"); err != nil {
				t.Fatalf("Token() #%d error = %v", i+1, err)
			}
			stored, version, err := grants.Load(ctx, "bob")
			if err != nil || version != int64(i+2) || seen[stored] {
				t.Fatalf("after refresh #%d: stored version %d (error %v), a new token %v; want version %d, a new token",
					i+1, version, err, !seen[stored], i+2)
			}
			seen[stored] = true
		}
		st := d.Stats()
		if n := s.Refreshed(t, "bob"); n != refreshes || st.Refreshes != refreshes || st.Rotations != refreshes || st.Pending != 0 {
			t.Errorf("provider refreshed %d times; Stats() = %+v; want %d refreshes, all rotated and stored", n, st, refreshes)
		}
		if revoked := s.GrantsRevoked(t); len(revoked) != 0 {
			t.Errorf("grants revoked: %v; want none", revoked)
		}
	})
}

func TestReuseDetected_OIDC(t *testing.T) {
	t.Parallel()
	s, c := startRefreshing(t, true)
	ctx := context.Background()

	t.Run("a spent refresh token revokes the grant", func(t *testing.T) {
		grant, spent := s.Grant(t, "sync", "alice")
		next, err := c.Refresh(ctx, spent)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Refresh(ctx, spent); !errors.Is(err, provider.ErrInvalidGrant) {
			t.Fatalf("Refresh(spent) error = %v; want ErrInvalidGrant", err)
		}
		if revoked := s.GrantsRevoked(t); !slices.Contains(revoked, grant) {
			t.Fatalf("grants revoked %v; want %s among them", revoked, grant)
		}
		if _, err := c.Refresh(ctx, next.RefreshToken); !errors.Is(err, provider.ErrInvalidGrant) {
			t.Errorf("Refresh(the grant's newest) error = %v; want ErrInvalidGrant: the whole grant is revoked", err)
		}
	})

	t.Run("Delegated deletes the grant and stops asking", func(t *testing.T) {
		// A replica that refreshed in memory and restarted would have only
		// the spent token in its store: the provider takes it for theft.
		_, spent := s.Grant(t, "sync", "carol")
		if _, err := c.Refresh(ctx, spent); err != nil {
			t.Fatal(err)
		}
		_, rt := s.Grant(t, "sync", "dave")
		grants := jwtcachetest.NewGrants()
		d, err := provider.NewDelegated(c, grants, jwtcache.MapName("users"), jwtcache.Logger(nil))
		if err != nil {
			t.Fatal(err)
		}
		for user, token := range map[string]string{"carol": spent, "dave": rt} {
			if err := d.Authorize(ctx, user, token); err != nil {
				t.Fatal(err)
			}
		}
		before := len(s.Refused(t, "sync"))
		for i := range 3 {
			d.Map().Invalidate("carol")
			if _, err := d.Token(ctx, "carol"); !errors.Is(err, provider.ErrInvalidGrant) {
				t.Fatalf("Token(carol) #%d error = %v; want ErrInvalidGrant", i+1, err)
			}
		}
		if n := len(s.Refused(t, "sync")) - before; n != 1 {
			t.Errorf("provider refused %d requests; want 1: a refused grant is not tried again", n)
		}
		if _, _, err := grants.Load(ctx, "carol"); !errors.Is(err, jwtcache.ErrNotFound) {
			t.Errorf("carol's grant after the refusal: Load() error = %v; want ErrNotFound (deleted)", err)
		}
		if _, err := d.Token(ctx, "dave"); err != nil {
			t.Errorf("Token(dave) error = %v; want his token: one user's refusal is not another's", err)
		}
		if st := d.Stats(); st.Refused != 1 {
			t.Errorf("Stats().Refused = %d; want 1", st.Refused)
		}
	})
}

func TestRefreshRotation_RevokedGrant_OIDC(t *testing.T) {
	t.Parallel()
	s, c := startRefreshing(t, true)
	ctx := context.Background()
	grants := jwtcachetest.NewGrants()
	d, err := provider.NewDelegated(c, grants, jwtcache.MapName("users"), jwtcache.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, user := range []string{"erin", "frank"} {
		id, rt := s.Grant(t, "sync", user)
		ids[user] = id
		if err := d.Authorize(ctx, user, rt); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Token(ctx, user); err != nil {
			t.Fatalf("Token(%s) error = %v", user, err)
		}
	}
	s.Revoke(t, ids["erin"]) // an administrator, or the user at the provider
	for _, user := range []string{"erin", "frank"} {
		d.Map().Invalidate(user)
	}
	if _, err := d.Token(ctx, "erin"); !errors.Is(err, provider.ErrInvalidGrant) {
		t.Errorf("Token(erin) error = %v; want ErrInvalidGrant", err)
	}
	if _, err := d.Token(ctx, "frank"); err != nil {
		t.Errorf("Token(frank) error = %v; want his token", err)
	}
	if n := s.Refreshed(t, "frank"); n != 2 {
		t.Errorf("frank refreshed %d times; want 2", n)
	}
}
