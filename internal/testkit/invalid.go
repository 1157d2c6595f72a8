package testkit

import (
	"errors"
	"strings"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
)

// WantInvalid checks the error of call against want: "" for none, or the
// option and value an error wrapping jwtcache.ErrInvalid must name.
func WantInvalid(tb testing.TB, call string, err error, want string) {
	tb.Helper()
	switch {
	case want == "" && err != nil:
		tb.Errorf("%s() error = %v; want none", call, err)
	case want != "" && (!errors.Is(err, bounds.ErrInvalid) || !strings.Contains(err.Error(), want)):
		tb.Errorf("%s() error = %v; want ErrInvalid naming %s", call, err, want)
	}
}
