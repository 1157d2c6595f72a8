package jwtcache

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
)

// TokenFunc fetches a new token from the identity provider. A [Cache] has at
// most one call of it running at a time, on a context that carries the values
// of the caller that triggered the fetch but not its cancellation, bounded by
// the [FetchTimeout]. It should honour that context: a call that outlives the
// timeout is abandoned, and no new call starts until it returns. It should
// return a fresh token on every call: a token function that returns a token it
// cached itself defeats refresh-ahead.
type TokenFunc func(ctx context.Context) (string, error)

// Issued is what an [IssueFunc] returns: a token, and what the identity
// provider said of it in its token response.
type Issued struct {
	// Token is the token: a JWT, or an opaque string.
	Token string
	// ExpiresIn is how long the provider said the token lives (OAuth's
	// expires_in), counted by the cache from the fetch's start; zero if it
	// said nothing, and negative is expired. The cache takes the earlier of
	// this and the token's exp claim, and caches an opaque token (or a JWT
	// without exp) only with it.
	ExpiresIn time.Duration
	// Scope is the scope the provider said it granted, if it said (it may be
	// narrower than the one asked for); it comes back in [Token.Scope].
	Scope string
}

// IssueFunc fetches a new token, with what the provider said of it. It has
// the contract of [TokenFunc]; package provider's clients are IssueFuncs.
type IssueFunc func(ctx context.Context) (Issued, error)

// Option configures a [Cache]. Options are applied in order; a later option
// overrides an earlier one of the same kind. Every Option is also a
// [MapOption], which configures each key's Cache in a [CacheMap], but for
// [Name], which names the map itself.
type Option interface {
	MapOption
	apply(*config)
}

// optionFunc adapts a function to [Option].
type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func (f optionFunc) applyMap(m *mapConfig) { m.cacheOpts = append(m.cacheOpts, f) }

// Defaults, documented on the options that set them.
const (
	defaultName         = "default"
	defaultHeadroom     = 10 * time.Second
	defaultRefreshAhead = 0.25
	maxRefreshAhead     = 0.5
	defaultBackoffMin   = time.Second
	defaultBackoffMax   = 30 * time.Second
	defaultFetchTimeout = 15 * time.Second
)

// config is the validated configuration of a Cache. It is written once by
// newConfig and only read afterwards.
type config struct {
	name             string
	tokenFunc        IssueFunc
	rejectUnparsable bool
	named            bool // a Name (or MapName) was given
	exclusive        bool // ExclusiveFetch: never fetch without the store's lease
	parseOptions     []jwt.ParseOption
	logger           *slog.Logger
	headroom         time.Duration
	refreshAhead     float64
	backoffMin       time.Duration
	backoffMax       time.Duration
	fetchTimeout     time.Duration
	clock            func() time.Time
	store            Store
	binding          string // Binding's thumbprint

	// Set by a CacheMap for its keys' Caches.
	key   string    // logged beside the name
	epoch time.Time // shared, so that the map can read the keys' clock

	// err is the first option found invalid (see invalid); a cache with one
	// returns it from every call. A pointer, to keep each key of a CacheMap
	// small: nil for a valid configuration.
	err *error
}

// Off, given to an option that takes a number (RefreshAhead, Headroom,
// MaxKeys, IdleTimeout, and those of packages verify and provider that say
// so), turns its feature off. It is the one negative value such options
// take: another negative duration, size or fraction is an error wrapping
// [ErrInvalid], and zero is the option's default.
const Off = bounds.Off

// invalid returns the error of an option given a value that cannot be meant,
// as package bounds words it.
func invalid(option string, value any, want string) error {
	return fmt.Errorf("jwtcache: %s(%v): want %s: %w", option, value, want, ErrInvalid)
}

// check records err, the first invalid option of c.
func (c *config) check(err error) {
	if c.err == nil {
		c.err = &err
	}
}

// invalidity returns the first invalid option of c, or nil.
func (c *config) invalidity() error {
	if c.err == nil {
		return nil
	}
	return *c.err
}

// discard is the logger of a cache given a nil Logger; shared, so that the
// keys of a CacheMap do not each build one.
var discard = slog.New(slog.DiscardHandler)

