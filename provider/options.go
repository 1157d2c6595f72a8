package provider

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
)

// Option configures a [Client].
type Option interface {
	apply(*config)
}

// optionFunc adapts a function to [Option].
type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults, documented on the options that set them, and limits.
const (
	defaultTimeout     = 10 * time.Second
	defaultMetadataTTL = 24 * time.Hour
	defaultMaxLifetime = 24 * time.Hour
	// maxResponse bounds what is read of a token response or a client
	// assertion file: either is a few kilobytes. A discovery document has
	// the same bound, discovery.MaxDocument.
	maxResponse = 1 << 20
)

// config is the validated configuration of a Client. It is written once by
// newConfig and only read afterwards.
type config struct {
	httpClient  *http.Client
	request     Request
	metadataTTL time.Duration
	maxLifetime time.Duration
	clock       func() time.Time
	dpop        *DPoP // DPoPProof's
	logger      *slog.Logger
	err         error // the first invalid option; the constructors return it
}

// check records err, if it is the first invalid option of c.
func (c *config) check(err error) {
	if c.err == nil {
		c.err = err
	}
}

// newConfig applies opts over the defaults, then clamps what is out of range,
// as each option's doc comment says.
func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.httpClient == nil {
		c.httpClient = &http.Client{Timeout: defaultTimeout}
	} else {
		hc := *c.httpClient
		c.httpClient = &hc
	}
	c.httpClient.CheckRedirect = noRedirect
	if c.metadataTTL == 0 {
		c.metadataTTL = defaultMetadataTTL
	}
	if c.maxLifetime == 0 {
		c.maxLifetime = defaultMaxLifetime
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	c.request = c.request.canonical()
	return c
}

// noRedirect makes an http.Client return a redirect as the response, which
// the Client then reports as an error: a token request that followed one
// would carry the client's credentials to wherever it points.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// HTTPClient sets the HTTP client for discovery and token requests. The
// client is copied, and the copy's CheckRedirect replaced: the Client never
// follows a redirect, which it reports as an error instead. Its Timeout, if
// any, bounds each request, as the context passed to each call does. With
// [TLSClientAuth] or [SelfSignedTLSClientAuth], its Transport must be an
// *http.Transport, whose TLSClientConfig.RootCAs then also verifies the
// mutual TLS endpoint. A nil client restores the default. The default is a
// client on [http.DefaultTransport] with a 10-second timeout.
func HTTPClient(hc *http.Client) Option {
	return optionFunc(func(c *config) { c.httpClient = hc })
}

// DefaultRequest sets the request that [Client.Issue] makes: the audiences,
// scopes and resources to ask for. The default is the zero Request: the
// provider's defaults for the client.
func DefaultRequest(r Request) Option {
	return optionFunc(func(c *config) { c.request = r })
}

// MetadataTTL sets how long the provider's metadata is used before it is
// fetched again. The refresh is lazy and in the background: the first token
// request after the TTL starts it and goes on with the old metadata, as do
// the others meanwhile; one refresh runs at a time for all the Clients of an
// [Issuer]. A refresh that fails keeps the old metadata, and is tried again
// after a backoff (from 1 second, growing to 5 minutes or the TTL if that is
// shorter); one that finds the metadata no longer usable by a Client leaves
// that Client on the old. Zero is the default; a negative d is an error
// wrapping [jwtcache.ErrInvalid]. The default is 24 hours.
func MetadataTTL(d time.Duration) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[time.Duration]{Pkg: "provider", Name: "MetadataTTL", Want: "a TTL of 0 (the default, 24h) or more"}.Apply(d, &c.metadataTTL, c.check)
	})
}

// MaxLifetime caps the lifetime a token response may claim: an expires_in
// longer than this is taken as this long, so that a provider that says a
// token lives for a year does not have it cached for a year. A cache takes the
// earlier of this and a JWT's own exp claim. A response without expires_in
// is not affected: its [jwtcache.Issued.ExpiresIn] stays zero. Zero is the
// default; a negative d is an error wrapping [jwtcache.ErrInvalid]. The
// default is 24 hours.
func MaxLifetime(d time.Duration) Option {
	return optionFunc(func(c *config) {
		bounds.Rule[time.Duration]{Pkg: "provider", Name: "MaxLifetime", Want: "a lifetime of 0 (the default, 24h) or more"}.Apply(d, &c.maxLifetime, c.check)
	})
}

// Logger sets where what a [Delegated] over the Client logs goes: a
// refresh token it could not store yet, a grant the provider refused. Never
// a token. A nil l discards. The default is [slog.Default].
func Logger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			l = slog.New(slog.DiscardHandler)
		}
		c.logger = l
	})
}

// Clock replaces the system clock, for tests: it dates client assertions
// (iat, exp), decides when the metadata is due for refresh, and judges the
// expiry of client certificates and of subject tokens ([ErrSubjectExpired]). now must be
// safe for concurrent use. A nil now restores the default. The default is
// [time.Now].
func Clock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.clock = now })
}
