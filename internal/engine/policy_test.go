package engine

import (
	"errors"
	"math"
	"testing"
	"time"
)

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
			refreshAt, waitAt := Schedule(expiry, tt.life, tt.headroom, tt.fraction, tt.u)
			if !refreshAt.Equal(tt.wantRefreshAt) || !waitAt.Equal(tt.wantWaitAt) {
				t.Errorf("Schedule() = %v, %v; want %v, %v", refreshAt, waitAt, tt.wantRefreshAt, tt.wantWaitAt)
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
				if got := RetryDelay(tt.n, tt.left, lo, hi, tt.u); got != tt.want {
					t.Errorf("RetryDelay(%d, %v, %.3f) = %v; want %v", tt.n, tt.left, tt.u, got, tt.want)
				}
				return
			}
			for _, u := range []float64{0, 0.25, 0.5, 0.75, 0.999999999} {
				if got := RetryDelay(tt.n, tt.left, lo, hi, u); got < tt.wantRange[0] || got > tt.wantRange[1] {
					t.Errorf("RetryDelay(%d, %v, %.3f) = %v; want %v..%v", tt.n, tt.left, u, got, tt.wantRange[0], tt.wantRange[1])
				}
			}
		})
	}
	if d := RetryDelay(100, time.Duration(math.MaxInt64), lo, math.MaxInt64, 0.5); d < lo {
		t.Errorf("RetryDelay(100) with no practical ceiling = %v", d)
	}
}

func TestPlan(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return now.Add(d) }
	failing := Failure{Err: errors.New("down"), Failures: 1, RetryAt: at(time.Second)}
	tests := []struct {
		name   string
		fresh  bool
		waitAt time.Time
		expiry time.Time
		f      Failure
		want   Phase
	}{
		{"nothing held", false, time.Time{}, time.Time{}, Failure{}, Dry},
		{"expired", false, at(-2 * time.Second), at(-time.Second), Failure{}, Dry},
		{"expired while failing", false, at(-2 * time.Second), at(-time.Second), failing, Dry},
		{"fresh", true, at(time.Minute), at(time.Hour), Failure{}, Fresh},
		{"refresh window", false, at(time.Minute), at(time.Hour), Failure{}, Due},
		{"headroom", false, at(-time.Second), at(time.Minute), Failure{}, Waiting},
		{"headroom while the source fails", false, at(-time.Second), at(time.Minute), failing, Due},
		{"headroom, failed before, retry due", false, at(-time.Second), at(time.Minute), Failure{Err: errors.New("down"), RetryAt: at(-time.Second)}, Due},
		{"headroom, nothing fresher for a while", false, at(-time.Second), at(time.Minute), Failure{RetryAt: at(time.Second)}, Due},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Plan(now, tt.fresh, tt.waitAt, tt.expiry, tt.f); got != tt.want {
				t.Errorf("Plan() = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestFailure(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var f Failure
	if f.Waiting(now) || f.Throttled(now) {
		t.Fatalf("zero Failure: waiting or throttled")
	}
	err := errors.New("down")
	f = f.Failed(err, now, 0, time.Second, 30*time.Second, 0)
	if f.Failures != 1 || !f.RetryAt.Equal(now.Add(time.Second)) || !f.Throttled(now) {
		t.Fatalf("Failed() = %+v; want 1 failure, retry in 1s, throttled", f)
	}
	sentinel := errors.New("backing off")
	if got, want := f.BackoffError(sentinel, now).Error(), "backing off (retry in 1s): down"; got != want {
		t.Errorf("BackoffError() = %q; want %q", got, want)
	}
	long := Failure{RetryAt: now.Add(time.Hour)}
	if got := long.Failed(err, now, 0, time.Second, 30*time.Second, 0); !got.RetryAt.Equal(now.Add(time.Hour)) {
		t.Errorf("Failed() shortened a backoff under way to %v", got.RetryAt.Sub(now))
	}
	f = f.Failed(err, now, 0, time.Second, 30*time.Second, 0)
	if e := f.BackoffError(sentinel, now); !errors.Is(e, sentinel) || !errors.Is(e, err) || e.Error() != "backing off (2 failures in a row, retry in 1s): down" {
		t.Errorf("BackoffError() after 2 = %q", e)
	}
}
