package provider

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
)

// DPoP proves possession of a private key on token requests and on the
// requests that carry the tokens (OAuth 2.0 Demonstrating Proof of
// Possession, RFC 9449), so that a token is bound to the key (its cnf.jkt
// claim) and useless to anyone who steals it without the key.
//
// One DPoP serves the three places a key is used: a [Client] made with
// [DPoPProof] sends a proof with each token request and asks for DPoP
// tokens; [jwtcache.AuthScheme] with it makes a [jwtcache.Transport] send
// "Authorization: DPoP <token>" and a proof on each request; and
// [DPoP.Binding] tells a cache with a shared store that its tokens are bound
// to the key, so that only replicas holding the same key adopt them:
//
//	key, _ := provider.NewDPoP(nil) // a new P-256 key; or the fleet's own
//	client, _ := provider.New(ctx, issuer, auth, provider.DPoPProof(key))
//	cache := jwtcache.NewCache(jwtcache.Name("orders"), jwtcache.IssueFunction(client.Issue), key.Binding())
//	http.Client{Transport: jwtcache.NewTransport(cache, nil, jwtcache.AuthScheme(key))}
//
// Each proof has the request's method (htm) and URL without query or
// fragment (htu), the time (iat), a fresh random jti, the hash of the access
// token (ath) on requests that carry one, and the server's nonce when it gave
// one: a DPoP keeps the last nonce each origin (scheme, host, port) sent in a
// DPoP-Nonce header, on any response, and a request the server refused for
// want of a nonce (a token endpoint's 400 use_dpop_nonce, a resource
// server's 401 with a DPoP use_dpop_nonce challenge) is sent again once, with
// a proof that has it, and the same token. A DPoP is safe for concurrent use.
type DPoP struct {
	signer crypto.Signer
	alg    string
	hash   crypto.Hash // 0 for EdDSA, which signs the message itself
	// size is the byte length of each of an ECDSA signature's two halves;
	// 0 for other keys.
	size int
	// header is the proof's protected header, base64url-encoded, and a dot.
	header string
	thumb  string
	clock  func() time.Time

	mu     sync.Mutex
	nonces map[string]string // by origin; guarded by mu
}

var _ jwtcache.Scheme = (*DPoP)(nil)

// maxNonceOrigins bounds a DPoP's nonces: a client that reaches more origins
// than this starts again from none (each costs one more nonce challenge).
const maxNonceOrigins = 256

// maxNonce bounds a nonce a server sends.
const maxNonce = 1024

// NewDPoP returns a DPoP that proves possession of key's private key. A nil
// key is a new P-256 key, which lives as long as the process: a fleet of
// replicas sharing tokens through a store, or a process that must keep its
// tokens across restarts, gives the key it keeps. The algorithm follows the
// key: ES256, ES384 or ES512 for an ECDSA key on P-256, P-384 or P-521;
// EdDSA for an Ed25519 key; RS256 for an RSA key of 2048 bits or more. Any
// other key is an error wrapping [ErrSigningAlgorithm].
func NewDPoP(key crypto.Signer) (*DPoP, error) {
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("provider: DPoP key: %w", err)
		}
		key = k
	}
	d := &DPoP{signer: key, clock: time.Now, nonces: make(map[string]string)}
	var jwk string
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		var crv string
		switch pub.Curve {
		case elliptic.P256():
			d.alg, d.hash, crv = "ES256", crypto.SHA256, "P-256"
		case elliptic.P384():
			d.alg, d.hash, crv = "ES384", crypto.SHA384, "P-384"
		case elliptic.P521():
			d.alg, d.hash, crv = "ES512", crypto.SHA512, "P-521"
		default:
			return nil, fmt.Errorf("%w: DPoP: an ECDSA key on a curve other than P-256, P-384 and P-521", ErrSigningAlgorithm)
		}
		d.size = (pub.Curve.Params().BitSize + 7) / 8
		b, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			return nil, fmt.Errorf("%w: DPoP: %v", ErrSigningAlgorithm, err)
		}
		x, y := b[1:1+d.size], b[1+d.size:]
		jwk = `{"crv":"` + crv + `","kty":"EC","x":"` + b64(x) + `","y":"` + b64(y) + `"}`
	case ed25519.PublicKey:
		d.alg = "EdDSA"
		jwk = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: DPoP: an RSA key of %d bits; 2048 or more are needed", ErrSigningAlgorithm, pub.N.BitLen())
		}
		d.alg, d.hash = "RS256", crypto.SHA256
		jwk = `{"e":"` + b64(big.NewInt(int64(pub.E)).Bytes()) + `","kty":"RSA","n":"` + b64(pub.N.Bytes()) + `"}`
	default:
		return nil, fmt.Errorf("%w: DPoP: a %T key; ECDSA, Ed25519 or RSA is needed", ErrSigningAlgorithm, pub)
	}
	// The JWK's members are in the lexicographic order of RFC 7638, so that
	// its hash is the thumbprint.
	sum := sha256.Sum256([]byte(jwk))
	d.thumb = b64(sum[:])
	d.header = b64([]byte(`{"typ":"dpop+jwt","alg":"`+d.alg+`","jwk":`+jwk+`}`)) + "."
	return d, nil
}

