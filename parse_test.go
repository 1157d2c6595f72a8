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
		life          time.Duration
		headroom      time.Duration
		fraction      float64
		u             float64
		wantRefreshAt time.Time
		wantWaitAt    time.Time
	}{
		{"an hour, defaults, earliest", time.Hour, 10 * time.Second, 0.25, 0, before(15 * time.Minute), before(10 * time.Second)},
		{"an hour, defaults, jittered halfway", time.Hour, 10 * time.Second, 0.25, 0.5, before(13*time.Minute + 30*time.Second), before(10 * time.Second)},
		{"an hour, defaults, latest", time.Hour, 10 * time.Second, 0.25, 1, before(12 * time.Minute), before(10 * time.Second)},
		{"a day: the headroom is the option's", 24 * time.Hour, 10 * time.Second, 0.25, 0, before(6 * time.Hour), before(10 * time.Second)},
		{"5s token (4s local life): headroom a twentieth", 4 * time.Second, 10 * time.Second, 0.25, 0, before(time.Second), before(200 * time.Millisecond)},
		{"a minute: headroom a twentieth", time.Minute, 10 * time.Second, 0.25, 0, before(15 * time.Second), before(3 * time.Second)},
		{"no refresh-ahead", time.Hour, 10 * time.Second, 0, 0, before(10 * time.Second), before(10 * time.Second)},
		{"window shorter than the headroom: none", time.Minute, 10 * time.Second, 0.04, 0, before(3 * time.Second), before(3 * time.Second)},
		{"no headroom", time.Minute, 0, 0.25, 0, before(15 * time.Second), expiry},
		{"a life gone negative (clock stepped back)", -time.Second, 10 * time.Second, 0.25, 0, expiry, expiry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refreshAt, waitAt := schedule(expiry, tt.life, tt.headroom, tt.fraction, tt.u)
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

func TestRetryDelay(t *testing.T) {
	const lo, hi = time.Second, 30 * time.Second
	tests := []struct {
		name      string
		n         int
		left      time.Duration
		u         float64
		want      time.Duration
		wantRange [2]time.Duration // when want is 0: any u lands in it
	}{
		{name: "dry, first failure, earliest", n: 1, u: 0, want: lo},
		{name: "dry, first failure, latest", n: 1, u: 0.999999999, want: 2*lo - 1},
		{name: "dry, tenth failure: still 1-2s", n: 10, wantRange: [2]time.Duration{lo, 2 * lo}},
		{name: "dry, expired token counts as none", n: 10, left: -time.Minute, wantRange: [2]time.Duration{lo, 2 * lo}},
		{name: "live, first failure", n: 1, left: time.Hour, want: lo},
		{name: "live, fourth failure: up to 8s", n: 4, left: time.Hour, u: 0.5, want: lo + 3500*time.Millisecond},
		{name: "live, many failures: up to the ceiling", n: 1000, left: time.Hour, wantRange: [2]time.Duration{lo, hi}},
		{name: "live, capped at half of what is left", n: 1000, left: 10 * time.Second, u: 0.999, want: 5 * time.Second},
		{name: "live, nearly expired: never below the floor", n: 1000, left: 500 * time.Millisecond, u: 0.5, want: lo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want != 0 {
				if got := retryDelay(tt.n, tt.left, lo, hi, tt.u); got != tt.want {
					t.Errorf("retryDelay(%d, %v, %.3f) = %v; want %v", tt.n, tt.left, tt.u, got, tt.want)
				}
				return
			}
			for _, u := range []float64{0, 0.25, 0.5, 0.75, 0.999999999} {
				if got := retryDelay(tt.n, tt.left, lo, hi, u); got < tt.wantRange[0] || got > tt.wantRange[1] {
					t.Errorf("retryDelay(%d, %v, %.3f) = %v; want %v..%v", tt.n, tt.left, u, got, tt.wantRange[0], tt.wantRange[1])
				}
			}
		})
	}
	if d := retryDelay(100, time.Duration(math.MaxInt64), lo, math.MaxInt64, 0.5); d < lo {
		t.Errorf("retryDelay(100) with no practical ceiling = %v", d)
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
