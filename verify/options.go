package verify

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// Option configures a [Verifier]. Options are applied in order; a later
// option overrides an earlier one of the same kind, but for [Audience],
// whose values add up.
type Option interface {
	apply(*config)
}

// optionFunc adapts a function to [Option].
type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults and bounds, documented on the options that set them.
const (
	defaultLeeway    = 30 * time.Second
	maxLeeway        = 5 * time.Minute
	defaultMaxSize   = 8 << 10
	defaultCacheSize = 10_000
)

// defaultAlgs are the algorithms allowed without [Algorithms]: the one every
// OpenID provider supports, and the common elliptic-curve one.
var defaultAlgs = []jwa.SignatureAlgorithm{jwa.RS256, jwa.ES256}

// config is a Verifier's configuration, as the options set it.
type config struct {
	issuer    string
	audience  []string
	algs      []jwa.SignatureAlgorithm // nil: the default
	leeway    time.Duration
	typ       string // normalized by jose.MediaType; "" for no check
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
	return optionFunc(func(c *config) { c.issuer = iss })
}

// Audience adds audiences a token may be for: its aud claim must name at least
// one of them exactly. At least one is required; an empty one is an error.
func Audience(aud ...string) Option {
	return optionFunc(func(c *config) {
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
	return optionFunc(func(c *config) {
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
	return optionFunc(func(c *config) { c.leeway = min(max(d, 0), maxLeeway) })
}

// Type sets the media type a token's typ header must name, such as "at+jwt"
// for an OAuth access token (RFC 9068, section 4), which an ID token, typ
// "JWT" or none, does not. It is compared case-insensitively, with
// "application/" put before a typ without a slash on either side (RFC 7515,
// section 4.1.9), so that "at+jwt" and "application/at+jwt" match. The
// default is "", which checks no typ.
func Type(typ string) Option {
	return optionFunc(func(c *config) { c.typ = jose.MediaType(typ) })
}

// MaxTokenSize sets the length in bytes beyond which a token is refused with
// [ErrMalformed] before anything else is done with it. A value of 0 or less
// is the default. The default is 8 KiB.
func MaxTokenSize(n int) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			n = defaultMaxSize
		}
		c.maxSize = n
	})
}

// Clock sets the function that tells the time against which exp, nbf and iat
// are checked; a test passes a fake one. It must be safe for concurrent use.
// A nil now is the default. The default is [time.Now].
func Clock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.clock = now })
}

// CacheSize sets how many verified tokens the verifier remembers, so as to
// accept them again without checking their signatures (see [Verifier]). A
// token is dropped when it is found expired, when its key is found gone, or
// to make room: when the cache is full, a new token takes the place of the
// one, among a few sampled at random, that expires soonest. Each token takes
// a 32-byte hash of its text (a GMAC tag under a key the Verifier draws at
// random and never discloses; where GCM is refused, in FIPS 140-only mode,
// its SHA-256) and its claims (its decoded payload, and at most
// [MaxTokenSize] with them): the tokens themselves are not kept. A value of 0
// or less turns the cache off. The default is 10,000.
func CacheSize(n int) Option {
	return optionFunc(func(c *config) { c.cacheSize = max(n, 0) })
}

// Logger sets where [Verifier.Middleware] logs why it refused a request: at
// [slog.LevelDebug] a request without a token, at [slog.LevelInfo] any other,
// with the error, which never carries the token. A nil l is the default. The
// default is nil, which logs nothing.
func Logger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}
