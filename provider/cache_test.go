package provider_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

func TestClient_Cache(t *testing.T) {
	p := newIDP(t, false)
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": "opaque-" + strconv.Itoa(len(p.got())), "token_type": "Bearer", "expires_in": "3600", "scope": "read",
		})
	})
	clk := newClock()
	c := p.client(t, basic, provider.Clock(clk.Now))
	cache := jwtcache.NewCache(jwtcache.Name("x"), jwtcache.IssueFunction(c.Issue), jwtcache.Clock(clk.Now), jwtcache.Logger(nil))

	start := clk.Now()
	tok, err := cache.Token(t.Context())
	if err != nil {
		t.Fatalf("Token() error = %v", err)
	}
	want := jwtcache.Token{Value: "opaque-1", Expiry: start.Add(time.Hour), Scope: "read"}
	if tok != want {
		t.Errorf("Token() = %+v; want %+v", tok, want)
	}
	clk.Advance(30 * time.Minute)
	if got, err := cache.EnsureToken(t.Context()); got != "opaque-1" || err != nil {
		t.Errorf("EnsureToken() half an hour on = %q, %v; want opaque-1, the cached token", got, err)
	}
	if n := len(p.got()); n != 1 {
		t.Errorf("token requests = %d; want 1", n)
	}
	clk.Advance(30 * time.Minute)
	if got, err := cache.EnsureToken(t.Context()); got != "opaque-2" || err != nil {
		t.Errorf("EnsureToken() at expiry = %q, %v; want opaque-2", got, err)
	}
}

func TestClient_CacheUncached(t *testing.T) {
	p := newIDP(t, false)
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "opaque-" + strconv.Itoa(len(p.got())), "token_type": "Bearer"})
	})
	c := p.client(t, basic)
	cache := jwtcache.NewCache(jwtcache.Name("x"), jwtcache.IssueFunction(c.Issue), jwtcache.Logger(nil))
	for _, want := range []string{"opaque-1", "opaque-2"} {
		if got, err := cache.EnsureToken(t.Context()); got != want || err != nil {
			t.Errorf("EnsureToken() of an opaque token without expires_in = %q, %v; want %q, passed through uncached", got, err, want)
		}
	}
}

func TestClient_CacheMap(t *testing.T) {
	p := newIDP(t, false)
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		name := strings.Join(r.PostForm["audience"], ",") + "|" + r.PostForm.Get("scope")
		writeJSON(w, http.StatusOK, map[string]any{"access_token": name + "#" + strconv.Itoa(len(p.got())), "token_type": "Bearer", "expires_in": 3600})
	})
	c := p.client(t, basic)
	m := jwtcache.NewCacheMap(jwtcache.MapName("apis"), jwtcache.MapIssueFunction(c.IssueKey), jwtcache.Logger(nil))

	tests := []struct {
		r    provider.Request
		want string
	}{
		{provider.Request{Audience: []string{"orders"}, Scopes: []string{"read"}}, "orders|read#1"},
		{provider.Request{Audience: []string{"orders"}, Scopes: []string{"read", "write"}}, "orders|read write#2"},
		{provider.Request{Audience: []string{"billing"}, Scopes: []string{"read"}}, "billing|read#3"},
		{provider.Request{Audience: []string{"orders", "billing"}, Scopes: []string{"read"}}, "billing,orders|read#4"},
		// The same sets again, in another order: the cached tokens.
		{provider.Request{Audience: []string{"orders"}, Scopes: []string{"write", "read", "read"}}, "orders|read write#2"},
		{provider.Request{Audience: []string{"billing", "orders"}, Scopes: []string{"read"}}, "billing,orders|read#4"},
		{provider.Request{Audience: []string{"orders"}, Scopes: []string{"read"}}, "orders|read#1"},
	}
	for _, tt := range tests {
		got, err := m.EnsureToken(t.Context(), tt.r.Key())
		if got != tt.want || err != nil {
			t.Errorf("EnsureToken(%q) = %q, %v; want %q", tt.r.Key(), got, err, tt.want)
		}
	}
	if n, want := len(p.got()), 4; n != want {
		t.Errorf("token requests = %d; want %d, one per set", n, want)
	}
	if n := m.Len(); n != 4 {
		t.Errorf("map keys = %d; want 4", n)
	}
}
