package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// KeySource returns the verification key with kid. *KeySet implements it.
// It must be safe for concurrent use. [Verifier.Verify] passes it the
// caller's context and wraps any error it returns in [ErrUnknownKey].
type KeySource interface {
	Key(ctx context.Context, kid string) (jwk.Key, error)
}

// KeyPresence is an optional interface of a [KeySource]: HasKey reports
// whether the source holds the key with kid now, without fetching anything,
// so that it is cheap enough to call on every hit of the verified-token cache
// (see [Verifier]). It must be safe for concurrent use and should neither
// block nor allocate. *KeySet implements it.
type KeyPresence interface {
	HasKey(kid string) bool
}

// Verifier verifies the JWTs a service receives: signed access tokens, by
// default, of one issuer for one audience. Most callers use
// [Verifier.Middleware]; others call [Verifier.Verify].
//
// A token is accepted if it is a JWS in compact form with one signature, by an
// allowed asymmetric algorithm ([Algorithms]), with a kid naming a key of the
// [KeySource] that suits the algorithm, from the [Issuer], for one of the
// [Audience], and live: exp is required, and exp, nbf and iat are checked
// against the [Clock] with the [Leeway]. Keys come from the key source only;
// keys or key URLs in the token's header (jwk, jku, x5c, x5u) are ignored.
//
// Clients reuse a token for its whole life, so a token once verified is
// accepted again, until it expires, on a keyed hash of its text (see
// [CacheSize]) and the time checks, without its signature being checked again, and the same *[Claims]
// is returned for it (see [CacheSize]). If the key source implements
// [KeyPresence], a hit also checks that the token's key is still in it, and a
// token whose key left is verified afresh (and is then refused, unless its
// key came back); a key source without it cannot withdraw a token already
// verified before it expires.
//
// A Verifier is safe for concurrent use; it starts no goroutine and needs no
// Close. The zero Verifier is not usable; use [New].
type Verifier struct {
	// keys, presence and cfg are written once by New and only read after.
	keys     KeySource
	presence KeyPresence // keys, if it implements KeyPresence; or nil
	cfg      verifierConfig
	// challenge and challengeInvalid are the WWW-Authenticate values of the
	// middleware's refusals without a token and with a bad one.
	challenge        string
	challengeInvalid string

	cache *verifierCache // nil when CacheSize is 0
}

// Option configures a [Verifier]. Options are applied in order; a later
// option overrides an earlier one of the same kind, but for [Audience],
// whose values add up.
type Option interface {
	apply(*verifierConfig)
}

// verifierOptionFunc adapts a function to [Option].
type verifierOptionFunc func(*verifierConfig)

func (f verifierOptionFunc) apply(c *verifierConfig) { f(c) }

// Defaults and bounds, documented on the options that set them.
const (
	verifierDefaultLeeway    = 30 * time.Second
	verifierMaxLeeway        = 5 * time.Minute
	verifierDefaultMaxSize   = 8 << 10
	verifierDefaultCacheSize = 10_000
)

// verifierDefaultAlgs are the algorithms allowed without [Algorithms]: the
// one every OpenID provider supports, and the common elliptic-curve one.
var verifierDefaultAlgs = []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256}

// verifierConfig is a Verifier's configuration, as the options set it.
type verifierConfig struct {
	issuer    string
	audience  []string
	algs      []jwa.SignatureAlgorithm // nil: the default
	leeway    time.Duration
	typ       string // normalized by verifierMediaType; "" for no check
	maxSize   int
	clock     func() time.Time // nil: time.Now
	cacheSize int
	logger    *slog.Logger
	realm     string
	realmSet  bool
	errs      []error // what the options found wrong, reported by New
}

// Issuer sets the issuer whose tokens are accepted: a token's iss claim must
// be exactly iss (no normalization: a trailing slash counts). It is required.
func Issuer(iss string) Option {
	return verifierOptionFunc(func(c *verifierConfig) { c.issuer = iss })
}

// Audience adds audiences a token may be for: its aud claim must name at least
// one of them exactly. At least one is required; an empty one is an error.
func Audience(aud ...string) Option {
	return verifierOptionFunc(func(c *verifierConfig) {
		for _, a := range aud {
			if a == "" {
				c.errs = append(c.errs, errors.New("verify: New: empty Audience"))
			}
		}
		c.audience = append(c.audience, aud...)
	})
}