// newConfig applies opts over the defaults, then clamps what is out of range,
// as each option's doc comment says.
func newConfig(opts []Option) config {
	c := config{
		name:         defaultName,
		logger:       slog.Default(),
		headroom:     defaultHeadroom,
		refreshAhead: defaultRefreshAhead,
		backoffMin:   defaultBackoffMin,
		backoffMax:   defaultBackoffMax,
		fetchTimeout: defaultFetchTimeout,
	}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.logger == nil {
		c.logger = discard
	}
	return c
}

// Name names the cache in log records and, with a [SharedStore], its tokens
// in the store, which a cache with a store must have (see [ErrNoName]; an
// empty name is none). Given
// to a [CacheMap], it names the map, as [MapName] does. The default is
// "default".
func Name(name string) Option {
	return nameOption(name)
}

// nameOption is the Option of [Name]: unlike other Options, it names a
// CacheMap itself rather than configuring its keys' Caches.
type nameOption string

func (n nameOption) apply(c *config) { c.name, c.named = string(n), n != "" }

func (n nameOption) applyMap(m *mapConfig) { m.name, m.named = string(n), n != "" }

// Binding says that the cache's tokens are bound to a key of the client's,
// whose JWK SHA-256 thumbprint (RFC 7638) is thumbprint: a DPoP key (RFC
// 9449, the token's cnf.jkt claim), say; package provider's DPoP gives it as
// an Option. With a [SharedStore], the thumbprint is part of the cache's key
// in the store, so that the store hands a token only to replicas that hold
// the same key and can prove it; and a saved JWT whose cnf.jkt claim names
// another key (or any key, for a cache without a Binding) is not adopted.
// The default is none: bearer tokens.
func Binding(thumbprint string) Option {
	return optionFunc(func(c *config) { c.binding = thumbprint })
}

// TokenFunction sets the function that fetches a new token. A cache without one
// returns [ErrNoTokenFunction] from every call. Of TokenFunction and
// [IssueFunction], the later wins. The default is none.
func TokenFunction(f TokenFunc) Option {
	return optionFunc(func(c *config) { c.tokenFunc = f.issue() })
}

// IssueFunction sets the function that fetches a new token, as
// [TokenFunction] does, for a function that also says how long the token
// lives and what scope it carries: an opaque token is then cached too. The
// default is none.
func IssueFunction(f IssueFunc) Option {
	return optionFunc(func(c *config) { c.tokenFunc = f })
}

// issue adapts f to an IssueFunc; nil stays nil.
func (f TokenFunc) issue() IssueFunc {
	if f == nil {
		return nil
	}
	return func(ctx context.Context) (Issued, error) {
		tok, err := f(ctx)
		return Issued{Token: tok}, err
	}
}

// RejectUnparsable makes a token that cannot be parsed (an opaque token, say)
// an error wrapping [ErrUnparsable], instead of a token that is passed through
// to the caller uncached. With [ParseOptions] set, such a token is an error
// anyway. The default is false.
func RejectUnparsable(reject bool) Option {
	return optionFunc(func(c *config) { c.rejectUnparsable = reject })
}

// ParseOptions sets how fetched tokens are checked: options for [jwt.Parse]
// such as jwt.WithKey or jwt.WithKeySet to verify signatures, and
// [jwt.ValidateOption]s such as jwt.WithIssuer or jwt.WithAudience, which are
// handed to [jwt.Validate]. Time claims are the cache's business: jwx's own
// exp, iat and nbf checks are turned off (they fail on clock skew), and the
// cache never hands out a token it finds expired. With options set, a token
// that fails to parse, verify or validate is an error wrapping
// [ErrUnparsable], whatever [RejectUnparsable] says. Options without a key
// must include jwt.WithVerify(false); nil options are ignored. The default is
// none: tokens are parsed without verification, only to read their claims.
func ParseOptions(opts ...jwt.ParseOption) Option {
	return optionFunc(func(c *config) { c.parseOptions = opts })
}

