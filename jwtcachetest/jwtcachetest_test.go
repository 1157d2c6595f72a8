package jwtcachetest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
)

var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestClock(t *testing.T) {
	tests := []struct {
		name string
		move func(*jwtcachetest.Clock)
		want time.Time
	}{
		{"still", func(*jwtcachetest.Clock) {}, start},
		{"Advance", func(c *jwtcachetest.Clock) { c.Advance(90 * time.Second) }, start.Add(90 * time.Second)},
		{"Advance back", func(c *jwtcachetest.Clock) { c.Advance(-time.Hour) }, start.Add(-time.Hour)},
		{"Set", func(c *jwtcachetest.Clock) { c.Set(start.AddDate(1, 0, 0)) }, start.AddDate(1, 0, 0)},
		{"Set then Advance", func(c *jwtcachetest.Clock) {
			c.Set(start.Add(-time.Minute))
			c.Advance(time.Second)
		}, start.Add(-59 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := jwtcachetest.NewClock(start)
			tt.move(c)
			if got := c.Now(); !got.Equal(tt.want) {
				t.Errorf("Now() = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestClock_Zero(t *testing.T) {
	var c jwtcachetest.Clock
	if got := c.Now(); !got.IsZero() {
		t.Errorf("zero Clock's Now() = %v; want the zero time", got)
	}
	c.Advance(time.Second)
	if got, want := c.Now(), (time.Time{}).Add(time.Second); !got.Equal(want) {
		t.Errorf("Now() after Advance(1s) = %v; want %v", got, want)
	}
}

func TestClock_DropsMonotonicReading(t *testing.T) {
	now := time.Now() // carries a monotonic reading
	c := jwtcachetest.NewClock(now)
	if got, want := c.Now().String(), now.Round(0).String(); got != want {
		t.Errorf("NewClock(time.Now()).Now() = %s; want %s", got, want)
	}
	c.Set(now)
	if got, want := c.Now().String(), now.Round(0).String(); got != want {
		t.Errorf("Now() after Set(time.Now()) = %s; want %s", got, want)
	}
}

func TestIssuer_Mint(t *testing.T) {
	iss := jwtcachetest.NewIssuer()
	iat := start.Add(1500 * time.Millisecond) // truncated to the second
	tok := testkit.Claims(t, iss.Mint(iat, time.Hour, nil))
	if got, want := tok.IssuedAt(), start.Add(time.Second); !got.Equal(want) {
		t.Errorf("iat = %v; want %v", got, want)
	}
	if got, want := tok.Expiration(), start.Add(time.Second+time.Hour); !got.Equal(want) {
		t.Errorf("exp = %v; want %v", got, want)
	}
	if tok.Issuer() != "jwtcachetest" || tok.Subject() != "client" || tok.JwtID() == "" {
		t.Errorf("iss, sub, jti = %q, %q, %q; want jwtcachetest, client and an ID", tok.Issuer(), tok.Subject(), tok.JwtID())
	}
	if other := testkit.Claims(t, iss.Mint(iat, time.Hour, nil)); other.JwtID() == tok.JwtID() {
		t.Errorf("two tokens share the jti %q", tok.JwtID())
	}
}

func TestIssuer_MintClaims(t *testing.T) {
	iss := jwtcachetest.NewIssuer()
	raw := iss.Mint(start, time.Hour, map[string]any{
		jwt.ExpirationKey: nil, // left out
		jwt.IssuerKey:     "https://idp.example",
		jwt.AudienceKey:   []string{"api"},
		"scope":           "read",
	})
	tok := testkit.Claims(t, raw)
	if !tok.Expiration().IsZero() {
		t.Errorf("exp = %v; want none", tok.Expiration())
	}
	if got := tok.Issuer(); got != "https://idp.example" {
		t.Errorf("iss = %q; want the override", got)
	}
	if got := tok.Audience(); len(got) != 1 || got[0] != "api" {
		t.Errorf("aud = %q; want [api]", got)
	}
	if got, _ := tok.Get("scope"); got != "read" {
		t.Errorf("scope = %v; want read", got)
	}
}

func TestIssuer_MintPanicsOnBadClaim(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Mint with exp = struct{}{} did not panic")
		}
	}()
	jwtcachetest.NewIssuer().Mint(start, time.Hour, map[string]any{jwt.ExpirationKey: struct{}{}})
}

func TestIssuer_KeyID(t *testing.T) {
	a, b := jwtcachetest.NewIssuer(), jwtcachetest.NewIssuer()
	kid := func(raw string) string {
		msg, err := jws.Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return msg.Signatures()[0].ProtectedHeaders().KeyID()
	}
	ka, kb := kid(a.Mint(start, time.Hour, nil)), kid(b.Mint(start, time.Hour, nil))
	if ka == "" || ka == kb {
		t.Errorf("kid of two issuers = %q, %q; want two distinct IDs", ka, kb)
	}
}

func TestIssuer_ParseOption(t *testing.T) {
	iss, other := jwtcachetest.NewIssuer(), jwtcachetest.NewIssuer()
	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"own token", iss.Mint(start, time.Hour, nil), nil},
		{"another issuer's token", other.Mint(start, time.Hour, nil), jwtcache.ErrUnparsable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := jwtcachetest.NewClock(start)
			c := jwtcache.NewCache(jwtcache.Clock(clock.Now), jwtcache.Logger(nil),
				jwtcache.ParseOptions(iss.ParseOption()),
				jwtcache.TokenFunction(func(context.Context) (string, error) { return tt.token, nil }))
			got, err := c.EnsureToken(context.Background())
			if tt.wantErr == nil && (err != nil || got != tt.token) {
				t.Errorf("EnsureToken() = %q, %v; want the token", got, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("EnsureToken() error = %v; want %v", err, tt.wantErr)
			}
		})
	}
}

func TestIssuer_TokenFunc(t *testing.T) {
	iss := jwtcachetest.NewIssuer()
	clock := jwtcachetest.NewClock(start)
	fetch := iss.TokenFunc(clock, time.Minute)
	for i := range 3 {
		clock.Advance(time.Minute)
		raw, err := fetch(context.Background())
		if err != nil {
			t.Fatalf("token function error = %v", err)
		}
		if got, want := testkit.Claims(t, raw).IssuedAt(), clock.Now(); !got.Equal(want) {
			t.Errorf("call %d: iat = %v; want the clock's %v", i, got, want)
		}
	}
	iss.Mint(start, time.Hour, nil) // not a token function call
	if got := iss.Issued(); got != 3 {
		t.Errorf("Issued() = %d; want 3", got)
	}
}

func TestIssuer_TokenFuncSystemClock(t *testing.T) {
	iss := jwtcachetest.NewIssuer()
	before := time.Now().Truncate(time.Second)
	raw, err := iss.TokenFunc(nil, time.Hour)(context.Background())
	if err != nil {
		t.Fatalf("token function error = %v", err)
	}
	if got := testkit.Claims(t, raw).IssuedAt(); got.Before(before) || got.After(time.Now()) {
		t.Errorf("iat = %v; want the system clock's time", got)
	}
}

func TestIssuer_Concurrent(t *testing.T) {
	iss := jwtcachetest.NewIssuer()
	fetch := iss.TokenFunc(jwtcachetest.NewClock(start), time.Hour)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				raw, _ := fetch(context.Background())
				mu.Lock()
				seen[raw] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if got := iss.Issued(); got != 80 || len(seen) != 80 {
		t.Errorf("Issued() = %d, distinct tokens = %d; want 80 and 80", got, len(seen))
	}
}

// Example tests a cache on a fake clock: the token is cached for most of its
// hour, and replaced once the hour is up, without the test waiting.
func Example() {
	clock := jwtcachetest.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	issuer := jwtcachetest.NewIssuer()
	cache := jwtcache.NewCache(
		jwtcache.TokenFunction(issuer.TokenFunc(clock, time.Hour)),
		jwtcache.Clock(clock.Now),
		jwtcache.ParseOptions(issuer.ParseOption()),
		jwtcache.Logger(nil),
	)
	ctx := context.Background()

	first, _ := cache.EnsureToken(ctx)
	clock.Advance(30 * time.Minute)
	second, _ := cache.EnsureToken(ctx)
	fmt.Println("after 30m: cached:", second == first, "issued:", issuer.Issued())

	clock.Advance(30 * time.Minute)
	third, _ := cache.EnsureToken(ctx)
	fmt.Println("after 1h: new token:", third != first, "issued:", issuer.Issued())
	// Output:
	// after 30m: cached: true issued: 1
	// after 1h: new token: true issued: 2
}
