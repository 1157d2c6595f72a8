package jwtcache

import (
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

func TestTokenID(t *testing.T) {
	if got := tokenID("secret", "abc"); got != "jti:abc" {
		t.Errorf("tokenID() = %q; want jti:abc", got)
	}
	if got := tokenID("secret", ""); len(got) != len("sha256:")+12 {
		t.Errorf("tokenID() = %q; want a 12-digit fingerprint", got)
	}
}