// b64 is base64url without padding, the encoding of JOSE.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Thumbprint returns the JWK SHA-256 thumbprint of the key (RFC 7638): the
// jkt that the tokens bound to it carry in their cnf claim.
func (d *DPoP) Thumbprint() string { return d.thumb }

// Algorithm returns the JWS algorithm of the proofs: ES256, ES384, ES512,
// EdDSA or RS256.
func (d *DPoP) Algorithm() string { return d.alg }

// Binding returns the [jwtcache.Binding] of the key, for the caches of its
// tokens.
func (d *DPoP) Binding() jwtcache.Option { return jwtcache.Binding(d.thumb) }

// Proof returns a DPoP proof for a request with method to rawURL, carrying
// accessToken (none for a token request), with the nonce the URL's origin
// last sent, if any.
func (d *DPoP) Proof(method, rawURL, accessToken string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("provider: DPoP proof: %w", err)
	}
	return d.proof(method, u, accessToken)
}

// proof returns a proof for a request with method to u, carrying
// accessToken (none for a token request).
func (d *DPoP) proof(method string, u *url.URL, accessToken string) (string, error) {
	if method == "" {
		method = http.MethodGet // as net/http sends it
	}
	if u.Host == "" || u.Scheme == "" {
		return "", fmt.Errorf("provider: DPoP proof: %q is not an absolute URL", u.Redacted())
	}
	var jti [16]byte
	if _, err := io.ReadFull(rand.Reader, jti[:]); err != nil {
		return "", fmt.Errorf("provider: DPoP proof: %w", err)
	}
	nonce := d.nonce(origin(u))

	// The claims, in the order of RFC 9449's examples.
	p := make([]byte, 0, 256)
	p = append(p, `{"jti":"`...)
	p = base64.RawURLEncoding.AppendEncode(p, jti[:])
	p = append(p, `","htm":`...)
	p = appendJSONString(p, method)
	p = append(p, `,"htu":`...)
	p = appendJSONString(p, htu(u))
	p = append(p, `,"iat":`...)
	p = strconv.AppendInt(p, d.clock().Unix(), 10)
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		p = append(p, `,"ath":"`...)
		p = base64.RawURLEncoding.AppendEncode(p, sum[:])
		p = append(p, '"')
	}
	if nonce != "" {
		p = append(p, `,"nonce":`...)
		p = appendJSONString(p, nonce)
	}
	p = append(p, '}')

	n := len(d.header) + base64.RawURLEncoding.EncodedLen(len(p))
	jws := make([]byte, 0, n+1+base64.RawURLEncoding.EncodedLen(2*max(d.size, 256)))
	jws = append(jws, d.header...)
	jws = base64.RawURLEncoding.AppendEncode(jws, p)
	sig, err := d.sign(jws)
	if err != nil {
		return "", fmt.Errorf("provider: DPoP proof: %w", err)
	}
	jws = append(jws, '.')
	jws = base64.RawURLEncoding.AppendEncode(jws, sig)
	return string(jws), nil
}

// sign signs the JWS signing input.
func (d *DPoP) sign(input []byte) ([]byte, error) {
	if d.hash == 0 {
		return d.signer.Sign(rand.Reader, input, crypto.Hash(0))
	}
	h := d.hash.New()
	h.Write(input)
	var buf [64]byte
	sig, err := d.signer.Sign(rand.Reader, h.Sum(buf[:0]), d.hash)
	if err != nil || d.size == 0 {
		return sig, err
	}
	return rawECDSA(sig, d.size)
}

