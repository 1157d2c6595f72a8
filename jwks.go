package jwtcache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// jwksRefreshEvery bounds how often a token with an unknown kid may make the
// key set be fetched again.
const jwksRefreshEvery = 10 * time.Second

// jwksTimeout bounds finding a token's key, key set fetch included: parsing
// runs on no context of its own, and a stalled key set server must not stall
// every fetch with it.
const jwksTimeout = 10 * time.Second

// JWKS returns a parse option, for [ParseOptions], that verifies each fetched
// token against the identity provider's key set at jwksURL (its "jwks_uri").
//
// Only the listed algorithms are accepted, and only asymmetric ones may be
// listed: "none" and the HMAC algorithms are refused, so a token cannot
// choose to go unsigned, nor be checked with a public key used as an HMAC
// secret. A token's key is found by its kid; the key's type must suit the
// token's algorithm, and the key's own alg, if it names one, must be the
// token's. A kid the cached set lacks (the provider rotated its keys) makes
// the set be fetched again at once, at most every 10 seconds.
//
// The key set is kept by a [jwk.Cache], which refreshes it in the background
// until ctx ends; after that, every token fails verification. The set is first
// fetched when the first token is verified; finding a token's key, fetch
// included, is bounded by 10 seconds. A nil client is an [http.Client] with a
// 10-second timeout.
func JWKS(ctx context.Context, jwksURL string, client *http.Client, algs ...jwa.SignatureAlgorithm) (jwt.ParseOption, error) {
	if u, err := url.Parse(jwksURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwtcache: JWKS: %q is not an http(s) URL", jwksURL)
	}
	if len(algs) == 0 {
		return nil, errors.New("jwtcache: JWKS: no algorithms allowed")
	}
	allowed := map[jwa.SignatureAlgorithm]bool{}
	for _, a := range algs {
		if keyTypeFor(a) == "" {
			return nil, fmt.Errorf("jwtcache: JWKS: algorithm %q cannot be verified with a public key", a)
		}
		allowed[a] = true
	}
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	cache := jwk.NewCache(ctx)
	if err := cache.Register(jwksURL, jwk.WithHTTPClient(client), jwk.WithMinRefreshInterval(time.Minute)); err != nil {
		return nil, fmt.Errorf("jwtcache: JWKS: %w", err)
	}
	p := &jwksProvider{ctx: ctx, cache: cache, url: jwksURL, allowed: allowed}
	return jwt.WithKeyProvider(p), nil
}

// jwksProvider finds the key for a token in a cached key set.
type jwksProvider struct {
	ctx     context.Context // ends the jwk.Cache's refreshing
	cache   *jwk.Cache
	url     string
	allowed map[jwa.SignatureAlgorithm]bool // read-only

	mu sync.Mutex
	// guards lastRefresh
	lastRefresh time.Time
}

// FetchKeys implements [jws.KeyProvider].
func (p *jwksProvider) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	if err := p.ctx.Err(); err != nil {
		return fmt.Errorf("jwtcache: JWKS: the key set's context ended: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	h := sig.ProtectedHeaders()
	alg := h.Algorithm()
	if !p.allowed[alg] {
		return fmt.Errorf("jwtcache: JWKS: algorithm %q is not allowed", alg)
	}
	kid := h.KeyID()
	if kid == "" {
		return errors.New("jwtcache: JWKS: token has no kid")
	}
	key, err := p.lookup(ctx, kid)
	if err != nil {
		return err
	}
	if err := keyFits(key, alg); err != nil {
		return fmt.Errorf("jwtcache: JWKS: key %q: %w", kid, err)
	}
	sink.Key(alg, key)
	return nil
}

// lookup returns the key with kid, fetching the set again if it lacks the
// kid and it was not fetched again recently.
func (p *jwksProvider) lookup(ctx context.Context, kid string) (jwk.Key, error) {
	set, err := p.cache.Get(ctx, p.url)
	if err != nil {
		return nil, fmt.Errorf("jwtcache: JWKS: %w", err)
	}
	if key, ok := set.LookupKeyID(kid); ok {
		return key, nil
	}
	p.mu.Lock()
	due := time.Since(p.lastRefresh) >= jwksRefreshEvery
	if due {
		p.lastRefresh = time.Now()
	}
	p.mu.Unlock()
	if due {
		if set, err = p.cache.Refresh(ctx, p.url); err != nil {
			return nil, fmt.Errorf("jwtcache: JWKS: %w", err)
		}
		if key, ok := set.LookupKeyID(kid); ok {
			return key, nil
		}
	}
	return nil, fmt.Errorf("jwtcache: JWKS: no key %q in the key set", kid)
}

// keyFits checks that key may verify alg: its type and curve suit alg (RFC
// 7518, section 3.4: ES256 is P-256 only, and so on), its own alg, if any, is
// alg, and its use, if any, is signing.
func keyFits(key jwk.Key, alg jwa.SignatureAlgorithm) error {
	if string(key.KeyType()) != keyTypeFor(alg) {
		return fmt.Errorf("type %s does not verify %s", key.KeyType(), alg)
	}
	if ka := key.Algorithm(); ka != nil && ka.String() != "" && ka.String() != alg.String() {
		return fmt.Errorf("it is for %s, not %s", ka, alg)
	}
	if use := key.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return fmt.Errorf("its use is %q, not signing", use)
	}
	want := map[jwa.SignatureAlgorithm][]jwa.EllipticCurveAlgorithm{
		jwa.ES256: {jwa.P256}, jwa.ES384: {jwa.P384}, jwa.ES512: {jwa.P521},
		jwa.ES256K: {"secp256k1"}, jwa.EdDSA: {jwa.Ed25519, jwa.Ed448},
	}[alg]
	if want == nil {
		return nil
	}
	var crv jwa.EllipticCurveAlgorithm
	switch k := key.(type) {
	case jwk.ECDSAPublicKey:
		crv = k.Crv()
	case jwk.OKPPublicKey:
		crv = k.Crv()
	}
	if !slices.Contains(want, crv) {
		return fmt.Errorf("curve %q does not verify %s", crv, alg)
	}
	return nil
}

// keyTypeFor returns the JWK key type that verifies alg, or "" if no public
// key does.
func keyTypeFor(alg jwa.SignatureAlgorithm) string {
	switch alg {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
		return string(jwa.RSA)
	case jwa.ES256, jwa.ES384, jwa.ES512, jwa.ES256K:
		return string(jwa.EC)
	case jwa.EdDSA:
		return string(jwa.OKP)
	}
	return ""
}
