package verify

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
)

// metadataTTL is how long a key set of NewFromIssuer keeps its issuer's
// metadata before it discovers it again (in the background).
const metadataTTL = 24 * time.Hour

// NewFromIssuer returns a [Verifier] of the tokens that issuer (an OpenID
// provider's issuer identifier, https://idp.example/realms/acme, say) issues
// for audience: the one call from an issuer's URL to a Verifier, with its key
// set. opts are the Verifier's options ([Algorithms], [Type], [Leeway], ...)
// and the key set's ([MinTTL], [HTTPClient], [Snapshots], ...); [Issuer] and
// [Audience] are set already (more audiences may be added).
//
// It makes no request: the key set discovers the issuer's jwks_uri from its
// metadata (OpenID Connect Discovery, or RFC 8414) when the first token comes,
// on the refresh engine that every fetch of this module runs on, and keeps it
// for a day, refreshing it in the background. So a service starts while its
// provider is down, and until the keys can be had, [Verifier.Verify] fails
// with an error wrapping [ErrKeySetStale], which the [Middleware] answers
// with 503 and Retry-After (a client keeps its token and tries again), never
// 401. It fails at once for an issuer or an option it refuses: an issuer that
// is not https (or http to a loopback host), or not among the [AllowedHosts].
func NewFromIssuer(issuer, audience string, opts ...Option) (*Verifier, error) {
	var cfg config
	for _, o := range opts {
		o.apply(&cfg)
	}
	keys, err := newIssuerKeySet(issuer, cfg.keySet)
	if err != nil {
		return nil, err
	}
	var own []Option
	for _, o := range opts {
		if _, ok := o.(keySetOptionFunc); !ok {
			own = append(own, o)
		}
	}
	return New(keys, append([]Option{Issuer(issuer), Audience(audience)}, own...)...)
}

// newIssuerKeySet returns the key set of issuer, whose URL is discovered when
// first needed.
func newIssuerKeySet(issuer string, opts []KeySetOption) (*KeySet, error) {
	s := &KeySet{cfg: newKeySetConfig(opts)}
	if s.cfg.err != nil {
		return nil, s.cfg.err
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("verify: issuer: %w", err)
	}
	if err := s.cfg.checkURL(u); err != nil {
		return nil, err
	}
	if s.client, err = s.cfg.httpClient(); err != nil {
		return nil, err
	}
	s.issuer, err = discovery.NewSource(issuer, s.client, func(_ *discovery.Endpoints, e discovery.Endpoints) error {
		if err := e.Check(issuer, false); err != nil {
			return err
		}
		if e.JWKSURI == "" {
			return errNoJWKSURI
		}
		ju, err := url.Parse(e.JWKSURI)
		if err != nil {
			return fmt.Errorf("verify: jwks_uri: %w", err)
		}
		if err := s.cfg.checkURL(ju); err != nil {
			return err
		}
		if len(s.cfg.pins) > 0 && ju.Scheme != "https" {
			return fmt.Errorf("verify: key set %s: PinSPKI needs an https URL", ju.Redacted())
		}
		return nil
	}, metadataTTL, s.cfg.fetchTimeout, s.cfg.clock)
	if err != nil {
		return nil, fmt.Errorf("verify: issuer: %w", err)
	}
	s.url = issuer
	s.clock = engine.NewClock(s.cfg.clock, time.Time{})
	s.snap.Store(&keySetSnapshot{freshFor: ksNever})
	return s, nil
}

// target returns the URL to fetch the set from: the one given, or the
// issuer's jwks_uri, discovered on ctx (the fetch's) if the set has none.
func (s *KeySet) target(ctx context.Context) (string, error) {
	if s.issuer == nil {
		return s.url, nil
	}
	e, err := s.issuer.Get(ctx)
	if err != nil {
		return "", fmt.Errorf("verify: key set of %s: %w", s.url, err)
	}
	return e.JWKSURI, nil
}