// rawECDSA converts an ASN.1 DER ECDSA signature, SEQUENCE { r INTEGER,
// s INTEGER }, to JOSE's form: r and s, each as size big-endian bytes.
func rawECDSA(der []byte, size int) ([]byte, error) {
	errBad := errors.New("the signer returned a malformed ECDSA signature")
	seq, rest, ok := derElement(der, 0x30)
	if !ok || len(rest) != 0 {
		return nil, errBad
	}
	out := make([]byte, 2*size)
	for i := range 2 {
		var n []byte
		if n, seq, ok = derElement(seq, 0x02); !ok {
			return nil, errBad
		}
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) > size {
			return nil, errBad
		}
		copy(out[(i+1)*size-len(n):(i+1)*size], n)
	}
	if len(seq) != 0 {
		return nil, errBad
	}
	return out, nil
}

// derElement reads a DER element of tag from b: its contents, and what
// follows it.
func derElement(b []byte, tag byte) (contents, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, b := int(b[1]), b[2:]
	switch {
	case n == 0x81:
		if len(b) < 1 {
			return nil, nil, false
		}
		n, b = int(b[0]), b[1:]
	case n == 0x82:
		if len(b) < 2 {
			return nil, nil, false
		}
		n, b = int(b[0])<<8|int(b[1]), b[2:]
	case n > 0x7f:
		return nil, nil, false
	}
	if n > len(b) {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}

// appendJSONString appends s to b as a JSON string; invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

// htu returns a proof's htu for u: its scheme and host, lower-cased, the port
// unless it is the scheme's default, and its path; no query, no fragment
// (RFC 9449, section 4.2).
func htu(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// origin returns the key of u's nonce: its htu's scheme, host and port.
func origin(u *url.URL) string {
	s := htu(&url.URL{Scheme: u.Scheme, Host: u.Host})
	return strings.TrimSuffix(s, "/")
}

// nonce returns the nonce of an origin; empty if it sent none.
func (d *DPoP) nonce(origin string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.nonces[origin]
}

// keepNonce keeps the DPoP-Nonce of a response from u's origin, if it has a
// valid one, and reports whether it had.
func (d *DPoP) keepNonce(u *url.URL, h http.Header) bool {
	n := h.Get("DPoP-Nonce")
	if !validNonce(n) {
		return false
	}
	o := origin(u)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.nonces[o]; !ok && len(d.nonces) >= maxNonceOrigins {
		clear(d.nonces)
	}
	d.nonces[o] = n
	return true
}

// validNonce reports whether n is a nonce as RFC 9449 defines it: one or
// more of the printable ASCII characters but '"' and '\'.
func validNonce(n string) bool {
	if n == "" || len(n) > maxNonce {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Authorize implements [jwtcache.Scheme]: it sets req's Authorization header
// to "DPoP <token>" and its DPoP header to a proof for it.
func (d *DPoP) Authorize(req *http.Request, token string) error {
	u := req.URL
	if req.Host != "" && req.Host != u.Host {
		// The request goes to its Host header's authority: that is the
		// target URI the server sees.
		v := *u
		v.Host = req.Host
		u = &v
	}
	proof, err := d.proof(req.Method, u, token)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	return nil
}

// Observe implements [jwtcache.Scheme]: it keeps the nonce of any response
// that has one, and reports whether resp is a resource server's nonce
// challenge (a 401 with a DPoP use_dpop_nonce challenge) that came with one.
func (d *DPoP) Observe(req *http.Request, resp *http.Response) bool {
	if !d.keepNonce(req.URL, resp.Header) || resp.StatusCode != http.StatusUnauthorized {
		return false
	}
	for _, c := range challenge.Parse(resp.Header.Values("Www-Authenticate")) {
		if c.Is("DPoP") && c.Params["error"] == challenge.CodeUseDPoPNonce {
			return true
		}
	}
	return false
}

// DPoPProof makes the Client send a DPoP proof of d's key with each token
// request, and ask for DPoP tokens: a response's token_type must be DPoP (a
// Bearer token is an error wrapping [ErrTokenType]), and a JWT whose cnf
// claim names another key's thumbprint is refused. A token endpoint that
// answers use_dpop_nonce is asked again once, with its nonce. Where the
// provider lists the algorithms it takes for proofs
// (dpop_signing_alg_values_supported), d's must be among them, or [New]
// fails with [ErrSigningAlgorithm]. A cache of the Client's tokens with a
// [jwtcache.SharedStore] needs [DPoP.Binding] too: only a JWT's cnf.jkt tells
// whose key a saved token is bound to, an opaque token does not.
func DPoPProof(d *DPoP) Option {
	return optionFunc(func(c *config) { c.dpop = d })
}