// Logger sets the logger for the cache's few events (a token fetched, a failed
// fetch, a token that cannot be cached, clock skew). Log records never contain a
// token; they name it by its jti claim or a short SHA-256 fingerprint. A nil
// logger discards every record. The default is [slog.Default].
func Logger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// Headroom sets how long before its expiry a token stops being served as is:
// once less than this remains, a caller waits for a fresh token instead (and
// gets the old one if that fetch fails, for as long as the old one lives).
// While the provider is failing, callers are served the old token in the
// headroom without waiting. The headroom is capped at a twentieth of the life
// the token has left from the fetch's start, so that short-lived tokens are
// not replaced long before they must be: 200ms for a 5-second token (4 seconds
// of local life), 3 seconds for a one-minute token. A negative headroom is
// An error for a negative d but [Off], which leaves none: callers are
// served a token until it expires. The default (0) is 10 seconds.
func Headroom(d time.Duration) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[time.Duration]{Pkg: "jwtcache", Name: "Headroom", Off: true, Want: "0 for the default, 10s, or Off for none"}.Apply(d, &c.headroom, c.check)
	})
}

// RefreshAhead sets, as a fraction of the token's local life (the life it has
// left from the fetch's start), how long before expiry the refresh window
// opens. The window ends where the headroom begins; the first call inside it
// returns the current token at once and starts one background fetch of the
// next. Its opening is jittered, up to a fifth of the fraction later, so that
// replicas that fetched together do not refresh together. With the default,
// 0.25, a token is replaced between 0.75 and 0.8 of its local life, whatever
// its lifetime (five seconds or a day), and a fetch that takes up to 15% of the
// life still finishes before any caller waits. [Off] turns refresh-ahead off
// (callers then wait for a fresh token in the headroom); a fraction outside
// (0, 0.5] is an error. The default (0) is 0.25.
func RefreshAhead(fraction float64) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[float64]{Pkg: "jwtcache", Name: "RefreshAhead", Off: true, Max: maxRefreshAhead,
			Want: "a fraction of the token's life in (0, 0.5]; 0 for the default, 0.25, or Off for none"}.Apply(fraction, &c.refreshAhead, c.check)
	})
}

// Backoff sets the bounds of the delay after a failed fetch, during which the
// token function is not called again. The delay depends on what the cache can
// still serve. With no live token, it is drawn uniformly between minDelay and
// min(2·minDelay, maxDelay), so that a provider that answers again serves the
// failing callers soon (within 2 seconds by default), while it never sees more
// than a call per minDelay. With a live token, the delay after the nth
// consecutive failure is drawn uniformly between minDelay and min(maxDelay,
// minDelay·2ⁿ⁻¹) (full jitter with a floor), but is at most half of what the
// token has left and at least minDelay, so that the cache tries again before
// the token expires. During backoff, callers get the cached token while it has
// not expired, and the last error, wrapped in [ErrBackoff], when it has. A
// zero bound is its default; a negative one, or a maxDelay below minDelay, is
// an error. The defaults are 1 second and 30 seconds (or minDelay, if more).
func Backoff(minDelay, maxDelay time.Duration) Option {
	return optionFunc(func(c *config) {
		lo, hi := minDelay, maxDelay
		if lo == 0 {
			lo = defaultBackoffMin
		}
		if hi == 0 {
			hi = max(defaultBackoffMax, lo)
		}
		if minDelay < 0 || maxDelay < 0 || hi < lo {
			c.check(invalid("Backoff", fmt.Sprintf("%v, %v", minDelay, maxDelay), "bounds of 0 (the default) or more, the second no less than the first"))
			return
		}
		c.backoffMin, c.backoffMax = lo, hi
	})
}

// FetchTimeout bounds each fetch: the call of the token function and, with a
// [SharedStore], the store calls before it (each of which gets at most a tenth
// of it). The fetch runs on a context detached from the caller that started
// it, so that one caller giving up does not fail the others waiting for the
// same fetch; this timeout is what ends a fetch that hangs. A negative d is
// an error. The default (0) is 15 seconds.
func FetchTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[time.Duration]{Pkg: "jwtcache", Name: "FetchTimeout", Want: "0 for the default, 15s, or more"}.Apply(d, &c.fetchTimeout, c.check)
	})
}

// Clock replaces the system clock, for tests. With a clock set, every expiry
// is computed and checked against what now returns; now must be safe for
// concurrent use. A nil now restores the default. The default reads the
// monotonic clock on every hit, and the wall clock only to read a token's exp
// when it arrives.
func Clock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.clock = now })
}
