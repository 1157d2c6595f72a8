package jwtcache

import (
	"math"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

func TestExpiryOf(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	received := start.Add(200 * time.Millisecond)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	tests := []struct {
		name         string
		c            claims
		wantExpiry   time.Time
		wantLifetime time.Duration
	}{
		{
			name:         "no iat: exp on the local clock",
			c:            claims{exp: at(time.Hour)},
			wantExpiry:   at(time.Hour),
			wantLifetime: time.Hour - 200*time.Millisecond,
		},
		{
			name:         "iat, clocks agree: iat bound, a second off",
			c:            claims{iat: at(0), exp: at(time.Hour)},
			wantExpiry:   at(time.Hour - time.Second),
			wantLifetime: time.Hour,
		},
		{
			name:         "provider clock an hour ahead: iat bound",
			c:            claims{iat: at(time.Hour), exp: at(2 * time.Hour)},
			wantExpiry:   at(time.Hour - time.Second),
			wantLifetime: time.Hour,
		},
		{
			name:         "provider clock an hour behind, or an expired token: exp on the local clock",
			c:            claims{iat: at(-time.Hour), exp: at(-time.Hour + 5*time.Minute)},
			wantExpiry:   at(-time.Hour + 5*time.Minute),
			wantLifetime: 5 * time.Minute,
		},
		{
			name:         "provider clock 5s behind: exp on the local clock is earlier",
			c:            claims{iat: at(-5 * time.Second), exp: at(time.Hour - 5*time.Second)},
			wantExpiry:   at(time.Hour - 5*time.Second),
			wantLifetime: time.Hour,
		},
		{
			name:         "stale token issued 50s ago: exp on the local clock",
			c:            claims{iat: at(-50 * time.Second), exp: at(10 * time.Second)},
			wantExpiry:   at(10 * time.Second),
			wantLifetime: time.Minute,
		},
		{
			name:         "exp not after iat: exp on the local clock",
			c:            claims{iat: at(0), exp: at(0)},
			wantExpiry:   at(0),
			wantLifetime: -200 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expiry, lifetime := expiryOf(tt.c, start, received)
			if !expiry.Equal(tt.wantExpiry) || lifetime != tt.wantLifetime {
				t.Errorf("expiryOf() = %v, %v; want %v, %v", expiry, lifetime, tt.wantExpiry, tt.wantLifetime)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	expiry := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	before := func(d time.Duration) time.Time { return expiry.Add(-d) }
	tests := []struct {
		name          string
		lifetime      time.Duration
		headroom      time.Duration
		fraction      float64
		jitter        float64
		wantRefreshAt time.Time
		wantWaitAt    time.Time
	}{
		{"an hour, defaults", time.Hour, 10 * time.Second, 0.2, 1, before(12*time.Minute + 10*time.Second), before(10 * time.Second)},
		{"jittered early", time.Hour, 10 * time.Second, 0.2, 1.25, before(15*time.Minute + 10*time.Second), before(10 * time.Second)},
		{"jittered late", time.Hour, 10 * time.Second, 0.2, 0.75, before(9*time.Minute + 10*time.Second), before(10 * time.Second)},
		{"no refresh-ahead", time.Hour, 10 * time.Second, 0, 1, before(10 * time.Second), before(10 * time.Second)},
		{"lifetime under the headroom: capped at half", 8 * time.Second, 10 * time.Second, 0.2, 1, before(4*time.Second + 1600*time.Millisecond), before(4 * time.Second)},
		{"no headroom", time.Minute, 0, 0.2, 1, before(12 * time.Second), expiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refreshAt, waitAt := schedule(expiry, tt.lifetime, tt.headroom, tt.fraction, tt.jitter)
			if !refreshAt.Equal(tt.wantRefreshAt) || !waitAt.Equal(tt.wantWaitAt) {
				t.Errorf("schedule() = %v, %v; want %v, %v", refreshAt, waitAt, tt.wantRefreshAt, tt.wantWaitAt)
			}
		})
	}
}

func TestNewParser(t *testing.T) {
	tests := []struct {
		name                    string
		user                    []jwt.ParseOption
		wantParse, wantValidate int
		wantStrict              bool
	}{
		{"none: insecure", nil, 2, 0, false},
		{"nil options are dropped", []jwt.ParseOption{nil}, 2, 0, false},
		{"no validators: validation off, last", []jwt.ParseOption{jwt.WithVerify(false), jwt.WithValidate(true)}, 3, 0, true},
		{"validators: apart, with jwx's time checks reset", []jwt.ParseOption{jwt.WithVerify(false), jwt.WithIssuer("idp")}, 2, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParser(tt.user)
			if len(p.parse) != tt.wantParse || len(p.validate) != tt.wantValidate || p.strict != tt.wantStrict {
				t.Errorf("newParser() = %d parse, %d validate options, strict %v; want %d, %d, %v",
					len(p.parse), len(p.validate), p.strict, tt.wantParse, tt.wantValidate, tt.wantStrict)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	c := &Cache{cfg: newConfig([]Option{Backoff(time.Second, 30*time.Second)})}
	tests := []struct {
		n      int
		lo, hi time.Duration
	}{{1, time.Second, time.Second}, {2, time.Second, 2 * time.Second}, {4, time.Second, 8 * time.Second}, {10, time.Second, 30 * time.Second}, {1000, time.Second, 30 * time.Second}}
	huge := &Cache{cfg: newConfig([]Option{Backoff(time.Second, math.MaxInt64)})}
	if d := huge.backoff(100); d < time.Second {
		t.Errorf("backoff(100) with no practical ceiling = %v", d)
	}
	for _, tt := range tests {
		for range 100 {
			if d := c.backoff(tt.n); d < tt.lo || d > tt.hi {
				t.Fatalf("backoff(%d) = %v; want %v..%v", tt.n, d, tt.lo, tt.hi)
			}
		}
	}
}

func TestTokenID(t *testing.T) {
	if got := tokenID("secret", "abc"); got != "jti:abc" {
		t.Errorf("tokenID() = %q; want jti:abc", got)
	}
	if got := tokenID("secret", ""); len(got) != len("sha256:")+12 {
		t.Errorf("tokenID() = %q; want a 12-digit fingerprint", got)
	}
}
