package jose_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// keys are the tests' private keys, generated once.
var keys = sync.OnceValue(func() (k struct {
	rsa, rsa1024     *rsa.PrivateKey
	p256, p384, p521 *ecdsa.PrivateKey
	ed               ed25519.PrivateKey
}) {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	must(err)
	for _, c := range []struct {
		dst   **ecdsa.PrivateKey
		curve elliptic.Curve
	}{{&k.p256, elliptic.P256()}, {&k.p384, elliptic.P384()}, {&k.p521, elliptic.P521()}} {
		*c.dst, err = ecdsa.GenerateKey(c.curve, rand.Reader)
		must(err)
	}
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

// jwkOf returns the JWK of raw, with the fields set.
func jwkOf(t *testing.T, raw any, fields map[string]any) jwk.Key {
	t.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range fields {
		if err := k.Set(name, v); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// signWith signs input by alg with priv, the way a JWS does (RFC 7518,
// section 3): ECDSA's r and s side by side, each the curve's size.
func signWith(t *testing.T, alg jwa.SignatureAlgorithm, priv crypto.Signer, input string) []byte {
	t.Helper()
	name := alg.String()
	var h crypto.Hash
	switch name[len(name)-3:] {
	case "256":
		h = crypto.SHA256
	case "384":
		h = crypto.SHA384
	case "512":
		h = crypto.SHA512
	}
	if alg == jwa.EdDSA {
		sig, err := priv.Sign(rand.Reader, []byte(input), crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	d := h.New()
	d.Write([]byte(input))
	digest := d.Sum(nil)
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if strings.HasPrefix(name, "PS") {
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(nil, k, h, digest)
		}
		if err != nil {
			t.Fatal(err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		return append(r.FillBytes(make([]byte, n)), s.FillBytes(make([]byte, n))...)
	}
	t.Fatalf("signWith: %T", priv)
	return nil
}

func TestLookup(t *testing.T) {
	for _, alg := range []jwa.SignatureAlgorithm{
		jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512,
		jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA,
	} {
		a, ok := jose.Lookup(alg)
		if !ok || a.Name() != alg {
			t.Errorf("Lookup(%s) = %v, %v; want %s, true", alg, a.Name(), ok, alg)
		}
	}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.NoSignature, jwa.HS256, jwa.HS384, jwa.HS512, "ES256K", "Ed448", "", "rs256"} {
		if _, ok := jose.Lookup(alg); ok {
			t.Errorf("Lookup(%q) = true; want false: not an asymmetric algorithm this package verifies", alg)
		}
	}
}

func TestAlg_Verify(t *testing.T) {
	k := keys()
	const input = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjbGllbnQtMSJ9"
	tests := []struct {
		alg  jwa.SignatureAlgorithm
		priv crypto.Signer
	}{
		{jwa.RS256, k.rsa}, {jwa.RS384, k.rsa}, {jwa.RS512, k.rsa},
		{jwa.PS256, k.rsa}, {jwa.PS384, k.rsa}, {jwa.PS512, k.rsa},
		{jwa.ES256, k.p256}, {jwa.ES384, k.p384}, {jwa.ES512, k.p521},
		{jwa.EdDSA, k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.alg.String(), func(t *testing.T) {
			a, _ := jose.Lookup(tt.alg)
			pub, err := a.PublicKey(jwkOf(t, tt.priv.Public(), nil))
			if err != nil {
				t.Fatalf("PublicKey() error = %v", err)
			}
			// Many signatures, so that ECDSA's r and s take every shape:
			// with leading zeros, and with the high bit set.
			for range 16 {
				sig := signWith(t, tt.alg, tt.priv, input)
				if !a.Verify(pub, input, sig) {
					t.Fatalf("Verify(a good signature) = false")
				}
				bad := append([]byte(nil), sig...)
				bad[len(bad)/2] ^= 1
				if a.Verify(pub, input, bad) {
					t.Fatalf("Verify(a signature with a bit flipped) = true")
				}
				if a.Verify(pub, input+"x", sig) {
					t.Fatalf("Verify(another input) = true")
				}
			}
			if a.Verify(pub, input, nil) {
				t.Error("Verify(no signature) = true")
			}
		})
	}
}

func TestAlg_VerifyMismatch(t *testing.T) {
	k := keys()
	const input = "a.b"
	es256, _ := jose.Lookup(jwa.ES256)
	es384, _ := jose.Lookup(jwa.ES384)
	rs256, _ := jose.Lookup(jwa.RS256)
	sig := signWith(t, jwa.ES256, k.p256, input)
	if es384.Verify(&k.p256.PublicKey, input, sig) {
		t.Error("ES384 Verify(a P-256 key) = true")
	}
	if rs256.Verify(&k.p256.PublicKey, input, sig) {
		t.Error("RS256 Verify(an EC key) = true")
	}
	if es256.Verify(&k.p256.PublicKey, input, sig[:63]) {
		t.Error("ES256 Verify(a short signature) = true")
	}
	if es256.Verify(&k.p256.PublicKey, input, append(sig, 0)) {
		t.Error("ES256 Verify(a long signature) = true")
	}
	if es256.Verify("not a key", input, sig) {
		t.Error("Verify(not a key) = true")
	}
	var zero jose.Alg
	if zero.Verify(&k.p256.PublicKey, input, sig) {
		t.Error("zero Alg Verify() = true")
	}
}

func TestAlg_PublicKey(t *testing.T) {
	k := keys()
	tests := []struct {
		name    string
		alg     jwa.SignatureAlgorithm
		key     any
		fields  map[string]any
		wantErr string // "" for a key that verifies
	}{
		{"RSA", jwa.RS256, &k.rsa.PublicKey, nil, ""},
		{"RSA for PS512", jwa.PS512, &k.rsa.PublicKey, nil, ""},
		{"a private key verifies with its public half", jwa.RS256, k.rsa, nil, ""},
		{"private EC", jwa.ES256, k.p256, nil, ""},
		{"private Ed25519", jwa.EdDSA, k.ed, nil, ""},
		{"alg that agrees", jwa.RS256, &k.rsa.PublicKey, map[string]any{jwk.AlgorithmKey: jwa.RS256}, ""},
		{"use sig", jwa.RS256, &k.rsa.PublicKey, map[string]any{jwk.KeyUsageKey: "sig"}, ""},
		{"key_ops with verify", jwa.RS256, &k.rsa.PublicKey, map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpVerify}}, ""},
		{"EC for RSA", jwa.RS256, &k.p256.PublicKey, nil, "type EC does not verify RS256"},
		{"RSA for EdDSA", jwa.EdDSA, &k.rsa.PublicKey, nil, "type RSA does not verify EdDSA"},
		{"P-384 for ES256", jwa.ES256, &k.p384.PublicKey, nil, "curve P-384 does not verify ES256"},
		{"P-256 for ES512", jwa.ES512, &k.p256.PublicKey, nil, "curve P-256 does not verify ES512"},
		{"1024-bit RSA", jwa.RS256, &k.rsa1024.PublicKey, nil, "1024-bit RSA key, less than 2048"},
		{"another alg", jwa.RS256, &k.rsa.PublicKey, map[string]any{jwk.AlgorithmKey: jwa.RS512}, `it is for "RS512", not RS256`},
		{"use enc", jwa.RS256, &k.rsa.PublicKey, map[string]any{jwk.KeyUsageKey: "enc"}, `its use is "enc", not signing`},
		{"key_ops without verify", jwa.RS256, &k.rsa.PublicKey, map[string]any{jwk.KeyOpsKey: jwk.KeyOperationList{jwk.KeyOpEncrypt}}, "its key_ops lack verify"},
		{"a symmetric key", jwa.RS256, []byte("a secret of thirty-two bytes...."), nil, "type oct does not verify RS256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := jose.Lookup(tt.alg)
			pub, err := a.PublicKey(jwkOf(t, tt.key, tt.fields))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("PublicKey() = %T, %v; want error %q", pub, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PublicKey() error = %v", err)
			}
			switch pub.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Errorf("PublicKey() = %T; want a public key", pub)
			}
		})
	}
}
