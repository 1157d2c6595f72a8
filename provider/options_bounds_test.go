package provider_test

import (
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
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
		testkit.WantInvalid(t, "NewIssuer", err, tt.want)
		_, err = provider.NewFromTokenURL("https://idp.example/token", basic, tt.opt)
		testkit.WantInvalid(t, "NewFromTokenURL", err, tt.want)
		if tt.want != "" {
			_, err = provider.New(t.Context(), "https://idp.example", basic, tt.opt)
			testkit.WantInvalid(t, "New", err, tt.want)
		}
	}
}
