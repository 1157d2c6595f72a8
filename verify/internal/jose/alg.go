// Package jose is the JSON Web Signature check of package verify: the
// asymmetric algorithms it verifies (RFC 7518, section 3; RFC 8037), the rules
// that tie a key to an algorithm, and the strict JSON scanner that reads a
// token's header and claims. It never fetches a key nor decides what a token
// may claim: that is verify's role.
//
// Its errors are fragments ("iss claim is not a string"), which verify wraps
// with its own sentinels; none carries a token's text, only a name or value
// quoted and cut short by [Quote].
package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// Alg describes how to verify one signature algorithm. The zero Alg verifies
// nothing; get one from [Lookup].
type Alg struct {
	name  jwa.SignatureAlgorithm
	kty   jwa.KeyType
	hash  crypto.Hash    // none for EdDSA
	curve elliptic.Curve // ECDSA
	pss   bool           // RSA: PSS rather than PKCS #1 v1.5
}

// algs are the algorithms this package verifies: RFC 7518, section 3, and
// RFC 8037, section 3.1, for Ed25519 only (the standard library has no
// Ed448). None is symmetric: a public key used as an HMAC secret would let
// anyone sign.
var algs = map[jwa.SignatureAlgorithm]Alg{
	jwa.RS256: {name: jwa.RS256, kty: jwa.RSA, hash: crypto.SHA256},
	jwa.RS384: {name: jwa.RS384, kty: jwa.RSA, hash: crypto.SHA384},
	jwa.RS512: {name: jwa.RS512, kty: jwa.RSA, hash: crypto.SHA512},
	jwa.PS256: {name: jwa.PS256, kty: jwa.RSA, hash: crypto.SHA256, pss: true},
	jwa.PS384: {name: jwa.PS384, kty: jwa.RSA, hash: crypto.SHA384, pss: true},
	jwa.PS512: {name: jwa.PS512, kty: jwa.RSA, hash: crypto.SHA512, pss: true},
	jwa.ES256: {name: jwa.ES256, kty: jwa.EC, hash: crypto.SHA256, curve: elliptic.P256()},
	jwa.ES384: {name: jwa.ES384, kty: jwa.EC, hash: crypto.SHA384, curve: elliptic.P384()},
	jwa.ES512: {name: jwa.ES512, kty: jwa.EC, hash: crypto.SHA512, curve: elliptic.P521()},
	jwa.EdDSA: {name: jwa.EdDSA, kty: jwa.OKP},
}

// Lookup returns how to verify alg, and whether this package verifies it:
// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 and EdDSA
// (Ed25519) only; never "none" nor an HMAC algorithm.
func Lookup(alg jwa.SignatureAlgorithm) (Alg, bool) {
	a, ok := algs[alg]
	return a, ok
}

// Name returns the algorithm's name, as a token's alg header gives it.
func (a Alg) Name() jwa.SignatureAlgorithm { return a.name }

// minRSABits is the smallest RSA key accepted (RFC 7518, section 3.3).
const minRSABits = 2048

// pssOptions are how RFC 7518, section 3.5, salts PSS: as long as the hash.
var pssOptions = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

// Verify reports whether sig is a's signature of input by pub, a key that
// [Alg.PublicKey] returned for a. It does not allocate but for ECDSA, whose
// signature it converts to ASN.1.
func (a Alg) Verify(pub any, input string, sig []byte) bool {
	var digest []byte
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256(Bytes(input))
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(Bytes(input))
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(Bytes(input))
		digest = d[:]
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if a.kty != jwa.RSA {
			return false
		}
		if a.pss {
			return rsa.VerifyPSS(k, a.hash, digest, sig, pssOptions) == nil
		}
		return rsa.VerifyPKCS1v15(k, a.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		if a.curve == nil || k.Curve != a.curve {
			return false
		}
		// JWS signs with r and s side by side (RFC 7518, section 3.4);
		// crypto/ecdsa takes them in ASN.1.
		n := (a.curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return false
		}
		return ecdsa.VerifyASN1(k, digest, asn1Signature(sig[:n], sig[n:]))
	case ed25519.PublicKey:
		return a.kty == jwa.OKP && ed25519.Verify(k, Bytes(input), sig)
	}
	return false
}

// PublicKey returns the public key of key that verifies a, or why key may
// not verify it: its type, curve or size does not suit a (RFC 7518, section
// 3: ES256 is P-256 only, RSA at least 2048 bits), its own alg, if any, is
// not a, its use, if any, is not signing, or its key_ops, if any, lack
// "verify". A private key verifies with its public half.
func (a Alg) PublicKey(key jwk.Key) (any, error) {
	alg := a.name
	if key.KeyType() != a.kty {
		return nil, fmt.Errorf("type %s does not verify %s", key.KeyType(), alg)
	}
	if ka := key.Algorithm(); ka != nil && ka.String() != "" && ka.String() != alg.String() {
		return nil, fmt.Errorf("it is for %s, not %s", Quote(ka.String()), alg)
	}
	if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, fmt.Errorf("its use is %s, not signing", Quote(use))
	}
	if ops := key.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, errors.New("its key_ops lack verify")
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return nil, fmt.Errorf("unusable %s key: %w", key.KeyType(), err)
	}
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		raw = &k.PublicKey
	case *ecdsa.PrivateKey:
		raw = &k.PublicKey
	case ed25519.PrivateKey:
		raw = k.Public()
	}
	switch k := raw.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("%d-bit RSA key, less than %d", bits, minRSABits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != a.curve {
			return nil, fmt.Errorf("curve %s does not verify %s", k.Curve.Params().Name, alg)
		}
		return k, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
		return k, nil
	}
	return nil, fmt.Errorf("%T does not verify %s", raw, alg)
}

// asn1Signature returns the DER encoding of the ECDSA signature (r, s), each
// big-endian and unsigned, of at most 66 bytes (P-521): SEQUENCE { INTEGER r,
// INTEGER s }.
func asn1Signature(r, s []byte) []byte {
	r, s = trimZeros(r), trimZeros(s)
	n := 4 + len(r) + int(r[0]>>7) + len(s) + int(s[0]>>7) // each INTEGER < 128 bytes
	out := make([]byte, 0, n+3)
	out = append(out, 0x30)
	if n >= 0x80 { // P-521
		out = append(out, 0x81)
	}
	out = append(out, byte(n))
	for _, x := range [][]byte{r, s} {
		out = append(out, 0x02, byte(len(x)+int(x[0]>>7)))
		if x[0]&0x80 != 0 {
			out = append(out, 0) // not negative
		}
		out = append(out, x...)
	}
	return out
}

// trimZeros drops the leading zeros of x but the last.
func trimZeros(x []byte) []byte {
	for len(x) > 1 && x[0] == 0 {
		x = x[1:]
	}
	return x
}
