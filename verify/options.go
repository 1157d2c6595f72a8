package verify

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
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
	loggerSet bool // Logger was given; a nil logger then discards
	realm     string
	realmSet  bool
	errs      []error // what the options found wrong, reported by New
	// keySet are the KeySetOptions given, for NewFromIssuer's key set;
	// keySetOnly says one of them configures a key set only (not a
	// SharedOption), which New refuses.
	keySet     []KeySetOption
	keySetOnly bool
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
// less d. [jwtcache.Off] allows none; another negative d, or one over 5
// minutes, is an error wrapping [jwtcache.ErrInvalid]. The default (0) is 30
// seconds.
func Leeway(d time.Duration) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[time.Duration]{Pkg: "verify", Name: "Leeway", Off: true, Max: maxLeeway, Want: "from 0 (the default, 30s) to 5m, or Off for none"}.Apply(d, &c.leeway, c.record)
	})
}

// record keeps err, an invalid option's, for New to report.
func (c *config) record(err error) { c.errs = append(c.errs, err) }

// Type sets the media type a token's typ header must name, such as "at+jwt"
// for an OAuth access token (RFC 9068, section 4), which an ID token, typ
// "JWT" or none, does not. It is compared case-insensitively, with
// "application/" put before a typ without a slash on either side (RFC 7515,
// section 4.1.9), so that "at+jwt" and "application/at+jwt" match; a
// token of another typ is refused with [ErrType]. Not every provider types
// its access tokens: Ory Hydra's carry typ "JWT" (and an empty aud unless an
// audience is requested), Keycloak's "JWT" too; check what yours issues
// before you set it. The default is "", which checks no typ.
func Type(typ string) Option {
	return optionFunc(func(c *config) { c.typ = jose.MediaType(typ) })
}

// MaxTokenSize sets the length in bytes beyond which a token is refused with
// [ErrMalformed] before anything else is done with it. A negative n is an
// error wrapping [jwtcache.ErrInvalid]. The default (0) is 8 KiB.
func MaxTokenSize(n int) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[int]{Pkg: "verify", Name: "MaxTokenSize", Want: "a size of 0 (the default, 8 KiB) or more"}.Apply(n, &c.maxSize, c.record)
	})
}

// CacheSize sets how many verified tokens the verifier remembers, so as to
// accept them again without checking their signatures (see [Verifier]). A
// token is dropped when it is found expired, when its key is found gone, or
// to make room: when the cache is full, a new token takes the place of the
// one, among a few sampled at random, that expires soonest. Each token takes
// a 32-byte hash of its text (a GMAC tag under a key the Verifier draws at
// random and never discloses; where GCM is refused, in FIPS 140-only mode,
// its SHA-256) and its claims (its decoded payload, and at most
// [MaxTokenSize] with them): the tokens themselves are not kept.
// [jwtcache.Off] turns the cache off; another negative n is an error
// wrapping [jwtcache.ErrInvalid]. The default (0) is 10,000.
func CacheSize(n int) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[int]{Pkg: "verify", Name: "CacheSize", Off: true, Want: "a size of 0 (the default, 10000) or more, or Off for no cache"}.Apply(n, &c.cacheSize, c.record)
	})
}

// SharedOption configures a [Verifier] and a [KeySet] alike: it is both an
// [Option] and a [KeySetOption], and given to [NewRegistry], it configures
// every key set of the registry. [Clock] and [Logger] are SharedOptions, so
// that a program (or a test) sets the clock and the logger of its receiving
// side once, and passes the same value to [New] and to [NewKeySet].
type SharedOption interface {
	Option
	KeySetOption
}

// sharedOption is a [SharedOption]: what it does to a Verifier's config and
// to a KeySet's.
type sharedOption struct {
	verifier optionFunc
	keySet   keySetOptionFunc
}

func (o sharedOption) apply(c *config) {
	o.verifier(c)
	c.keySet = append(c.keySet, o.keySet)
}
func (o sharedOption) applyKeySet(c *keySetConfig) { o.keySet(c) }

// Clock sets the clock of a [Verifier] and of a [KeySet] alike, for tests:
// a Verifier checks exp, nbf and iat against what now returns, and a KeySet
// computes and checks every expiry of its set against it, and counts every
// hit exactly (see [KeySetStats]), which costs its hits a shared write. Pass
// the same Clock to [New] and to [NewKeySet] (or [NewRegistry]), so that a
// test moves one clock. now must be safe for concurrent use. A nil now
// restores the default. The default is the system clock: [time.Now] for a
// Verifier; a KeySet reads the monotonic clock on every hit, and the wall
// clock only when a fetch ends.
func Clock(now func() time.Time) SharedOption {
	return sharedOption{
		verifier: func(c *config) { c.clock = now },
		keySet:   func(c *keySetConfig) { c.clock = now },
	}
}

// Logger sets the logger of a [Verifier] and of a [KeySet] alike. The
// Verifier's [Verifier.Middleware] logs why it refused a request, with the
// error, which never carries the token: at [slog.LevelWarn] a token it
// refused (a wrong audience or issuer, a bad signature, an expired token)
// and a 503 for want of keys, each kind at most once a second; at
// [slog.LevelDebug] a request without a token. A KeySet logs its fetches
// ([slog.LevelDebug]), and those that failed or were refused
// ([slog.LevelWarn]); its records never carry key material. A nil l discards
// every record. The default is [slog.Default], as the root package's.
func Logger(l *slog.Logger) SharedOption {
	return sharedOption{
		verifier: func(c *config) { c.logger, c.loggerSet = l, true },
		keySet:   func(c *keySetConfig) { c.logger, c.loggerSet = l, true },
	}
}
