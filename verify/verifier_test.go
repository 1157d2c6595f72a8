package verify_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestVerifier_New(t *testing.T) {
	keys := newKeys(t)
	base := []verify.Option{verify.Issuer(testIssuer), verify.Audience(testAudience)}
	tests := []struct {
		name    string
		keys    verify.KeySource
		opts    []verify.Option
		wantErr string // "" for success
	}{
		{"minimal", keys, base, ""},
		{"every algorithm", keys, append(base, verify.Algorithms(allAlgs...)), ""},
		{"nil keys", nil, base, "nil KeySource"},
		{"no issuer", keys, []verify.Option{verify.Audience(testAudience)}, "no Issuer"},
		{"no audience", keys, []verify.Option{verify.Issuer(testIssuer)}, "no Audience"},
		{"empty audience", keys, append(base, verify.Audience("")), "empty Audience"},
		{"HS256", keys, append(base, verify.Algorithms(jwa.RS256, jwa.HS256)), `"HS256" is not asymmetric`},
		{"none", keys, append(base, verify.Algorithms(jwa.NoSignature)), `"none" is not asymmetric`},
		{"ES256K", keys, append(base, verify.Algorithms(jwa.ES256K)), `"ES256K" is not supported`},
		{"no algorithms", keys, append(base, verify.Algorithms()), "no Algorithms"},
		{"realm with a quote", keys, append(base, verify.Realm(`a"b`)), "Realm"},
		{"realm", keys, append(base, verify.Realm("orders")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := verify.New(tt.keys, tt.opts...)
			if tt.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("New() = %v, %v; want a verifier", v, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "verify: ") {
				t.Fatalf("New() error = %v; want one with %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerifier_Algorithms(t *testing.T) {
	k := testKeys()
	tests := []struct {
		alg string
		kid string
		key any
	}{
		{"RS256", "rsa", k.rsa},
		{"RS384", "rsa", k.rsa},
		{"RS512", "rsa", k.rsa},
		{"PS256", "rsa", k.rsa},
		{"PS384", "rsa", k.rsa},
		{"PS512", "rsa", k.rsa},
		{"ES256", "p256", k.p256},
		{"ES384", "p384", k.p384},
		{"ES512", "p521", k.p521},
		{"EdDSA", "ed", k.ed},
		{"RS512", "rsa-rs512", k.rsa}, // the key's alg is the token's
		{"RS256", "rsa-sig", k.rsa},   // use "sig"
	}
	for _, tt := range tests {
		t.Run(tt.alg+"/"+tt.kid, func(t *testing.T) {
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
			token := sign(t, tt.alg, tt.kid, tt.key, nil, claims(nil))
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Fatalf("Verify() = %v; want success", err)
			}
		})
	}
}

func TestVerifier_DefaultAlgorithms(t *testing.T) {
	k := testKeys()
	v, err := verify.New(newKeys(t), verify.Issuer(testIssuer), verify.Audience(testAudience), verify.Clock(testkit.NewClock(t0).Now))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		alg     string
		kid     string
		key     any
		wantErr error
	}{
		{"RS256", "rsa", k.rsa, nil},
		{"ES256", "p256", k.p256, nil},
		{"PS256", "rsa", k.rsa, verify.ErrAlgorithm},
		{"ES384", "p384", k.p384, verify.ErrAlgorithm},
		{"EdDSA", "ed", k.ed, verify.ErrAlgorithm},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			_, err := v.Verify(context.Background(), sign(t, tt.alg, tt.kid, tt.key, nil, claims(nil)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify() = %v; want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifier_Claims(t *testing.T) {
	v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
	token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(map[string]any{
		"aud":   []string{"other", testAudience},
		"jti":   "id-1",
		"nbf":   t0.Unix() - 10,
		"iat":   1_699_999_999.5,
		"scope": "read write",
		"scp":   []string{"write", "admin"},
		"tenant": map[string]any{
			"id":    "t1",
			"roles": []string{"a"},
		},
	}))
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
	if got, want := c.Subject(), "client-1"; got != want {
		t.Errorf("Subject() = %q; want %q", got, want)
	}
	if got, want := c.Issuer(), testIssuer; got != want {
		t.Errorf("Issuer() = %q; want %q", got, want)
	}
	if got, want := c.Audience(), []string{"other", testAudience}; !slices.Equal(got, want) {
		t.Errorf("Audience() = %q; want %q", got, want)
	}
	if got, want := c.Expiry(), t0.Add(time.Hour); !got.Equal(want) {
		t.Errorf("Expiry() = %v; want %v", got, want)
	}
	if got, want := c.IssuedAt(), t0.Add(-time.Second/2); !got.Equal(want) {
		t.Errorf("IssuedAt() = %v; want %v", got, want)
	}
	if got, want := c.NotBefore(), t0.Add(-10*time.Second); !got.Equal(want) {
		t.Errorf("NotBefore() = %v; want %v", got, want)
	}
	if got, want := c.ID(), "id-1"; got != want {
		t.Errorf("ID() = %q; want %q", got, want)
	}
	if got, want := c.Scope(), []string{"read", "write", "admin"}; !slices.Equal(got, want) {
		t.Errorf("Scope() = %q; want %q", got, want)
	}
	if !c.HasScope("admin") || c.HasScope("delete") {
		t.Errorf("HasScope(admin), HasScope(delete) = %v, %v; want true, false", c.HasScope("admin"), c.HasScope("delete"))
	}
	if got, ok := c.Get("sub"); !ok || got != "client-1" {
		t.Errorf("Get(sub) = %v, %v; want client-1, true", got, ok)
	}
	if got, ok := c.Get("missing"); ok || got != nil {
		t.Errorf("Get(missing) = %v, %v; want nil, false", got, ok)
	}

	// What the methods return is the caller's to modify.
	c.Audience()[0] = "changed"
	c.Scope()[0] = "changed"
	tenant, _ := c.Get("tenant")
	tenant.(map[string]any)["id"] = "changed"
	tenant.(map[string]any)["roles"].([]any)[0] = "changed"
	if got := c.Audience()[0]; got != "other" {
		t.Errorf("Audience()[0] after a change to a copy = %q; want other", got)
	}
	if got := c.Scope()[0]; got != "read" {
		t.Errorf("Scope()[0] after a change to a copy = %q; want read", got)
	}
	tenant, _ = c.Get("tenant")
	if got := tenant.(map[string]any)["id"]; got != "t1" {
		t.Errorf("Get(tenant)[id] after a change to a copy = %v; want t1", got)
	}
	if got := tenant.(map[string]any)["roles"].([]any)[0]; got != "a" {
		t.Errorf("Get(tenant)[roles][0] after a change to a copy = %v; want a", got)
	}
}

func TestVerifier_Refuses(t *testing.T) {
	k := testKeys()
	es := func(header, changes map[string]any) string {
		return sign(t, "ES256", "p256", k.p256, header, claims(changes))
	}
	valid := es(nil, nil)
	parts := strings.Split(valid, ".")
	twoSigs := func() string {
		payload, _ := json.Marshal(claims(nil))
		h1, h2 := jws.NewHeaders(), jws.NewHeaders()
		_ = h1.Set(jws.KeyIDKey, "p256")
		_ = h2.Set(jws.KeyIDKey, "p256")
		b, err := jws.Sign(payload, jws.WithJSON(),
			jws.WithKey(jwa.ES256, k.p256, jws.WithProtectedHeaders(h1)),
			jws.WithKey(jwa.ES256, k.p256, jws.WithProtectedHeaders(h2)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}()
	tests := []struct {
		name    string
		token   string
		opts    []verify.Option
		wantErr error
	}{
		{"empty", "", nil, verify.ErrMalformed},
		{"oversize", es(nil, map[string]any{"pad": strings.Repeat("x", 9000)}), nil, verify.ErrMalformed},
		{"over MaxTokenSize", valid, []verify.Option{verify.MaxTokenSize(len(valid) - 1)}, verify.ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], nil, verify.ErrMalformed},
		{"four parts", valid + ".x", nil, verify.ErrMalformed},
		{"five parts (JWE)", parts[0] + ".a.b.c.d", nil, verify.ErrMalformed},
		{"JSON serialization with two signatures", twoSigs, nil, verify.ErrMalformed},
		{"padding", valid + "=", nil, verify.ErrMalformed},
		{"newline", parts[0] + ".\n" + parts[1] + "." + parts[2], nil, verify.ErrMalformed},
		{"standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+", nil, verify.ErrMalformed},
		{"header not JSON", b64([]byte("{nope")) + "." + parts[1] + "." + parts[2], nil, verify.ErrMalformed},
		{"header an array", b64([]byte(`["alg"]`)) + "." + parts[1] + "." + parts[2], nil, verify.ErrMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", nil, verify.ErrMalformed},
		{"no alg", es(map[string]any{"alg": nil}, nil), nil, verify.ErrMalformed},
		{"no kid", es(map[string]any{"kid": nil}, nil), nil, verify.ErrMalformed},
		{"empty kid", es(map[string]any{"kid": ""}, nil), nil, verify.ErrMalformed},
		{"kid not a string", es(map[string]any{"kid": 7}, nil), nil, verify.ErrMalformed},
		{"crit", es(map[string]any{"crit": []string{"exp"}, "exp": 1}, nil), nil, verify.ErrMalformed},
		{"b64 false", es(map[string]any{"b64": false}, nil), nil, verify.ErrMalformed},
		{"alg none", sign(t, "none", "p256", nil, nil, claims(nil)), nil, verify.ErrAlgorithm},
		{"alg none with a signature", b64([]byte(`{"alg":"none","kid":"p256"}`)) + "." + parts[1] + "." + parts[2], nil, verify.ErrAlgorithm},
		{"HS256 with an oct key at hand", sign(t, "HS256", "hs", k.hmac, nil, claims(nil)), nil, verify.ErrAlgorithm},
		{"HS256 with the RSA key as secret", sign(t, "HS256", "rsa", []byte("whatever"), nil, claims(nil)), nil, verify.ErrAlgorithm},
		{"alg not in the allowlist", es(nil, nil), []verify.Option{verify.Algorithms(jwa.RS256)}, verify.ErrAlgorithm},
		{"alg in another case", es(map[string]any{"alg": "es256"}, nil), nil, verify.ErrAlgorithm},
		{"unknown kid", es(map[string]any{"kid": "gone"}, nil), nil, verify.ErrUnknownKey},
		{"RSA key for ES256", es(map[string]any{"kid": "rsa"}, nil), nil, verify.ErrUnknownKey},
		{"P-384 key for ES256", es(map[string]any{"kid": "p384"}, nil), nil, verify.ErrUnknownKey},
		{"P-256 key for ES384", sign(t, "ES384", "p256", k.p384, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"Ed25519 key for ES256", es(map[string]any{"kid": "ed"}, nil), nil, verify.ErrUnknownKey},
		{"EC key for EdDSA", sign(t, "EdDSA", "p256", k.ed, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"1024-bit RSA key", sign(t, "RS256", "rsa1024", k.rsa1024, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"key alg RS512 for RS256", sign(t, "RS256", "rsa-rs512", k.rsa, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"key use enc", sign(t, "RS256", "rsa-enc", k.rsa, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"key_ops without verify", sign(t, "RS256", "rsa-ops", k.rsa, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"oct key for RS256", sign(t, "RS256", "hs", k.rsa, nil, claims(nil)), nil, verify.ErrUnknownKey},
		{"payload changed", parts[0] + "." + b64([]byte(`{"iss":"`+testIssuer+`","aud":"`+testAudience+`","exp":1900000000}`)) + "." + parts[2], nil, verify.ErrSignature},
		{"signed by another key", sign(t, "RS256", "rsa", k.rsaOther, nil, claims(nil)), nil, verify.ErrSignature},
		{"PKCS #1 v1.5 signature as PS256", func() string {
			s := sign(t, "PS256", "rsa", k.rsa, nil, claims(nil))
			p := strings.Split(s, ".")
			return p[0] + "." + p[1] + "." + b64(rawSign(t, "RS256", k.rsa, p[0]+"."+p[1]))
		}(), nil, verify.ErrSignature},
		{"ECDSA signature truncated", parts[0] + "." + parts[1] + "." + b64(must64(parts[2])[:63]), nil, verify.ErrSignature},
		{"ECDSA signature of zeros", parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)), nil, verify.ErrSignature},
		{"Ed25519 signature truncated", func() string {
			p := strings.Split(sign(t, "EdDSA", "ed", k.ed, nil, claims(nil)), ".")
			return p[0] + "." + p[1] + "." + b64(must64(p[2])[:40])
		}(), nil, verify.ErrSignature},
		{"claims not JSON", func() string {
			input := parts[0] + "." + b64([]byte("nope"))
			return input + "." + b64(rawSign(t, "ES256", k.p256, input))
		}(), nil, verify.ErrMalformed},
		{"no exp", es(nil, map[string]any{"exp": nil}), nil, verify.ErrMalformed},
		{"claim twice", signRaw(t, `{"iss":"https://evil.example","aud":"`+testAudience+`","exp":1900000000,"iss":"`+testIssuer+`"}`), nil, verify.ErrMalformed},
		{"header member twice", func() string {
			input := b64([]byte(`{"alg":"ES256","kid":"p256","kid":"p384"}`)) + "." + parts[1]
			return input + "." + b64(rawSign(t, "ES256", k.p256, input))
		}(), nil, verify.ErrMalformed},
		{"claims an array", signRaw(t, `[1]`), nil, verify.ErrMalformed},
		{"claims null", signRaw(t, `null`), nil, verify.ErrMalformed},
		{"claims with trailing garbage", signRaw(t, `{"exp":1}x`), nil, verify.ErrMalformed},
		{"exp a string", es(nil, map[string]any{"exp": "tomorrow"}), nil, verify.ErrMalformed},
		{"exp beyond 9999", es(nil, map[string]any{"exp": 1e20}), nil, verify.ErrMalformed},
		{"nbf negative", es(nil, map[string]any{"nbf": -1}), nil, verify.ErrMalformed},
		{"sub a number", es(nil, map[string]any{"sub": 1}), nil, verify.ErrMalformed},
		{"aud a number", es(nil, map[string]any{"aud": 1}), nil, verify.ErrMalformed},
		{"aud with a number", es(nil, map[string]any{"aud": []any{testAudience, 1}}), nil, verify.ErrMalformed},
		{"scp an object", es(nil, map[string]any{"scp": map[string]any{}}), nil, verify.ErrMalformed},
		{"no iss", es(nil, map[string]any{"iss": nil}), nil, verify.ErrIssuer},
		{"other iss", es(nil, map[string]any{"iss": "https://evil.example"}), nil, verify.ErrIssuer},
		{"iss with a trailing slash", es(nil, map[string]any{"iss": testIssuer + "/"}), nil, verify.ErrIssuer},
		{"ISS in capitals", es(nil, map[string]any{"iss": nil, "ISS": testIssuer}), nil, verify.ErrIssuer},
		{"no aud", es(nil, map[string]any{"aud": nil}), nil, verify.ErrAudience},
		{"empty aud list", es(nil, map[string]any{"aud": []string{}}), nil, verify.ErrAudience},
		{"other aud", es(nil, map[string]any{"aud": []string{"api://billing"}}), nil, verify.ErrAudience},
		{"expired", es(nil, map[string]any{"exp": t0.Add(-time.Minute).Unix()}), nil, verify.ErrExpired},
		{"nbf to come", es(nil, map[string]any{"nbf": t0.Add(time.Minute).Unix()}), nil, verify.ErrNotYetValid},
		{"iat to come", es(nil, map[string]any{"iat": t0.Add(time.Minute).Unix()}), nil, verify.ErrNotYetValid},
		{"typ JWT for at+jwt", es(nil, nil), []verify.Option{verify.Type("at+jwt")}, verify.ErrType},
		{"no typ for at+jwt", es(map[string]any{"typ": nil}, nil), []verify.Option{verify.Type("at+jwt")}, verify.ErrType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := newKeys(t)
			v := newVerifier(t, keys, testkit.NewClock(t0), tt.opts...)
			c, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, tt.wantErr) || c != nil {
				t.Fatalf("Verify() = %v, %v; want nil, %v", c, err, tt.wantErr)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "verify: ") {
				t.Errorf("error %q lacks the package prefix", msg)
			}
			t.Log(err)
			checkNoTokenText(t, err.Error(), tt.token)
			// A refused token is not remembered.
			if n := v.Len(); n != 0 {
				t.Errorf("Len() = %d after a refusal; want 0", n)
			}
		})
	}
}

// signRaw returns an ES256 token of the claims JSON payload, as it is.
func signRaw(t testing.TB, payload string) string {
	input := b64([]byte(`{"alg":"ES256","kid":"p256"}`)) + "." + b64([]byte(payload))
	return input + "." + b64(rawSign(t, "ES256", testKeys().p256, input))
}

func TestVerifier_ClaimsJSON(t *testing.T) {
	exp := t0.Add(time.Hour).Unix()
	tests := []struct {
		name    string
		payload string
		claim   string
		want    any
	}{
		{"white space", fmt.Sprintf(" {\n\t\"iss\" : %q ,\r\n \"aud\":[ %q ] , \"exp\" : %d , \"x\" : true } ", testIssuer, testAudience, exp), "x", true},
		{"escaped name", fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"\u0078":"y"}`, testIssuer, testAudience, exp), "x", "y"},
		{"escaped value", fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"x":"a\"}]\\"}`, testIssuer, testAudience, exp), "x", `a"}]\`},
		{"nested", fmt.Sprintf(`{"x":{"a":["}",{"b":"]"}],"c":{}},"iss":%q,"aud":%q,"exp":%d}`, testIssuer, testAudience, exp), "x",
			map[string]any{"a": []any{"}", map[string]any{"b": "]"}}, "c": map[string]any{}}},
		{"number", fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d.25,"x":-1.5e3}`, testIssuer, testAudience, exp), "x", -1500.0},
		{"null", fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d,"x":null}`, testIssuer, testAudience, exp), "x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
			c, err := v.Verify(context.Background(), signRaw(t, tt.payload))
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			got, ok := c.Get(tt.claim)
			if !ok || fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Get(%q) = %#v, %v; want %#v, true", tt.claim, got, ok, tt.want)
			}
			if got, want := c.Issuer(), testIssuer; got != want {
				t.Errorf("Issuer() = %q; want %q", got, want)
			}
		})
	}
}

// FuzzVerifier checks that Verify never panics on a token of any header and
// claims, signed or not, and that what it accepts meets its rules.
func FuzzVerifier(f *testing.F) {
	exp := t0.Add(time.Hour).Unix()
	f.Add(`{"alg":"EdDSA","kid":"ed"}`, fmt.Sprintf(`{"iss":%q,"aud":%q,"exp":%d}`, testIssuer, testAudience, exp), true)
	f.Add(`{"alg":"EdDSA","kid":"ed","x":{"y":["}"]}}`, fmt.Sprintf(`{"iss":%q,"aud":[%q],"exp":%d,"nbf":1,"scp":["a"]}`, testIssuer, testAudience, exp), true)
	f.Add(`{"alg":"none"}`, `{}`, false)
	f.Add(`{"alg":"EdDSA","kid":"ed"`, `[`, true)
	v := newVerifier(f, newKeys(f), testkit.NewClock(t0), verify.CacheSize(jwtcache.Off))
	ed := testKeys().ed
	f.Fuzz(func(t *testing.T, header, payload string, signed bool) {
		input := b64([]byte(header)) + "." + b64([]byte(payload))
		sig := []byte("not a signature")
		if signed {
			sig = ed25519.Sign(ed, []byte(input))
		}
		c, err := v.Verify(context.Background(), input+"."+b64(sig))
		if err != nil {
			return
		}
		if !signed || c.Issuer() != testIssuer || !slices.Contains(c.Audience(), testAudience) || !t0.Before(c.Expiry().Add(30*time.Second)) {
			t.Errorf("Verify(%s.%s) accepted %v", header, payload, c)
		}
	})
}

// must64 decodes a JWS part.
func must64(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestVerifier_UnknownKeyWrapsSourceError(t *testing.T) {
	keys := newKeys(t)
	v := newVerifier(t, keys, testkit.NewClock(t0))
	_, err := v.Verify(context.Background(), sign(t, "ES256", "gone", testKeys().p256, nil, claims(nil)))
	if !errors.Is(err, verify.ErrUnknownKey) || !errors.Is(err, errNoKey) {
		t.Errorf("Verify() = %v; want ErrUnknownKey wrapping %v", err, errNoKey)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = v.Verify(ctx, sign(t, "ES256", "p256", testKeys().p256, nil, claims(nil)))
	if !errors.Is(err, verify.ErrUnknownKey) || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify(cancelled) = %v; want ErrUnknownKey wrapping context.Canceled", err)
	}
}

func TestVerifier_Type(t *testing.T) {
	tests := []struct {
		want, typ string
		ok        bool
	}{
		{"at+jwt", "at+jwt", true},
		{"at+jwt", "AT+JWT", true},
		{"at+jwt", "application/at+jwt", true},
		{"application/at+jwt", "at+jwt", true},
		{"at+jwt", "Application/AT+jwt", true},
		{"at+jwt", "JWT", false},
		{"at+jwt", "", false},
		{"at+jwt", "text/at+jwt", false},
		{"", "anything", true},
	}
	for _, tt := range tests {
		t.Run(tt.want+"/"+tt.typ, func(t *testing.T) {
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0), verify.Type(tt.want))
			header := map[string]any{"typ": tt.typ}
			if tt.typ == "" {
				header["typ"] = nil
			}
			_, err := v.Verify(context.Background(), sign(t, "ES256", "p256", testKeys().p256, header, claims(nil)))
			if got := err == nil; got != tt.ok {
				t.Errorf("Verify() = %v; want success %v", err, tt.ok)
			}
		})
	}
}

func TestVerifier_Leeway(t *testing.T) {
	exp, nbf, iat := t0.Add(time.Hour), t0.Add(-time.Hour), t0.Add(-2*time.Hour)
	tests := []struct {
		name    string
		leeway  *time.Duration
		now     time.Time
		wantErr error
	}{
		{"just before exp plus the default 30s", nil, exp.Add(30*time.Second - time.Nanosecond), nil},
		{"at exp plus the default 30s", nil, exp.Add(30 * time.Second), verify.ErrExpired},
		{"at nbf less the default 30s", nil, nbf.Add(-30 * time.Second), nil},
		{"just before nbf less the default 30s", nil, nbf.Add(-30*time.Second - time.Nanosecond), verify.ErrNotYetValid},
		{"no leeway: just before exp", ptr(time.Duration(jwtcache.Off)), exp.Add(-time.Nanosecond), nil},
		{"no leeway: at exp", ptr(time.Duration(jwtcache.Off)), exp, verify.ErrExpired},
		{"no leeway: at nbf", ptr(time.Duration(jwtcache.Off)), nbf, nil},
		{"no leeway: before nbf", ptr(time.Duration(jwtcache.Off)), nbf.Add(-time.Nanosecond), verify.ErrNotYetValid},
		{"zero is the default", ptr(time.Duration(0)), exp.Add(30*time.Second - time.Nanosecond), nil},
		{"5 minutes: inside", ptr(5 * time.Minute), exp.Add(5*time.Minute - time.Nanosecond), nil},
		{"5 minutes: outside", ptr(5 * time.Minute), exp.Add(5 * time.Minute), verify.ErrExpired},
		{"iat less 30s", nil, iat.Add(-30 * time.Second), verify.ErrNotYetValid}, // before nbf too
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testkit.NewClock(tt.now)
			var opts []verify.Option
			if tt.leeway != nil {
				opts = append(opts, verify.Leeway(*tt.leeway))
			}
			v := newVerifier(t, newKeys(t), clock, opts...)
			token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(map[string]any{
				"exp": exp.Unix(), "nbf": nbf.Unix(), "iat": iat.Unix(),
			}))
			if _, err := v.Verify(context.Background(), token); !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify() at exp%+v = %v; want %v", tt.now.Sub(exp), err, tt.wantErr)
			}
		})
	}
}

func TestVerifier_IssuedInTheFuture(t *testing.T) {
	clock := testkit.NewClock(t0)
	v := newVerifier(t, newKeys(t), clock)
	token := sign(t, "ES256", "p256", testKeys().p256, nil, claims(map[string]any{"iat": t0.Add(30 * time.Second).Unix()}))
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("Verify() with iat at now plus the leeway = %v; want success", err)
	}
	token = sign(t, "ES256", "p256", testKeys().p256, nil, claims(map[string]any{"iat": t0.Add(31 * time.Second).Unix()}))
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, verify.ErrNotYetValid) {
		t.Errorf("Verify() with iat beyond now plus the leeway = %v; want ErrNotYetValid", err)
	}
}

func TestVerifier_PrivateKeyInSource(t *testing.T) {
	k := testKeys()
	priv, err := jwk.FromRaw(k.p256)
	if err != nil {
		t.Fatal(err)
	}
	_ = priv.Set(jwk.KeyIDKey, "p256")
	keys := &staticKeys{keys: map[string]jwk.Key{"p256": priv}}
	v := newVerifier(t, keys, testkit.NewClock(t0))
	if _, err := v.Verify(context.Background(), sign(t, "ES256", "p256", k.p256, nil, claims(nil))); err != nil {
		t.Errorf("Verify() with a private JWK in the source = %v; want success", err)
	}
}

func TestVerifier_JWXTokens(t *testing.T) {
	k := testKeys()
	tests := []struct {
		alg jwa.SignatureAlgorithm
		kid string
		key any
	}{
		{jwa.RS256, "rsa", k.rsa},
		{jwa.PS384, "rsa", k.rsa},
		{jwa.ES256, "p256", k.p256},
		{jwa.ES512, "p521", k.p521},
		{jwa.EdDSA, "ed", k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.alg.String(), func(t *testing.T) {
			payload, _ := json.Marshal(claims(nil))
			h := jws.NewHeaders()
			_ = h.Set(jws.KeyIDKey, tt.kid)
			token, err := jws.Sign(payload, jws.WithKey(tt.alg, tt.key, jws.WithProtectedHeaders(h)))
			if err != nil {
				t.Fatal(err)
			}
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
			if _, err := v.Verify(context.Background(), string(token)); err != nil {
				t.Errorf("Verify(a token of jws.Sign) = %v; want success", err)
			}
		})
	}
}
