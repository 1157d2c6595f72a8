package provider

import (
	"context"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
)

// Issuer is one provider's metadata, shared by every [Client] made from it:
// discovered once, when a client first needs it, and refreshed once for all
// of them. A multi-tenant service makes one Issuer per provider and one
// Client per tenant's credentials.
//
// An Issuer makes no request until it is needed, so a service starts while
// its provider is down: its clients' token requests fail (and their caches
// back off) until the provider answers. Discovery runs on the refresh engine
// that the root package's Cache runs on: one fetch at a time, bounded by the
// [HTTPClient]'s timeout, on a context no caller can cancel; after a failure,
// callers without metadata get the error, wrapped in [ErrDiscoveryBackoff],
// for 1-2 seconds at a time, and the provider sees one request per delay.
// Once the [MetadataTTL] runs out, the next token request starts a refresh in
// the background and goes on with the metadata it has; a refresh that fails
// keeps it. [New] is the fail-fast way: it discovers at once.
//
// An Issuer is safe for concurrent use. The zero Issuer is not usable; use
// [NewIssuer].
type Issuer struct {
	src  *discovery.Source[Metadata]
	opts []Option // given to every Client, before its own
}

// ErrDiscoveryBackoff is wrapped, with the last error, by the error of a
// token request made while an [Issuer] without metadata backs off after a
// failed discovery.
var ErrDiscoveryBackoff = discovery.ErrBackoff

// NewIssuer returns the Issuer whose identifier is issuer
// (https://idp.example/realms/acme, say), configured by opts ([HTTPClient],
// [MetadataTTL] and [Clock] apply to discovery; every option is also given to
// the Clients made from it, before their own). It makes no request. It fails
// if issuer is not HTTPS on a non-loopback host ([ErrInsecureURL]).
func NewIssuer(issuer string, opts ...Option) (*Issuer, error) {
	cfg := newConfig(opts)
	if cfg.err != nil {
		return nil, cfg.err
	}
	src, err := discovery.NewSource(issuer, cfg.httpClient, func(_ *Metadata, e discovery.Endpoints) error {
		return e.Check(issuer, true)
	}, cfg.metadataTTL, discoveryTimeout(cfg), cfg.clock)
	if err != nil {
		return nil, err
	}
	return &Issuer{src: src, opts: opts}, nil
}

// discoveryTimeout bounds a discovery: the HTTP client's timeout for each of
// its two requests, or the default.
func discoveryTimeout(cfg config) time.Duration {
	if t := cfg.httpClient.Timeout; t > 0 {
		return 2 * t
	}
	return 2 * defaultTimeout
}

// Issuer returns the issuer identifier.
func (i *Issuer) Issuer() string { return i.src.Issuer() }

// Metadata returns a copy of the provider's metadata, which the caller may
// modify, discovering it first if the Issuer has none: then it waits as long
// as ctx allows, and fails as [New] does.
func (i *Issuer) Metadata(ctx context.Context) (Metadata, error) {
	m, err := i.src.Get(ctx)
	if err != nil {
		return Metadata{}, err
	}
	return m.clone(), nil
}

// Client returns a client of the provider authenticating with auth,
// configured by the Issuer's options and then opts. It makes no request: its
// first token request discovers the metadata, if no client of the Issuer
// has, and every token request checks that the provider accepts auth
// ([ErrAuthMethod], [ErrSigningAlgorithm]) by the metadata it uses. It fails
// for a nil auth, and for a client certificate that cannot be used.
func (i *Issuer) Client(auth ClientAuth, opts ...Option) (*Client, error) {
	if auth == nil {
		return nil, errNoAuth
	}
	return newClient(i, auth, append(append([]Option(nil), i.opts...), opts...))
}
