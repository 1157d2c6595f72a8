package provider_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// TestOptionBounds: provider's numeric options follow the module's one rule:
// zero is the default, and a negative value is an error wrapping
// jwtcache.ErrInvalid that names the option and the value, from every
// constructor, before any request.
func TestOptionBounds(t *testing.T) {
	tests := []struct {
		opt  provider.Option
		want string // in the error; "" for a valid option
	}{
		{provider.MetadataTTL(-time.Hour), "MetadataTTL(-1h0m0s)"},
		{provider.MetadataTTL(0), ""},
		{provider.MaxLifetime(-time.Second), "MaxLifetime(-1s)"},
		{provider.MaxLifetime(0), ""},
	}
	for _, tt := range tests {
		_, err := provider.NewIssuer("https://idp.example", tt.opt)
		check(t, "NewIssuer", err, tt.want)
		_, err = provider.NewFromTokenURL("https://idp.example/token", basic, tt.opt)
		check(t, "NewFromTokenURL", err, tt.want)
		if tt.want != "" {
			_, err = provider.New(t.Context(), "https://idp.example", basic, tt.opt)
			check(t, "New", err, tt.want)
		}
	}
}

// check checks a constructor's error against want, the option and value it
// must name ("" for none).
func check(t *testing.T, call string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s() error = %v; want none", call, err)
	case want != "" && (!errors.Is(err, jwtcache.ErrInvalid) || !strings.Contains(err.Error(), want)):
		t.Errorf("%s() error = %v; want ErrInvalid naming %s", call, err, want)
	}
}
