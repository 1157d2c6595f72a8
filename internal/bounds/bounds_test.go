package bounds

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestRule(t *testing.T) {
	d := Rule[time.Duration]{Pkg: "p", Name: "D", Off: true, Max: time.Minute, Want: "0 to 1m"}
	tests := []struct {
		in      time.Duration
		want    time.Duration
		set     bool
		wantErr string
	}{
		{0, 0, false, ""},
		{time.Second, time.Second, true, ""},
		{time.Minute, time.Minute, true, ""},
		{Off, 0, true, ""},
		{-2, 0, false, "p: D(-2ns): want 0 to 1m"},
		{time.Hour, 0, false, "p: D(1h0m0s): want 0 to 1m"},
	}
	for _, tt := range tests {
		got, set, err := d.Check(tt.in)
		if got != tt.want || set != tt.set || (err == nil) != (tt.wantErr == "") ||
			err != nil && (!errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tt.wantErr)) {
			t.Errorf("Check(%v) = %v, %v, %v; want %v, %v, %q", tt.in, got, set, err, tt.want, tt.set, tt.wantErr)
		}
	}
	noOff := Rule[int]{Pkg: "p", Name: "N", Want: "0 or more"}
	if _, _, err := noOff.Check(Off); err == nil {
		t.Error("Check(Off) without Off: no error")
	}
	f := Rule[float64]{Pkg: "p", Name: "F", Max: 0.5, Want: "(0, 0.5]"}
	if _, _, err := f.Check(math.NaN()); err == nil {
		t.Error("Check(NaN): no error")
	}
	if v, set, err := f.Check(0.25); v != 0.25 || !set || err != nil {
		t.Errorf("Check(0.25) = %v, %v, %v", v, set, err)
	}
}
