package verify_test

import (
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// TestOptionBounds: every numeric option of verify follows the module's one
// rule: zero is the default, jwtcache.Off turns the feature off where it has
// one, and a value that cannot be meant is an error wrapping
// jwtcache.ErrInvalid, naming the option and the value, from the
// constructor.
func TestOptionBounds(t *testing.T) {
	verifier := []struct {
		opt  verify.Option
		want string // in the error; "" for a valid option
	}{
		{verify.Leeway(-time.Second), "Leeway(-1s)"},
		{verify.Leeway(10 * time.Minute), "Leeway(10m0s)"},
		{verify.Leeway(0), ""},
		{verify.Leeway(jwtcache.Off), ""},
		{verify.MaxTokenSize(-1), "MaxTokenSize(-1)"},
		{verify.MaxTokenSize(0), ""},
		{verify.CacheSize(-2), "CacheSize(-2)"},
		{verify.CacheSize(0), ""},
		{verify.CacheSize(jwtcache.Off), ""},
	}
	for _, tt := range verifier {
		_, err := verify.New(newKeys(t), verify.Issuer(testIssuer), verify.Audience(testAudience), verify.Logger(nil), tt.opt)
		testkit.WantInvalid(t, "New", err, tt.want)
	}
	keySet := []struct {
		opt  verify.KeySetOption
		want string
	}{
		{verify.FetchTimeout(-time.Second), "FetchTimeout(-1s)"},
		{verify.FetchTimeout(0), ""},
		{verify.MinTTL(-time.Second), "MinTTL(-1s)"},
		{verify.MinTTL(0), ""},
		{verify.MaxTTL(-time.Second), "MaxTTL(-1s)"},
		{verify.MaxTTL(time.Minute), "MaxTTL(1m0s)"}, // below the default MinTTL, 5m
		{verify.MaxTTL(0), ""},
		{verify.MinRefreshInterval(-time.Second), "MinRefreshInterval(-1s)"},
		{verify.MinRefreshInterval(0), ""},
		{verify.StaleWindow(-time.Second), "StaleWindow(-1s)"},
		{verify.StaleWindow(0), ""},
		{verify.StaleWindow(jwtcache.Off), ""},
		{verify.MaxResponseSize(-1), "MaxResponseSize(-1)"},
		{verify.MaxResponseSize(0), ""},
	}
	for _, tt := range keySet {
		_, err := verify.NewKeySet("https://idp.example/jwks", tt.opt)
		testkit.WantInvalid(t, "NewKeySet", err, tt.want)
		_, err = verify.NewFromIssuer("https://idp.example", "api", tt.opt)
		testkit.WantInvalid(t, "NewFromIssuer", err, tt.want)
	}
}
