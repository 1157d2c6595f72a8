package jwtcache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

// The twins keep jwtcache-go's signatures (with jwx v2's ParseOption), so
// that code which names their types, not only calls them, compiles too.
var (
	_ func(time.Duration) jwtcache.MapOption      = jwtcache.MapHeadroom
	_ func(...jwt.ParseOption) jwtcache.MapOption = jwtcache.MapParseOptions
	_ func(bool) jwtcache.MapOption               = jwtcache.MapRejectUnparsable
	_ func(*slog.Logger) jwtcache.MapOption       = jwtcache.MapLogger
)

// TestMigrate_MapOptionTwins checks that a CacheMap built with each of
// jwtcache-go's map option names behaves as one built with the plain Option,
// and that the scenario tells either apart from a map without the option.
func TestMigrate_MapOptionTwins(t *testing.T) {
	wrongKey := testkit.NewMinter("other").ParseOption() // not the key of the tests' tokens
	logger, logs := testkit.NewLogger()

	tests := []struct {
		name        string
		twin, plain jwtcache.MapOption
		probe       func(t *testing.T, opt jwtcache.MapOption) string
		want, bare  string // bare: what the map does without the option
	}{
		{
			name:  "MapHeadroom",
			twin:  jwtcache.MapHeadroom(time.Minute),
			plain: jwtcache.Headroom(time.Minute),
			probe: probeHeadroom,
			want:  "fetches: 2",
			bare:  "fetches: 1",
		},
		{
			name:  "MapRejectUnparsable",
			twin:  jwtcache.MapRejectUnparsable(true),
			plain: jwtcache.RejectUnparsable(true),
			probe: probeOpaque,
			want:  `token "", ErrUnparsable: true`,
			bare:  `token "opaque-token", ErrUnparsable: false`,
		},
		{
			name:  "MapParseOptions",
			twin:  jwtcache.MapParseOptions(wrongKey),
			plain: jwtcache.ParseOptions(wrongKey),
			probe: probeVerify,
			want:  "token: false, ErrUnparsable: true",
			bare:  "token: true, ErrUnparsable: false",
		},
		{
			name:  "MapLogger",
			twin:  jwtcache.MapLogger(logger),
			plain: jwtcache.Logger(logger),
			probe: func(t *testing.T, opt jwtcache.MapOption) string {
				before := len(logs.String())
				probeOpaque(t, opt)
				return fmt.Sprint("logged: ", len(logs.String()) > before)
			},
			want: "logged: true",
			bare: "logged: false",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.probe(t, tt.twin); got != tt.want {
				t.Errorf("with %s: %s; want %s", tt.name, got, tt.want)
			}
			if got := tt.probe(t, tt.plain); got != tt.want {
				t.Errorf("with the plain Option: %s; want %s", got, tt.want)
			}
			if got := tt.probe(t, nil); got != tt.bare {
				t.Errorf("without the option: %s; want %s", got, tt.bare)
			}
		})
	}
}

// probeHeadroom fetches a 10-minute token, then asks again 30 seconds before
// it expires: inside a one-minute headroom, outside the default 10 seconds.
func probeHeadroom(t *testing.T, opt jwtcache.MapOption) string {
	m, p, clk := newTestMap(10*time.Minute, jwtcache.RefreshAhead(jwtcache.Off), opt)
	mustMapToken(t, m, "acme")
	clk.Advance(9*time.Minute + 30*time.Second)
	mustMapToken(t, m, "acme")
	return fmt.Sprint("fetches: ", p.count("acme"))
}

// probeOpaque asks for a token from a provider that issues opaque tokens.
func probeOpaque(t *testing.T, opt jwtcache.MapOption) string {
	m := jwtcache.NewCacheMap(
		jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return "opaque-token", nil }),
		jwtcache.Logger(nil),
		opt,
	)
	tok, err := m.EnsureToken(context.Background(), "acme")
	return fmt.Sprintf("token %q, ErrUnparsable: %t", tok, errors.Is(err, jwtcache.ErrUnparsable))
}

// probeVerify asks for a token signed with the tests' key.
func probeVerify(t *testing.T, opt jwtcache.MapOption) string {
	m, _, _ := newTestMap(10*time.Minute, opt)
	tok, err := m.EnsureToken(context.Background(), "acme")
	return fmt.Sprintf("token: %t, ErrUnparsable: %t", tok != "", errors.Is(err, jwtcache.ErrUnparsable))
}

// TestMigrate_ErrNotImplemented checks that code comparing with jwtcache-go's
// sentinel, as its users did with ==, still matches a cache without a token
// function.
func TestMigrate_ErrNotImplemented(t *testing.T) {
	if jwtcache.ErrNotImplemented != jwtcache.ErrNoTokenFunction {
		t.Fatalf("ErrNotImplemented = %v; want ErrNoTokenFunction", jwtcache.ErrNotImplemented)
	}
	ctx := context.Background()
	_, cacheErr := jwtcache.NewCache(jwtcache.Logger(nil)).EnsureToken(ctx)
	_, mapErr := jwtcache.NewCacheMap(jwtcache.Logger(nil)).EnsureToken(ctx, "acme")
	for name, err := range map[string]error{"Cache": cacheErr, "CacheMap": mapErr} {
		if err != jwtcache.ErrNotImplemented {
			t.Errorf("%s.EnsureToken() error = %v; want ErrNotImplemented itself", name, err)
		}
	}
}

// Code written for jwtcache-go keeps its names, but a logger is an
// *slog.Logger now, and parse options are jwx v2's. Two things it may rely on
// behave differently: errors from the token function come back wrapped, so
// compare them with errors.Is, not ==; and a token that has expired is an
// error, never handed out.
func Example_migration() {
	errDown := errors.New("identity provider down")
	tenants := jwtcache.NewCacheMap(
		jwtcache.MapName("tenants"),
		jwtcache.MapTokenFunction(func(ctx context.Context, tenant string) (string, error) {
			if tenant == "acme" {
				return "", errDown
			}
			// globex's provider hands out a token that expired a minute ago.
			tok, err := jwt.NewBuilder().Expiration(time.Now().Add(-time.Minute)).Build()
			if err != nil {
				return "", err
			}
			signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, []byte("example secret")))
			return string(signed), err
		}),
		jwtcache.Headroom(time.Minute), // was MapHeadroom: every Option is a MapOption
		jwtcache.Logger(nil),           // was MapLogger(logrus...): an *slog.Logger, or nil
	)

	_, err := tenants.EnsureToken(context.Background(), "acme")
	fmt.Println("err == errDown:", err == errDown)
	fmt.Println("errors.Is(err, errDown):", errors.Is(err, errDown))

	tok, err := tenants.EnsureToken(context.Background(), "globex")
	fmt.Printf("expired: token %q, ErrExpired: %t\n", tok, errors.Is(err, jwtcache.ErrExpired))
	// Output:
	// err == errDown: false
	// errors.Is(err, errDown): true
	// expired: token "", ErrExpired: true
}
