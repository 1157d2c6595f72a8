package verify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// parseKeyTimeout bounds finding a token's key, key set fetch included: jwx
// parses a token on no context of its own.
const parseKeyTimeout = 15 * time.Second

// ParseOption returns a parse option, for [jwtcache.ParseOptions], that
// verifies each token a cache fetches against keys (a [KeySet] on the
// provider's jwks_uri, say), by the key rules of [Verifier]: only the listed
// algorithms, all asymmetric ("none" and HMAC are refused here, so a token
// cannot choose to go unsigned, nor be checked with a public key used as an
// HMAC secret); the token's kid required; the key's type, curve and size must
// suit the token's algorithm, and its own alg, use and key_ops, if any, agree.
// A kid the set lacks refreshes it once, as [KeySet.Key] does. Finding a
// token's key is bounded by 10 seconds.
//
// It checks signatures only: the claims a cache needs (exp, iat) are its own
// business, and issuer or audience checks are jwx's validators, given to
// ParseOptions beside it (jwt.WithIssuer, jwt.WithAudience).
func ParseOption(keys KeySource, algs ...jwa.SignatureAlgorithm) (jwt.ParseOption, error) {
	if keys == nil {
		return nil, errors.New("verify: ParseOption: no key source")
	}
	if len(algs) == 0 {
		return nil, fmt.Errorf("%w: ParseOption: no algorithms allowed", ErrAlgorithm)
	}
	allowed := map[jwa.SignatureAlgorithm]jose.Alg{}
	for _, a := range algs {
		spec, ok := jose.Lookup(a)
		if !ok {
			return nil, fmt.Errorf("%w: ParseOption: %q cannot be verified with a public key", ErrAlgorithm, a.String())
		}
		allowed[a] = spec
	}
	return jwt.WithKeyProvider(&parseKeys{keys: keys, allowed: allowed}), nil
}

// parseKeys finds the key of a token for jwx.
type parseKeys struct {
	keys    KeySource
	allowed map[jwa.SignatureAlgorithm]jose.Alg // read-only
}

// FetchKeys implements [jws.KeyProvider].
func (p *parseKeys) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	alg := h.Algorithm()
	spec, ok := p.allowed[alg]
	if !ok {
		return fmt.Errorf("%w: %q is not allowed", ErrAlgorithm, alg.String())
	}
	kid := h.KeyID()
	if kid == "" {
		return fmt.Errorf("%w: the token has no kid", ErrMalformed)
	}
	ctx, cancel := context.WithTimeout(ctx, parseKeyTimeout)
	defer cancel()
	var key jwk.Key
	var err error
	if s, ok := p.keys.(*KeySet); ok {
		key, err = s.keyPatient(ctx, kid)
	} else {
		key, err = p.keys.Key(ctx, kid)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnknownKey, err)
	}
	pub, err := spec.PublicKey(key)
	if err != nil {
		return fmt.Errorf("%w: key %s: %v", ErrUnknownKey, jose.Quote(kid), err)
	}
	sink.Key(alg, pub)
	return nil
}
