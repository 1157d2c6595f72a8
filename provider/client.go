package provider

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
)

// Client obtains tokens from one identity provider, as one client of it. It
// holds the provider's metadata and the client's authentication, and makes a
// token request on every call of [Client.Issue], [Client.IssueFor],
// [Client.IssueKey], [Client.Exchange], [Client.Refresh] and
// [Client.JWTBearer]: it caches no token. Most callers
// hand its methods to the root package, or use an [Exchanger]:
//
//	jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.IssueFunction(client.Issue))
//	jwtcache.NewCacheMap(jwtcache.MapName("apis"), jwtcache.MapIssueFunction(client.IssueKey))
//
// A Client is safe for concurrent use. The zero Client is not usable; use
// [New] or [NewFromTokenURL].
type Client struct {
	// issuer is where the metadata comes from; nil for a Client made by
	// NewFromTokenURL, whose metadata is static.
	issuer *Issuer
	static *Metadata // NewFromTokenURL's
	auth   ClientAuth
	// mtls sends the token requests of a ClientAuth that presents a client
	// certificate; nil for others. Written once by the constructor.
	mtls *http.Client
	// cfg is written once by the constructor and only read after.
	cfg config

	// checked is the metadata last checked usable by this client (the
	// provider accepts its authentication), beside the Issuer's document it
	// was checked from; nil before the first. Never modified after it is
	// published.
	checked atomic.Pointer[checkedMeta]
}

// checkedMeta is metadata a Client checked: doc is the Issuer's document
// (compared by pointer: a refresh publishes a new one), meta what the Client
// uses, and err why doc was not usable, in which case meta is the last
// usable one, if any.
type checkedMeta struct {
	doc  *Metadata
	meta *Metadata
	err  error
}

var (
	_ jwtcache.IssueFunc                                     = (*Client)(nil).Issue
	_ func(context.Context, string) (jwtcache.Issued, error) = (*Client)(nil).IssueKey
)

