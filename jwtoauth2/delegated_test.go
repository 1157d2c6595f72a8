package jwtoauth2_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/oidctest"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/jwtoauth2"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// TestRefreshRotation_OAuth2: an application that keeps its oauth2.Config
// gets, through DelegatedTokenSource, a user's tokens from the real
// oidc-provider with rotation on, and every rotated refresh token stored.
func TestRefreshRotation_OAuth2(t *testing.T) {
	const secret = "a-client-secret-of-at-least-32-bytes"
	const api = "https://api.example"
	s := oidctest.Start(t, oidctest.Config{
		Clients: []oidctest.Client{{ID: "sync", Secret: secret, AuthMethod: "client_secret_post",
			Metadata: map[string]any{"grant_types": []string{"refresh_token", "client_credentials"}}}},
		Resources:     []oidctest.Resource{{Identifier: api, Scope: "read", TTL: 5 * time.Second}},
		RefreshTokens: &oidctest.RefreshTokens{Rotate: true, Resource: api, Scope: "read"},
	})
	cfg := &oauth2.Config{ClientID: "sync", ClientSecret: secret, Scopes: []string{"read"},
		Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	client, err := jwtoauth2.ProviderClient(cfg, provider.HTTPClient(s.Client(t)),
		provider.DefaultRequest(provider.Request{Scopes: cfg.Scopes, Resources: []string{api}}))
	if err != nil {
		t.Fatal(err)
	}
	grants := jwtcachetest.NewGrants()
	d, err := provider.NewDelegated(client, grants, jwtcache.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, rt := s.Grant(t, "sync", "alice") // as cfg.Exchange would have left it
	if err := d.Authorize(ctx, "alice", rt); err != nil {
		t.Fatal(err)
	}

	var auth string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { auth = r.Header.Get("Authorization") }))
	defer backend.Close()
	hc := &http.Client{Transport: &oauth2.Transport{Source: jwtoauth2.DelegatedTokenSource(ctx, d, "alice")}}
	defer hc.CloseIdleConnections()
	const calls = 3
	for i := range calls {
		d.Map().Invalidate("alice") // each call refreshes, and rotates
		resp, err := hc.Get(backend.URL)
		if err != nil {
			t.Fatalf("call #%d: %v", i+1, err)
		}
		resp.Body.Close()
		if len(auth) < len("Bearer x") || auth[:7] != "Bearer " {
			t.Fatalf("call #%d: Authorization %.12q...; want a bearer token", i+1, auth)
		}
	}
	if _, version, err := grants.Load(ctx, "alice"); err != nil || version != calls+1 {
		t.Errorf("stored version %d (error %v); want %d: every rotation stored", version, err, calls+1)
	}
	if n := s.Refreshed(t, "alice"); n != calls {
		t.Errorf("provider refreshed %d times; want %d", n, calls)
	}
	if revoked := s.GrantsRevoked(t); len(revoked) != 0 {
		t.Errorf("grants revoked %v; want none", revoked)
	}

	t.Run("no grant", func(t *testing.T) {
		_, err := jwtoauth2.DelegatedTokenSource(ctx, d, "bob").Token()
		if !errors.Is(err, provider.ErrInvalidGrant) {
			t.Errorf("Token() error = %v; want ErrInvalidGrant", err)
		}
	})
}

func TestProviderClient_Invalid(t *testing.T) {
	for name, cfg := range map[string]*oauth2.Config{
		"nil":          nil,
		"no ClientID":  {Endpoint: oauth2.Endpoint{TokenURL: "https://idp.example/token"}},
		"no TokenURL":  {ClientID: "sync"},
		"insecure URL": {ClientID: "sync", Endpoint: oauth2.Endpoint{TokenURL: "http://idp.example/token"}},
	} {
		if _, err := jwtoauth2.ProviderClient(cfg); err == nil {
			t.Errorf("%s: ProviderClient() error = nil; want one", name)
		} else if name != "insecure URL" && !errors.Is(err, jwtcache.ErrInvalid) {
			t.Errorf("%s: ProviderClient() error = %v; want ErrInvalid", name, err)
		}
	}
}
