package verify_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// TestParseOption verifies the tokens a cache fetches by the Verifier's key
// rules: what it signs with a key of the source passes, anything else is an
// error wrapping ErrUnparsable, never a token handed out.
func TestParseOption(t *testing.T) {
	k := testKeys()
	keys := newKeys(t)
	opt, err := verify.ParseOption(keys, jwa.RS256, jwa.ES256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cl := claims(map[string]any{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"RS256 by a key of the set", sign(t, "RS256", "rsa", k.rsa, nil, cl), true},
		{"ES256 by a key of the set", sign(t, "ES256", "p256", k.p256, nil, cl), true},
		{"alg none", sign(t, "none", "rsa", nil, nil, cl), false},
		{"HMAC with the public key as secret", sign(t, "HS256", "hs", k.hmac, nil, cl), false},
		{"an impostor under a known kid", sign(t, "RS256", "rsa", k.rsaOther, nil, cl), false},
		{"unknown kid", sign(t, "RS256", "nobody", k.rsa, nil, cl), false},
		{"no kid", sign(t, "RS256", "", k.rsa, nil, cl), false},
		{"algorithm not allowed", sign(t, "RS512", "rsa", k.rsa, nil, cl), false},
		{"P-384 key for ES256", sign(t, "ES256", "p384", k.p384, nil, cl), false},
		{"an encryption key", sign(t, "RS256", "rsa-enc", k.rsa, nil, cl), false},
		{"a 1024-bit RSA key", sign(t, "RS256", "rsa1024", k.rsa1024, nil, cl), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := jwtcache.NewCache(jwtcache.Name("verified"), jwtcache.Logger(nil), jwtcache.ParseOptions(opt),
				jwtcache.TokenFunction(func(context.Context) (string, error) { return tt.token, nil }))
			got, err := c.EnsureToken(context.Background())
			if tt.ok && (err != nil || got != tt.token) {
				t.Errorf("EnsureToken() = %v; want the token, verified", err)
			}
			if !tt.ok && (!errors.Is(err, jwtcache.ErrUnparsable) || got != "") {
				t.Errorf("EnsureToken() = %q, %v; want no token and ErrUnparsable", got, err)
			}
		})
	}
}

func TestParseOption_BadArguments(t *testing.T) {
	for name, algs := range map[string][]jwa.SignatureAlgorithm{
		"no algorithms": nil,
		"none":          {jwa.NoSignature},
		"HMAC":          {jwa.RS256, jwa.HS256},
	} {
		if _, err := verify.ParseOption(newKeys(t), algs...); !errors.Is(err, verify.ErrAlgorithm) {
			t.Errorf("ParseOption(%s) error = %v; want ErrAlgorithm", name, err)
		}
	}
	if _, err := verify.ParseOption(nil, jwa.RS256); err == nil {
		t.Errorf("ParseOption(nil) = nil error")
	}
}