// New returns a Client of the provider whose issuer identifier is issuer
// (https://idp.example/realms/acme, say), authenticating with auth, and
// discovers the provider's metadata at once, on ctx: the fail-fast way, for a
// service that must not start without its provider. (A service that must
// start while its provider is down uses [NewIssuer] and [Issuer.Client],
// which discover on the first token request; so do the clients of many
// tenants of one provider, which share one Issuer.) The metadata comes from
// the issuer's OpenID Connect Discovery document
// (<issuer>/.well-known/openid-configuration) or, if there is none (404),
// from its RFC 8414 metadata (the well-known path
// /.well-known/oauth-authorization-server inserted before the issuer's
// path). It is used until the [MetadataTTL] runs out, then refreshed in the
// background; it is never fetched for every token. ctx bounds only this
// first fetch: the Client does not keep it.
//
// New fails if the issuer or the token endpoint is not HTTPS on a
// non-loopback host ([ErrInsecureURL], before any request is made to it); if
// the document's issuer is not issuer, byte for byte
// ([ErrIssuerMismatch]: a trailing slash counts); if the document has no
// token endpoint, is larger than 1 MiB, or answers with a redirect (none is
// followed); or if auth does not suit the provider ([ErrAuthMethod],
// [ErrSigningAlgorithm]).
func New(ctx context.Context, issuer string, auth ClientAuth, opts ...Option) (*Client, error) {
	if auth == nil {
		return nil, errNoAuth
	}
	i, err := NewIssuer(issuer, opts...)
	if err != nil {
		return nil, err
	}
	c, err := newClient(i, auth, opts)
	if err != nil {
		return nil, err
	}
	if _, err := c.metadata(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// NewFromTokenURL returns a Client of a provider that publishes no metadata:
// one whose token endpoint is tokenURL, authenticating with auth. It makes no
// request. It fails if tokenURL is not HTTPS on a non-loopback host
// ([ErrInsecureURL]), or if auth cannot be used without an issuer
// ([AudienceIssuer]). As nothing says which methods and algorithms the
// provider accepts, the token endpoint is the judge of auth.
func NewFromTokenURL(tokenURL string, auth ClientAuth, opts ...Option) (*Client, error) {
	if auth == nil {
		return nil, errNoAuth
	}
	if err := discovery.CheckURL("token URL", tokenURL); err != nil {
		return nil, err
	}
	m := Metadata{TokenEndpoint: tokenURL}
	if err := auth.check(&m); err != nil {
		return nil, err
	}
	c, err := newClient(nil, auth, opts)
	if err != nil {
		return nil, err
	}
	c.static = &m
	return c, nil
}

// newClient returns a Client of issuer (nil: static metadata, set by the
// caller), with the HTTP client for mutual TLS if auth presents a client
// certificate.
func newClient(issuer *Issuer, auth ClientAuth, opts []Option) (*Client, error) {
	c := &Client{issuer: issuer, auth: auth, cfg: newConfig(opts)}
	if c.cfg.err != nil {
		return nil, c.cfg.err
	}
	if _, ok := auth.(*tlsClientAuth); ok {
		var err error
		if c.mtls, err = mtlsClient(c.cfg.httpClient); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// errNoAuth is the constructors' error for a nil ClientAuth.
var errNoAuth = errors.New("provider: no client authentication")

// Metadata returns a copy of the provider's metadata that the Client uses,
// which the caller may modify; the zero Metadata before a Client of an
// [Issuer] has discovered it (see [Issuer.Metadata]).
func (c *Client) Metadata() Metadata {
	if m := c.held(); m != nil {
		return m.clone()
	}
	return Metadata{}
}

// JWKSURI returns the URL of the provider's JSON Web Key Set, for the side
// that verifies the tokens it issues (package verify's KeySet); empty if the
// provider names none, if the Client was made by [NewFromTokenURL], or if it
// has not discovered the metadata yet.
func (c *Client) JWKSURI() string {
	if m := c.held(); m != nil {
		return m.JWKSURI
	}
	return ""
}

// held returns the metadata the Client uses, without a request; nil if it
// has none yet.
func (c *Client) held() *Metadata {
	if c.static != nil {
		return c.static
	}
	if k := c.checked.Load(); k != nil {
		return k.meta
	}
	return nil
}

// Issue asks the provider for a new token with the client credentials grant
// (RFC 6749, section 4.4), for the [DefaultRequest]. It is a
// [jwtcache.IssueFunc], for [jwtcache.IssueFunction].
//
// The token must come as a Bearer token (or the error wraps [ErrTokenType]).
// Its [jwtcache.Issued.ExpiresIn] is the response's expires_in, at most the
// [MaxLifetime]; zero when the response has none, and then a cache takes the
// JWT's exp, or passes an opaque token through uncached. An expires_in of zero
// or less, or not a number, is an error wrapping [ErrBadExpiresIn]. Its
// [jwtcache.Issued.Scope] is the scope the provider says it granted, if it
// says. An error response from the token endpoint is an [*Error]. No error
// carries the client's secret or assertion, nor the token.
func (c *Client) Issue(ctx context.Context) (jwtcache.Issued, error) {
	return c.IssueFor(ctx, c.cfg.request)
}

// IssueFor is [Client.Issue] for the request r instead of the default one,
// which it does not merge with. The values of r are sent sorted and without
// duplicates.
func (c *Client) IssueFor(ctx context.Context, r Request) (jwtcache.Issued, error) {
	return c.grant(ctx, clientCredentials(r), nil)
}

// IssueKey is [Client.IssueFor] for the Request whose [Request.Key] key is,
// as [ParseKey] reads it: a function for [jwtcache.MapIssueFunction], for a
// [jwtcache.CacheMap] keyed by Request.Key, which caches a token for each set
// of audiences, scopes and resources. A key that does not parse is an error,
// and no request is made.
func (c *Client) IssueKey(ctx context.Context, key string) (jwtcache.Issued, error) {
	r, err := ParseKey(key)
	if err != nil {
		return jwtcache.Issued{}, err
	}
	return c.IssueFor(ctx, r)
}

// metadata returns the metadata to use for a token request made on ctx: the
// Issuer's document (discovered on ctx if it has none, refreshed in the
// background once due), as long as the provider accepts the client's
// authentication by it; a refreshed document that it does not accept leaves
// the client on the last one it did.
func (c *Client) metadata(ctx context.Context) (*Metadata, error) {
	if c.static != nil {
		return c.static, nil
	}
	doc, err := c.issuer.src.Get(ctx)
	if err != nil {
		return nil, err
	}
	k := c.checked.Load()
	if k == nil || k.doc != doc {
		n := &checkedMeta{doc: doc, meta: doc}
		if n.err = c.usable(doc); n.err != nil {
			n.meta = nil
			if k != nil {
				n.meta = k.meta
			}
		}
		c.checked.Store(n)
		k = n
	}
	if k.meta == nil {
		return nil, k.err
	}
	return k.meta, nil
}
