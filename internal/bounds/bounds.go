// Package bounds is the one rule of this module's numeric options, for every
// package (the root, verify, provider): zero is the option's default, Off
// turns its feature off where it has one, and any other value that cannot be
// meant (negative, NaN, over its ceiling) is an error wrapping ErrInvalid
// that names the option and the value.
package bounds

import (
	"errors"
	"fmt"
	"time"
)

// Off is jwtcache.Off: the one negative value an option that can turn its
// feature off takes.
const Off = -1

// ErrInvalid is jwtcache.ErrInvalid.
var ErrInvalid = errors.New("jwtcache: invalid configuration")

// Number is the kinds of value a numeric option takes.
type Number interface {
	~int | ~int64 | ~float64
}

// Rule is what one option accepts.
type Rule[T Number] struct {
	Pkg, Name string // "verify", "Leeway": the error names them
	Off       bool   // Off turns the feature off (to the zero value)
	Max       T      // the largest value meant; 0 for none
	Want      string // what to give instead, for the error
}

// Check applies r to v: it returns the value to set and true (v itself, or 0
// for Off), false to keep the default (v is 0), or the error of a value that
// cannot be meant.
func (r Rule[T]) Check(v T) (T, bool, error) {
	switch {
	case r.Off && v == Off:
		return 0, true, nil
	case v == 0:
		return 0, false, nil
	case v > 0 && (r.Max == 0 || v <= r.Max):
		return v, true, nil
	}
	return 0, false, fmt.Errorf("%s: %s(%v): want %s: %w", r.Pkg, r.Name, show(v), r.Want, ErrInvalid)
}

// show prints a duration as one.
func show[T Number](v T) any {
	if d, ok := any(v).(time.Duration); ok {
		return d
	}
	return v
}

// Apply checks v by r and sets *dst to what it gives, or hands the error to
// record, which keeps the first of a configuration's.
func (r Rule[T]) Apply(v T, dst *T, record func(error)) {
	x, set, err := r.Check(v)
	switch {
	case err != nil:
		record(err)
	case set:
		*dst = x
	}
}
