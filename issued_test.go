package jwtcache_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
)

// issuing returns a cache on a fake clock whose IssueFunc returns what next
// gives it, counting the calls.
func issuing(next func(now time.Time) jwtcache.Issued, opts ...jwtcache.Option) (*jwtcache.Cache, *int, func(time.Duration)) {
	clk := newClock()
	calls := new(int)
	base := []jwtcache.Option{jwtcache.Logger(nil), jwtcache.Clock(clk.Now),
		jwtcache.IssueFunction(func(context.Context) (jwtcache.Issued, error) {
			*calls++
			return next(clk.Now()), nil
		})}
	return jwtcache.NewCache(append(base, opts...)...), calls, clk.Advance
}

func TestCache_Issued(t *testing.T) {
	tests := []struct {
		name       string
		issued     func(now time.Time) jwtcache.Issued
		opts       []jwtcache.Option
		wantExpiry time.Duration // from the fetch's start; 0: passed through uncached
		wantErr    error
	}{
		{"opaque with a lifetime: cached for it", func(time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: "opaque-1", ExpiresIn: time.Hour}
		}, nil, time.Hour, nil},
		{"opaque without a lifetime: passed through", func(time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: "opaque-1"}
		}, nil, 0, nil},
		{"JWT, lifetime shorter than exp: the lifetime", func(now time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: minter.Mint(now, time.Hour, nil), ExpiresIn: 10 * time.Minute}
		}, nil, 10 * time.Minute, nil},
		{"JWT, lifetime longer than exp: exp", func(now time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: minter.Mint(now, 10*time.Minute, nil), ExpiresIn: time.Hour}
		}, nil, 10*time.Minute - time.Second, nil},
		{"JWT without exp, with a lifetime: cached for it", func(now time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: minter.Mint(now, 0, map[string]any{jwt.IssuedAtKey: nil, jwt.ExpirationKey: nil}), ExpiresIn: time.Minute}
		}, nil, time.Minute, nil},
		{"negative lifetime: expired", func(time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: "opaque-1", ExpiresIn: -time.Second}
		}, nil, 0, jwtcache.ErrExpired},
		{"opaque with RejectUnparsable: an error, lifetime or not", func(time.Time) jwtcache.Issued {
			return jwtcache.Issued{Token: "opaque-1", ExpiresIn: time.Hour}
		}, []jwtcache.Option{jwtcache.RejectUnparsable(true)}, 0, jwtcache.ErrUnparsable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, calls, _ := issuing(tt.issued, tt.opts...)
			start := newClock().Now()
			tok, err := c.Token(context.Background())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Token() error = %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := tok.Expiry.Sub(start); tok.Expiry.IsZero() && tt.wantExpiry != 0 || !tok.Expiry.IsZero() && got != tt.wantExpiry {
				t.Errorf("Token().Expiry = start + %v (zero: %v); want start + %v", got, tok.Expiry.IsZero(), tt.wantExpiry)
			}
			c.Token(context.Background())
			if wantCalls := map[bool]int{true: 1, false: 2}[tt.wantExpiry != 0]; *calls != wantCalls {
				t.Errorf("token function calls after two Token() = %d; want %d", *calls, wantCalls)
			}
		})
	}
}

func TestCache_IssuedScopeAndRefresh(t *testing.T) {
	n := 0
	c, calls, advance := issuing(func(time.Time) jwtcache.Issued {
		n++
		return jwtcache.Issued{Token: "opaque-" + strconv.FormatInt(int64(n), 10), ExpiresIn: 100 * time.Second, Scope: "read"}
	})
	tok, err := c.Token(context.Background())
	if err != nil || tok.Scope != "read" || tok.Value != "opaque-1" {
		t.Fatalf("Token() = %+v, %v; want opaque-1 with scope read", tok, err)
	}
	advance(96 * time.Second) // the headroom: an opaque token is refreshed like a JWT
	if tok, _ := c.Token(context.Background()); tok.Value != "opaque-2" || *calls != 2 {
		t.Errorf("Token() in the headroom = %q after %d calls; want opaque-2 after 2", tok.Value, *calls)
	}
}

func TestCacheMap_IssueFunction(t *testing.T) {
	m := jwtcache.NewCacheMap(jwtcache.Logger(nil),
		jwtcache.MapIssueFunction(func(_ context.Context, key string) (jwtcache.Issued, error) {
			return jwtcache.Issued{Token: "opaque-" + key, ExpiresIn: time.Hour, Scope: key}, nil
		}))
	tok, err := m.Token(context.Background(), "acme")
	if err != nil || tok.Value != "opaque-acme" || tok.Scope != "acme" || tok.Expiry.IsZero() {
		t.Errorf("Token(acme) = %+v, %v; want opaque-acme, cached, scope acme", tok, err)
	}
}

// TestStore_SharesOpaqueTokens has a second replica adopt an opaque token
// the first saved, for the lifetime it was given.
func TestStore_SharesOpaqueTokens(t *testing.T) {
	f := newSeam()
	replica := func() *jwtcache.Cache {
		return jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.Logger(nil), jwtcache.Clock(f.clock.Now),
			jwtcache.SharedStore(f.store), jwtcache.IssueFunction(func(ctx context.Context) (jwtcache.Issued, error) {
				f.p.calls.Add(1)
				return jwtcache.Issued{Token: "opaque-" + strconv.FormatInt(f.p.calls.Load(), 10), ExpiresIn: time.Hour}, nil
			}))
	}
	a, b := replica(), replica()
	ta, _ := a.Token(context.Background())
	tb, err := b.Token(context.Background())
	if err != nil || tb.Value != ta.Value || !tb.Expiry.Equal(ta.Expiry) || f.issued() != 1 {
		t.Errorf("second replica: %v, same token %v, same expiry %v, issued %d; want adopted, 1 issued",
			err, tb.Value == ta.Value, tb.Expiry.Equal(ta.Expiry), f.issued())
	}
}