// Algorithms sets the signature algorithms a token's alg may name. Only
// asymmetric algorithms with a verifier in the standard library may be listed:
// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512 and EdDSA
// (Ed25519). Listing "none", an HMAC algorithm (a public key used as an HMAC
// secret would let anyone sign), or another algorithm makes [New] fail, and so
// does listing none at all. The default is RS256 and ES256.
func Algorithms(algs ...jwa.SignatureAlgorithm) Option {
	return verifierOptionFunc(func(c *verifierConfig) {
		c.algs = slices.Clone(algs)
		if c.algs == nil {
			c.algs = []jwa.SignatureAlgorithm{}
		}
	})
}

// Leeway sets how far the clocks of the issuer and of this host may disagree:
// a token is accepted until its exp plus d, and from its nbf (and its iat)
// less d. A negative d is 0, and d is clamped to 5 minutes. The default is 30
// seconds.
func Leeway(d time.Duration) Option {
	return verifierOptionFunc(func(c *verifierConfig) { c.leeway = min(max(d, 0), verifierMaxLeeway) })
}

// Type sets the media type a token's typ header must name, such as "at+jwt"
// for an OAuth access token (RFC 9068, section 4), which an ID token, typ
// "JWT" or none, does not. It is compared case-insensitively, with
// "application/" put before a typ without a slash on either side (RFC 7515,
// section 4.1.9), so that "at+jwt" and "application/at+jwt" match. The
// default is "", which checks no typ.
func Type(typ string) Option {
	return verifierOptionFunc(func(c *verifierConfig) { c.typ = verifierMediaType(typ) })
}

// MaxTokenSize sets the length in bytes beyond which a token is refused with
// [ErrMalformed] before anything else is done with it. A value of 0 or less
// is the default. The default is 8 KiB.
func MaxTokenSize(n int) Option {
	return verifierOptionFunc(func(c *verifierConfig) {
		if n <= 0 {
			n = verifierDefaultMaxSize
		}
		c.maxSize = n
	})
}

// Clock sets the function that tells the time against which exp, nbf and iat
// are checked; a test passes a fake one. It must be safe for concurrent use.
// A nil now is the default. The default is [time.Now].
func Clock(now func() time.Time) Option {
	return verifierOptionFunc(func(c *verifierConfig) { c.clock = now })
}

// CacheSize sets how many verified tokens the verifier remembers, so as to
// accept them again without checking their signatures (see [Verifier]). A
// token is dropped when it is found expired, when its key is found gone, or
// to make room: when the cache is full, a new token takes the place of the
// one, among a few sampled at random, that expires soonest. Each token takes
// a 32-byte hash of its text (a GMAC tag under a key the Verifier draws at
// random and never discloses; where GCM is refused, in FIPS 140-only mode,
// its SHA-256) and its claims (its decoded payload, and at most
// [MaxTokenSize] with them): the tokens themselves are not kept. A value of 0 or less turns the cache off. The default is 10,000.
func CacheSize(n int) Option {
	return verifierOptionFunc(func(c *verifierConfig) { c.cacheSize = max(n, 0) })
}

