package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
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
// [CacheSize]) and the time checks, without its signature being checked
// again, and the same *[Claims] is returned for it. A hit takes no lock and
// writes no shared memory, so that hits scale with cores. If the key source
// implements [KeyPresence], a hit also checks that the token's key is still
// in it, and a token whose key left is verified afresh (and is then refused,
// unless its key came back); a key source without it cannot withdraw a token
// already verified before it expires.
//
// A Verifier is safe for concurrent use; it starts no goroutine and needs no
// Close. The zero Verifier is not usable; use [New].
type Verifier struct {
	// keys, presence and cfg are written once by New and only read after.
	keys     KeySource
	presence KeyPresence // keys, if it implements KeyPresence; or nil
	cfg      config
	// challenge and challengeInvalid are the WWW-Authenticate values of the
	// middleware's refusals without a token and with a bad one.
	challenge        string
	challengeInvalid string

	cache *tokenCache // nil when CacheSize is 0

	// refused and stale rate-limit the middleware's warnings of refused
	// tokens and of 503s.
	refused, stale engine.Every
}

// New returns a verifier of the tokens the [Issuer] signs for the [Audience],
// with the keys of keys, configured by opts. It fails if keys is nil, if the
// issuer or the audience is missing, or if an option is invalid, such as a
// symmetric algorithm given to [Algorithms].
func New(keys KeySource, opts ...Option) (*Verifier, error) {
	cfg := config{
		leeway:    defaultLeeway,
		maxSize:   defaultMaxSize,
		cacheSize: defaultCacheSize,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	errs := cfg.errs
	if keys == nil {
		errs = append(errs, errors.New("verify: New: nil KeySource"))
	}
	if cfg.keySetOnly {
		errs = append(errs, errors.New("verify: New: a KeySetOption configures a key set: give it to NewKeySet, or use NewFromIssuer"))
	}
	if cfg.issuer == "" {
		errs = append(errs, errors.New("verify: New: no Issuer"))
	}
	if len(cfg.audience) == 0 {
		errs = append(errs, errors.New("verify: New: no Audience"))
	}
	if cfg.algs == nil {
		cfg.algs = defaultAlgs
	}
	if len(cfg.algs) == 0 {
		errs = append(errs, errors.New("verify: New: no Algorithms"))
	}
	for _, a := range cfg.algs {
		if _, ok := jose.Lookup(a); ok {
			continue
		}
		if a == jwa.NoSignature || a == jwa.HS256 || a == jwa.HS384 || a == jwa.HS512 {
			errs = append(errs, fmt.Errorf("verify: New: algorithm %q is not asymmetric; a token must not choose to go unsigned or be checked with a public key as an HMAC secret", a))
		} else {
			errs = append(errs, fmt.Errorf("verify: New: algorithm %q is not supported", a))
		}
	}
	if cfg.realmSet && !validRealm(cfg.realm) {
		errs = append(errs, errors.New("verify: New: Realm has a quote, a backslash or a character that is not printable ASCII"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	switch {
	case !cfg.loggerSet:
		cfg.logger = slog.Default()
	case cfg.logger == nil:
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{keys: keys, cfg: cfg}
	v.presence, _ = keys.(KeyPresence)
	v.challenge, v.challengeInvalid = challenges(cfg.realm, cfg.realmSet)
	if cfg.cacheSize > 0 {
		v.cache = newTokenCache(cfg.cacheSize)
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
			v.cache.remove(&sum, e)
			return nil, err
		case err != nil:
			return nil, err
		case v.presence == nil || v.presence.HasKey(e.kid):
			return e.claims, nil
		}
		// Its key has left the key source: verify it afresh, which the key
		// source refuses unless the key came back.
		v.cache.remove(&sum, e)
	}
	c, kid, err := v.verify(ctx, token, now)
	if err != nil {
		return nil, err
	}
	return v.cache.add(&sum, &cacheEntry{claims: c, kid: kid}, v.cfg.leeway, now), nil
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
	spec, kid, err := v.header(h64)
	if err != nil {
		return nil, "", err
	}
	sig, err := jose.Decode(s64)
	if err != nil || len(sig) == 0 {
		return nil, "", fmt.Errorf("%w: signature is empty or not base64url", ErrMalformed)
	}
	key, err := v.keys.Key(ctx, kid)
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %s: %w", ErrUnknownKey, jose.Quote(kid), err)
	}
	if key == nil {
		return nil, "", fmt.Errorf("%w: key %s: the key source returned none", ErrUnknownKey, jose.Quote(kid))
	}
	pub, err := spec.PublicKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %s: %w", ErrUnknownKey, jose.Quote(kid), err)
	}
	if !spec.Verify(pub, token[:len(h64)+1+len(p64)], sig) {
		return nil, "", fmt.Errorf("%w: %s with key %s", ErrSignature, spec.Name(), jose.Quote(kid))
	}
	// The payload is parsed only once the signature has vouched for it.
	payload, err := jose.Decode(p64)
	if err != nil {
		return nil, "", fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	c, err := v.claims(payload, now)
	if err != nil {
		return nil, "", err
	}
	return c, kid, nil
}

// header parses and checks a token's protected header, returning how to
// verify its alg, and its kid.
func (v *Verifier) header(h64 string) (jose.Alg, string, error) {
	b, err := jose.Decode(h64)
	if err != nil {
		return jose.Alg{}, "", fmt.Errorf("%w: header is not base64url", ErrMalformed)
	}
	h, err := jose.Members(b)
	if err != nil {
		return jose.Alg{}, "", fmt.Errorf("%w: the header %w", ErrMalformed, err)
	}
	algName, ok := jose.RawString(h["alg"])
	if !ok || algName == "" {
		return jose.Alg{}, "", fmt.Errorf("%w: header has no alg", ErrMalformed)
	}
	alg := jwa.SignatureAlgorithm(algName)
	spec, ok := jose.Lookup(alg)
	if !ok || !slices.Contains(v.cfg.algs, alg) {
		return jose.Alg{}, "", fmt.Errorf("%w: %s", ErrAlgorithm, jose.Quote(algName))
	}
	kid, ok := jose.RawString(h["kid"])
	if !ok || kid == "" {
		return jose.Alg{}, "", fmt.Errorf("%w: header has no kid", ErrMalformed)
	}
	// No extension is understood, so none marked critical may be accepted
	// (RFC 7515, section 4.1.11); b64 is one (RFC 7797).
	if _, ok := h["crit"]; ok {
		return jose.Alg{}, "", fmt.Errorf("%w: header has crit", ErrMalformed)
	}
	if b64, ok := h["b64"]; ok && string(b64) != "true" {
		return jose.Alg{}, "", fmt.Errorf("%w: header has b64 other than true", ErrMalformed)
	}
	if v.cfg.typ != "" {
		typ, _ := jose.RawString(h["typ"])
		if !strings.EqualFold(jose.MediaType(typ), v.cfg.typ) {
			return jose.Alg{}, "", fmt.Errorf("%w: typ %s, want %q (see verify.Type)", ErrType, jose.Quote(typ), v.cfg.typ)
		}
	}
	return spec, kid, nil
}

// claims parses a verified token's claims, and checks them against the
// verifier's issuer, audience and times at now.
func (v *Verifier) claims(payload []byte, now time.Time) (*Claims, error) {
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	if c.issuer != v.cfg.issuer {
		if c.issuer == "" {
			return nil, fmt.Errorf("%w: the token has no iss claim; want %q", ErrIssuer, v.cfg.issuer)
		}
		return nil, fmt.Errorf("%w: iss %s, want %q", ErrIssuer, jose.Quote(c.issuer), v.cfg.issuer)
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
		return fmt.Errorf("%w: exp %s, now %s, leeway %s", ErrExpired, stamp(c.expiry), stamp(now), d)
	}
	if !c.notBefore.IsZero() && now.Before(c.notBefore.Add(-d)) {
		return fmt.Errorf("%w: nbf %s, now %s, leeway %s", ErrNotYetValid, stamp(c.notBefore), stamp(now), d)
	}
	// A token issued in the future comes from a clock that runs ahead.
	if !c.issuedAt.IsZero() && now.Before(c.issuedAt.Add(-d)) {
		return fmt.Errorf("%w: iat %s, now %s, leeway %s", ErrNotYetValid, stamp(c.issuedAt), stamp(now), d)
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

// stamp formats t for an error message.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