// New returns a verifier of the tokens the [Issuer] signs for the [Audience],
// with the keys of keys, configured by opts. It fails if keys is nil, if the
// issuer or the audience is missing, or if an option is invalid, such as a
// symmetric algorithm given to [Algorithms].
func New(keys KeySource, opts ...Option) (*Verifier, error) {
	cfg := verifierConfig{
		leeway:    verifierDefaultLeeway,
		maxSize:   verifierDefaultMaxSize,
		cacheSize: verifierDefaultCacheSize,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	errs := cfg.errs
	if keys == nil {
		errs = append(errs, errors.New("verify: New: nil KeySource"))
	}
	if cfg.issuer == "" {
		errs = append(errs, errors.New("verify: New: no Issuer"))
	}
	if len(cfg.audience) == 0 {
		errs = append(errs, errors.New("verify: New: no Audience"))
	}
	if cfg.algs == nil {
		cfg.algs = verifierDefaultAlgs
	}
	if len(cfg.algs) == 0 {
		errs = append(errs, errors.New("verify: New: no Algorithms"))
	}
	for _, a := range cfg.algs {
		if _, ok := verifierAlgs[a]; ok {
			continue
		}
		if a == jwa.NoSignature || a == jwa.HS256 || a == jwa.HS384 || a == jwa.HS512 {
			errs = append(errs, fmt.Errorf("verify: New: algorithm %q is not asymmetric; a token must not choose to go unsigned or be checked with a public key as an HMAC secret", a))
		} else {
			errs = append(errs, fmt.Errorf("verify: New: algorithm %q is not supported", a))
		}
	}
	if cfg.realmSet && !verifierValidRealm(cfg.realm) {
		errs = append(errs, errors.New("verify: New: Realm has a quote, a backslash or a character that is not printable ASCII"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	v := &Verifier{keys: keys, cfg: cfg}
	v.presence, _ = keys.(KeyPresence)
	v.challenge, v.challengeInvalid = verifierChallenges(cfg.realm, cfg.realmSet)
	if cfg.cacheSize > 0 {
		v.cache = newVerifierCache(cfg.cacheSize)
	}
	return v, nil
}

// Verify verifies token and returns its claims, as [Verifier] describes. The
// *Claims of a token accepted again from the verified-token cache is the one
// returned the first time; it is never modified. The errors wrap
// [ErrMalformed], [ErrAlgorithm], [ErrUnknownKey], [ErrSignature],
// [ErrIssuer], [ErrAudience], [ErrExpired] or [ErrNotYetValid]; none carries
// the token's text. ctx is passed to the [KeySource].
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) > v.cfg.maxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(token), v.cfg.maxSize)
	}
	now := v.now()
	if v.cache == nil {
		c, _, err := v.verify(ctx, token, now)
		return c, err
	}
	sum := v.cache.key(token)
	if e, ok := v.cache.get(&sum); ok {
		err := v.checkTimes(e.claims, now)
		switch {
		case errors.Is(err, ErrExpired):
			v.cache.remove(&sum)
			return nil, err
		case err != nil:
			return nil, err
		case v.presence == nil || v.presence.HasKey(e.kid):
			return e.claims, nil
		}
		// Its key has left the key source: verify it afresh, which the key
		// source refuses unless the key came back.
		v.cache.remove(&sum)
	}
	c, kid, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	return v.cache.add(&sum, verifierEntry{claims: c, kid: kid}, v.cfg.leeway, now), nil
}

// Len returns how many verified tokens the verifier remembers, including
// expired ones not yet dropped; at most [CacheSize].
func (v *Verifier) Len() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.len()
}

// verify is Verify without the cache: it returns the token's claims and the
// kid of the key that verified it.
func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (*Claims, string, error) {
	// The strict decoding of each part refuses any other character but the
	// line breaks that encoding/base64 skips, which would give one token
	// many spellings.
	if strings.IndexByte(token, '\n') >= 0 || strings.IndexByte(token, '\r') >= 0 {
		return nil, "", fmt.Errorf("%w: line break", ErrMalformed)
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") || h64 == "" {
		return nil, "", fmt.Errorf("%w: not a JWS in compact form (header.payload.signature)", ErrMalformed)
	}
	alg, spec, kid, err := v.header(h64)
	if err != nil {
		return nil, "", err
	}
	sig, err := verifierB64.DecodeString(s64)
	if err != nil || len(sig) == 0 {
		return nil, "", fmt.Errorf("%w: signature is empty or not base64url", ErrMalformed)
	}
	key, err := v.keys.Key(ctx, kid)
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %s: %w", ErrUnknownKey, verifierQuote(kid), err)
	}
	if key == nil {
		return nil, "", fmt.Errorf("%w: key %s: the key source returned none", ErrUnknownKey, verifierQuote(kid))
	}
	pub, err := verifierPublicKey(key, alg, spec)
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %s: %w", ErrUnknownKey, verifierQuote(kid), err)
	}
	if !spec.verify(pub, token[:len(h64)+1+len(p64)], sig) {
		return nil, "", fmt.Errorf("%w: %s with key %s", ErrSignature, alg, verifierQuote(kid))
	}
	// The payload is parsed only once the signature has vouched for it.
	payload, err := verifierB64.DecodeString(p64)
	if err != nil {
		return nil, "", fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	c, err := v.claims(payload, now)
	if err != nil {
		return nil, "", err
	}
	return c, kid, nil
}

// header parses and checks a token's protected header, returning its alg, the
// algorithm's spec and its kid.
func (v *Verifier) header(h64 string) (jwa.SignatureAlgorithm, verifierAlg, string, error) {
	b, err := verifierB64.DecodeString(h64)
	if err != nil {
		return "", verifierAlg{}, "", fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	h, err := verifierMembers(b)
	if err != nil {
		return "", verifierAlg{}, "", fmt.Errorf("%w: header %w", ErrMalformed, err)
	}
	algName, ok := verifierRawString(h["alg"])
	if !ok || algName == "" {
		return "", verifierAlg{}, "", fmt.Errorf("%w: header has no alg", ErrMalformed)
	}
	alg := jwa.SignatureAlgorithm(algName)
	spec, ok := verifierAlgs[alg]
	if !ok || !slices.Contains(v.cfg.algs, alg) {
		return "", verifierAlg{}, "", fmt.Errorf("%w: %s", ErrAlgorithm, verifierQuote(algName))
	}
	kid, ok := verifierRawString(h["kid"])
	if !ok || kid == "" {
		return "", verifierAlg{}, "", fmt.Errorf("%w: header has no kid", ErrMalformed)
	}
	// No extension is understood, so none marked critical may be accepted
	// (RFC 7515, section 4.1.11); b64 is one (RFC 7797).
	if _, ok := h["crit"]; ok {
		return "", verifierAlg{}, "", fmt.Errorf("%w: header has crit", ErrMalformed)
	}
	if b64, ok := h["b64"]; ok && string(b64) != "true" {
		return "", verifierAlg{}, "", fmt.Errorf("%w: header has b64 other than true", ErrMalformed)
	}
	if v.cfg.typ != "" {
		typ, _ := verifierRawString(h["typ"])
		if !strings.EqualFold(verifierMediaType(typ), v.cfg.typ) {
			return "", verifierAlg{}, "", fmt.Errorf("%w: typ %s, want %q", ErrMalformed, verifierQuote(typ), v.cfg.typ)
		}
	}
	return alg, spec, kid, nil
}

// claims parses and checks a verified token's claims.
func (v *Verifier) claims(payload []byte, now time.Time) (*Claims, error) {
	m, err := verifierMembers(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: claims %w", ErrMalformed, err)
	}
	c := &Claims{raw: m}
	var hasExp bool
	if c.issuer, err = verifierString(m, "iss"); err != nil {
		return nil, err
	}
	if c.subject, err = verifierString(m, "sub"); err != nil {
		return nil, err
	}
	if c.id, err = verifierString(m, "jti"); err != nil {
		return nil, err
	}
	if c.audience, err = verifierStrings(m, "aud", false); err != nil {
		return nil, err
	}
	if c.expiry, hasExp, err = verifierTime(m, "exp"); err != nil {
		return nil, err
	}
	if c.notBefore, _, err = verifierTime(m, "nbf"); err != nil {
		return nil, err
	}
	if c.issuedAt, _, err = verifierTime(m, "iat"); err != nil {
		return nil, err
	}
	scope, err := verifierStrings(m, "scope", true)
	if err != nil {
		return nil, err
	}
	scp, err := verifierStrings(m, "scp", true)
	if err != nil {
		return nil, err
	}
	for _, s := range append(scope, scp...) {
		if !slices.Contains(c.scope, s) {
			c.scope = append(c.scope, s)
		}
	}
	if !hasExp {
		return nil, fmt.Errorf("%w: no exp claim", ErrMalformed)
	}
	if c.issuer != v.cfg.issuer {
		return nil, fmt.Errorf("%w: iss %s, want %q", ErrIssuer, verifierQuote(c.issuer), v.cfg.issuer)
	}
	if len(c.audience) == 0 {
		return nil, fmt.Errorf("%w: no aud claim", ErrAudience)
	}
	if !slices.ContainsFunc(c.audience, func(a string) bool { return slices.Contains(v.cfg.audience, a) }) {
		return nil, fmt.Errorf("%w: aud names none of %q", ErrAudience, v.cfg.audience)
	}
	if err := v.checkTimes(c, now); err != nil {
		return nil, err
	}
	return c, nil
}

// checkTimes checks c's exp, nbf and iat against now with the leeway.
func (v *Verifier) checkTimes(c *Claims, now time.Time) error {
	d := v.cfg.leeway
	if !now.Before(c.expiry.Add(d)) {
		return fmt.Errorf("%w: exp %s, now %s, leeway %s", ErrExpired, verifierStamp(c.expiry), verifierStamp(now), d)
	}
	if !c.notBefore.IsZero() && now.Before(c.notBefore.Add(-d)) {
		return fmt.Errorf("%w: nbf %s, now %s, leeway %s", ErrNotYetValid, verifierStamp(c.notBefore), verifierStamp(now), d)
	}
	// A token issued in the future comes from a clock that runs ahead.
	if !c.issuedAt.IsZero() && now.Before(c.issuedAt.Add(-d)) {
		return fmt.Errorf("%w: iat %s, now %s, leeway %s", ErrNotYetValid, verifierStamp(c.issuedAt), verifierStamp(now), d)
	}
	return nil
}

// now reads the verifier's clock.
func (v *Verifier) now() time.Time {
	if v.cfg.clock != nil {
		return v.cfg.clock()
	}
	return time.Now()
}

// Claims are the claims of a verified token. A Claims is never modified after
// [Verifier.Verify] returns it, and is safe for concurrent use; its methods
// return copies of what they hold.
type Claims struct {
	// All written once by Verifier.claims and only read after.
	issuer, subject, id         string
	audience, scope             []string
	expiry, notBefore, issuedAt time.Time
	raw                         map[string]json.RawMessage
}

// Subject returns the sub claim, or "" if the token has none.
func (c *Claims) Subject() string { return c.subject }

// Issuer returns the iss claim, which is the verifier's [Issuer].
func (c *Claims) Issuer() string { return c.issuer }

// Audience returns the aud claim, as a list even if the token gave one
// string; it names at least one of the verifier's [Audience].
func (c *Claims) Audience() []string { return slices.Clone(c.audience) }

// Expiry returns the exp claim.
func (c *Claims) Expiry() time.Time { return c.expiry }

// IssuedAt returns the iat claim, or the zero time if the token has none.
func (c *Claims) IssuedAt() time.Time { return c.issuedAt }

// NotBefore returns the nbf claim, or the zero time if the token has none.
func (c *Claims) NotBefore() time.Time { return c.notBefore }

// ID returns the jti claim, or "" if the token has none.
func (c *Claims) ID() string { return c.id }

// Scope returns the scopes the token grants: those of its "scope" claim (a
// space-separated string, RFC 9068, section 2.2.3) followed by those of its
// "scp" claim (a string or a list of strings, as some providers issue), each
// once; nil if it has neither.
func (c *Claims) Scope() []string { return slices.Clone(c.scope) }

// HasScope reports whether [Claims.Scope] includes scope. It does not
// allocate.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.scope, scope) }

// Get returns the claim name as encoding/json decodes it into an any (a
// string, float64, bool, nil, []any or map[string]any), and whether the token
// has it. Every call decodes the claim afresh, so the caller may modify what
// it returns.
func (c *Claims) Get(name string) (any, bool) {
	raw, ok := c.raw[name]
	if !ok {
		return nil, false
	}
	var x any
	_ = json.Unmarshal(raw, &x) // raw is a part of a valid JSON object
	return x, true
}

// verifierAlg describes how to verify a signature algorithm.
type verifierAlg struct {
	kty   jwa.KeyType
	hash  crypto.Hash    // none for EdDSA
	curve elliptic.Curve // ECDSA
	pss   bool           // RSA: PSS rather than PKCS #1 v1.5
}

// verifierAlgs are the algorithms a Verifier can verify: RFC 7518, section 3,
// and RFC 8037, section 3.1, for Ed25519 only (the standard library has no
// Ed448).
var verifierAlgs = map[jwa.SignatureAlgorithm]verifierAlg{
	jwa.RS256: {kty: jwa.RSA, hash: crypto.SHA256},
	jwa.RS384: {kty: jwa.RSA, hash: crypto.SHA384},
	jwa.RS512: {kty: jwa.RSA, hash: crypto.SHA512},
	jwa.PS256: {kty: jwa.RSA, hash: crypto.SHA256, pss: true},
	jwa.PS384: {kty: jwa.RSA, hash: crypto.SHA384, pss: true},
	jwa.PS512: {kty: jwa.RSA, hash: crypto.SHA512, pss: true},
	jwa.ES256: {kty: jwa.EC, hash: crypto.SHA256, curve: elliptic.P256()},
	jwa.ES384: {kty: jwa.EC, hash: crypto.SHA384, curve: elliptic.P384()},
	jwa.ES512: {kty: jwa.EC, hash: crypto.SHA512, curve: elliptic.P521()},
	jwa.EdDSA: {kty: jwa.OKP},
}

// verifierMinRSABits is the smallest RSA key accepted (RFC 7518, section 3.3).
const verifierMinRSABits = 2048

// verifierPSS is how RFC 7518, section 3.5, salts PSS: as long as the hash.
var verifierPSS = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

// verify reports whether sig is a's signature of input by pub, which
// verifierPublicKey returned for a.
func (a verifierAlg) verify(pub any, input string, sig []byte) bool {
	var digest []byte
	switch a.hash {
	case crypto.SHA256:
		d := sha256.Sum256(verifierBytes(input))
		digest = d[:]
	case crypto.SHA384:
		d := sha512.Sum384(verifierBytes(input))
		digest = d[:]
	case crypto.SHA512:
		d := sha512.Sum512(verifierBytes(input))
		digest = d[:]
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if a.pss {
			return rsa.VerifyPSS(k, a.hash, digest, sig, verifierPSS) == nil
		}
		return rsa.VerifyPKCS1v15(k, a.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		// JWS signs with r and s side by side (RFC 7518, section 3.4);
		// crypto/ecdsa takes them in ASN.1.
		n := (a.curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return false
		}
		return ecdsa.VerifyASN1(k, digest, verifierASN1(sig[:n], sig[n:]))
	case ed25519.PublicKey:
		return ed25519.Verify(k, verifierBytes(input), sig)
	}
	return false
}

// verifierPublicKey returns the public key of key that verifies alg, or why
// key may not verify it: its type, curve or size does not suit alg (RFC 7518,
// section 3: ES256 is P-256 only, RSA at least 2048 bits), its own alg, if
// any, is not alg, its use, if any, is not signing, or its key_ops, if any,
// lack "verify".
func verifierPublicKey(key jwk.Key, alg jwa.SignatureAlgorithm, a verifierAlg) (any, error) {
	if key.KeyType() != a.kty {
		return nil, fmt.Errorf("type %s does not verify %s", key.KeyType(), alg)
	}
	if ka := key.Algorithm(); ka != nil && ka.String() != "" && ka.String() != alg.String() {
		return nil, fmt.Errorf("it is for %s, not %s", verifierQuote(ka.String()), alg)
	}
	if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return nil, fmt.Errorf("its use is %s, not signing", verifierQuote(use))
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
		if bits := k.N.BitLen(); bits < verifierMinRSABits {
			return nil, fmt.Errorf("%d-bit RSA key, less than %d", bits, verifierMinRSABits)
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

// verifierASN1 returns the DER encoding of the ECDSA signature (r, s), each
// big-endian and unsigned: SEQUENCE { INTEGER r, INTEGER s }.
func verifierASN1(r, s []byte) []byte {
	r, s = verifierTrim(r), verifierTrim(s)
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

// verifierTrim drops the leading zeros of x but the last.
func verifierTrim(x []byte) []byte {
	for len(x) > 1 && x[0] == 0 {
		x = x[1:]
	}
	return x
}

// verifierMembers returns the members of the JSON object b, their values
// slices of b, or why b is not one: invalid JSON, not an object, or a member
// name twice (RFC 7519, section 4, lets a parser refuse that; what encoding/json
// does, keeping the last, would let two parsers read two claim sets). Names
// match exactly, unlike encoding/json's struct fields. It is a fraction of
// the cost of decoding into a map with encoding/json, which a token's
// verification would otherwise spend a sixth of its time in.
func verifierMembers(b []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(b) {
		return nil, errors.New("are not valid JSON")
	}
	// From here on, b is valid JSON: no bound needs checking.
	i := verifierSkipSpace(b, 0)
	if b[i] != '{' {
		return nil, errors.New("are not a JSON object")
	}
	m := make(map[string]json.RawMessage, 8)
	if i = verifierSkipSpace(b, i+1); b[i] == '}' {
		return m, nil
	}
	for {
		end := verifierSkipString(b, i)
		name, _ := verifierRawString(b[i:end])
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("have %s twice", verifierQuote(name))
		}
		i = verifierSkipSpace(b, verifierSkipSpace(b, end)+1) // past the colon
		end = verifierSkipValue(b, i)
		m[name] = b[i:end:end]
		if i = verifierSkipSpace(b, end); b[i] == '}' {
			return m, nil
		}
		i = verifierSkipSpace(b, i+1) // past the comma
	}
}

// verifierSkipSpace returns the index of the first byte of b from i on that
// is not JSON white space.
func verifierSkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// verifierSkipString returns the index just past the valid JSON string that
// starts at b[i].
func verifierSkipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// verifierSkipValue returns the index just past the valid JSON value that
// starts at b[i].
func verifierSkipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return verifierSkipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = verifierSkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\n\r", rune(b[i])) {
		i++
	}
	return i
}

// verifierRawString returns the JSON string raw, a value of a valid JSON
// object, and whether it is one.
func verifierRawString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true // no escapes to undo
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// verifierString returns the string claim name, "" if absent.
func verifierString(m map[string]json.RawMessage, name string) (string, error) {
	raw, ok := m[name]
	if !ok {
		return "", nil
	}
	s, ok := verifierRawString(raw)
	if !ok {
		return "", fmt.Errorf("%w: %s claim is not a string", ErrMalformed, name)
	}
	return s, nil
}

// verifierStrings returns claim name, a string or a list of strings, nil if
// absent; a string is split at spaces if split, else a list of one.
func verifierStrings(m map[string]json.RawMessage, name string, split bool) ([]string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	if s, ok := verifierRawString(raw); ok {
		if split {
			return strings.Fields(s), nil
		}
		return []string{s}, nil
	}
	var list []any
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, fmt.Errorf("%w: %s claim is neither a string nor a list", ErrMalformed, name)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s claim has an element that is not a string", ErrMalformed, name)
		}
		out = append(out, s)
	}
	return out, nil
}

// verifierMaxDate is the last NumericDate accepted: 9999-12-31T23:59:59Z.
const verifierMaxDate = 253402300799

// verifierTime returns the NumericDate claim name (seconds since the epoch,
// RFC 7519, section 2), and whether the token has it.
func verifierTime(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	// A value of a valid JSON object that parses as a float is a number.
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || !(f >= 0 && f <= verifierMaxDate) {
		return time.Time{}, false, fmt.Errorf("%w: %s claim is not a date", ErrMalformed, name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}

// verifierMediaType returns typ with "application/" put before it if it has
// no slash (RFC 7515, section 4.1.9), or "" for "".
func verifierMediaType(typ string) string {
	if typ == "" || strings.Contains(typ, "/") {
		return typ
	}
	return "application/" + typ
}

// verifierQuote quotes s, a value from a token's header or claims, cut short,
// for an error message.
func verifierQuote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// verifierStamp formats t for an error message.
func verifierStamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// verifierBytes returns the bytes of s without copying them. They must never
// be written: they are only hashed and verified.
func verifierBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// verifierB64 decodes the parts of a token, refusing padding and, strictly,
// trailing bits, so that one token has one spelling.
var verifierB64 = base64.RawURLEncoding.Strict()

// verifierCache is the verified-token cache: the tokens verified, by a keyed
// hash of their text (see key), which keeps the tokens themselves out of
// memory, in shards of their own lock, so that concurrent hits do not contend
// on one.
type verifierCache struct {
	// shards and mac are written once by newVerifierCache and only read
	// after. mac is nil where GCM is refused (FIPS 140-only mode): keys are
	// then SHA-256 sums.
	shards []verifierShard
	mac    cipher.AEAD
	// tags holds the buffers mac.Seal writes a tag to, which would escape
	// to the heap on every call: the method is called through an interface.
	tags sync.Pool
}

// verifierNonce is the nonce of every tag of a verifierCache's mac: see key.
var verifierNonce [12]byte

// verifierShard is a part of a verifierCache.
type verifierShard struct {
	mu sync.RWMutex
	// guards m
	m   map[[sha256.Size]byte]verifierEntry
	max int // written once by newVerifierCache
	_   [64]byte
}

// verifierEntry is a verified token. It is never modified once in the cache.
type verifierEntry struct {
	claims *Claims
	kid    string // of the key that verified it
}

// verifierShards is the number of shards of a cache of verifierShardMin
// tokens or more; a smaller cache has one.
const (
	verifierShards   = 16
	verifierShardMin = 16 * verifierShards
)

// verifierSample is how many tokens eviction compares.
const verifierSample = 8

// newVerifierCache returns a cache of at most size tokens.
func newVerifierCache(size int) *verifierCache {
	n := 1
	if size >= verifierShardMin {
		n = verifierShards
	}
	c := &verifierCache{shards: make([]verifierShard, n)}
	c.tags.New = func() any { return new([16]byte) }
	var k [32]byte
	_, _ = rand.Read(k[:]) // never fails, says crypto/rand
	if b, err := aes.NewCipher(k[:]); err == nil {
		c.mac, _ = cipher.NewGCM(b) // nil in FIPS 140-only mode
	}
	for i := range c.shards {
		c.shards[i].max = size / n
		if i < size%n {
			c.shards[i].max++
		}
		c.shards[i].m = make(map[[sha256.Size]byte]verifierEntry)
	}
	return c
}

// key returns the key of token in c: its GMAC tag under c's secret key (the
// GCM tag of an empty plaintext with token as additional data), or without
// one, its SHA-256.
//
// The key must be collision-resistant: a token with the key of one verified
// is accepted without its signature being checked. SHA-256 is, but at 30 ns
// a block it was most of a hit, and twice the cost of an RS256 token's
// (11 blocks) as a short ES256 one's. GHASH, under a key unknown to the
// sender, is almost XOR-universal: two different tokens of at most L blocks
// share a tag with a probability of at most (L+1)/2^128 (McGrew and Viega,
// "The Security and Performance of the Galois/Counter Mode", section 3,
// https://eprint.iacr.org/2004/193), whatever their choice, provided they
// cannot see tags. Tags never leave the process (no error, log or metric
// carries one; a miss tells nothing of them), so one fixed nonce serves
// every tag: what GCM's unique nonces protect is tags that an adversary
// sees. A reader of the process's memory could make tokens with the tags of
// those cached, as it could take the tokens the caches of the root package
// hold; with SHA-256 keys, it could not.
func (c *verifierCache) key(token string) (k [sha256.Size]byte) {
	if c.mac == nil {
		return sha256.Sum256(verifierBytes(token))
	}
	buf := c.tags.Get().(*[16]byte)
	copy(k[:], c.mac.Seal(buf[:0], verifierNonce[:], nil, verifierBytes(token)))
	c.tags.Put(buf)
	return k
}

// shard returns the shard of the token whose key is sum.
func (c *verifierCache) shard(sum *[sha256.Size]byte) *verifierShard {
	return &c.shards[int(sum[0])%len(c.shards)]
}

// get returns the token whose key is sum.
func (c *verifierCache) get(sum *[sha256.Size]byte) (verifierEntry, bool) {
	s := c.shard(sum)
	s.mu.RLock()
	e, ok := s.m[*sum]
	s.mu.RUnlock()
	return e, ok
}

// remove drops the token whose key is sum.
func (c *verifierCache) remove(sum *[sha256.Size]byte) {
	s := c.shard(sum)
	s.mu.Lock()
	delete(s.m, *sum)
	s.mu.Unlock()
}

// add adds e, the token whose key is sum, and returns its claims; if a
// concurrent call added the token first, it keeps that entry and returns its
// claims, so that every caller after the first gets the same. In a full
// shard, it first drops the tokens, of verifierSample taken at random, that
// are expired at now with leeway d, or else the one that expires soonest.
func (c *verifierCache) add(sum *[sha256.Size]byte, e verifierEntry, d time.Duration, now time.Time) *Claims {
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if x, ok := s.m[*sum]; ok {
		return x.claims
	}
	if len(s.m) >= s.max {
		var soonest [sha256.Size]byte
		var soonestAt time.Time
		dropped, n := false, 0
		// Map iteration starts at random.
		for k, x := range s.m {
			at := x.claims.expiry.Add(d)
			if !now.Before(at) {
				delete(s.m, k)
				dropped = true
			} else if n == 0 || at.Before(soonestAt) {
				soonest, soonestAt = k, at
			}
			if n++; n == verifierSample {
				break
			}
		}
		if !dropped {
			delete(s.m, soonest)
		}
	}
	s.m[*sum] = e
	return e.claims
}

// len returns the number of tokens in c.
func (c *verifierCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
