package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/seed7aeb0c6e/jwtcache/internal/loopback"
)

// Metadata is what a [Client] uses of its provider's metadata: the OpenID
// Connect Discovery 1.0 document, or the RFC 8414 authorization server
// metadata. A Client made by [NewFromTokenURL] has only a TokenEndpoint.
type Metadata struct {
	// Issuer is the provider's issuer identifier, equal to the configured
	// one byte for byte.
	Issuer string `json:"issuer"`
	// TokenEndpoint is the URL of the token endpoint (token_endpoint).
	TokenEndpoint string `json:"token_endpoint"`
	// JWKSURI is the URL of the provider's JSON Web Key Set (jwks_uri),
	// which verifies the tokens it issues; empty if it gives none.
	JWKSURI string `json:"jwks_uri"`
	// TokenEndpointAuthMethodsSupported lists the client authentication
	// methods of the token endpoint; nil if the provider does not say.
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	// TokenEndpointAuthSigningAlgValuesSupported lists the algorithms the
	// token endpoint accepts client assertions signed with; nil if the
	// provider does not say.
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	// MTLSEndpointAliases maps endpoint names (token_endpoint, ...) to the
	// URLs to use instead with mutual-TLS client authentication (RFC 8705,
	// section 5); nil if the provider gives none.
	MTLSEndpointAliases map[string]string `json:"mtls_endpoint_aliases"`
	// DPoPSigningAlgValuesSupported lists the algorithms the provider
	// accepts DPoP proofs signed with (RFC 9449, section 5.1); nil if it
	// does not say.
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported"`
}

// clone returns a deep copy of m, which the caller may modify.
func (m *Metadata) clone() Metadata {
	c := *m
	c.TokenEndpointAuthMethodsSupported = slices.Clone(m.TokenEndpointAuthMethodsSupported)
	c.TokenEndpointAuthSigningAlgValuesSupported = slices.Clone(m.TokenEndpointAuthSigningAlgValuesSupported)
	c.MTLSEndpointAliases = maps.Clone(m.MTLSEndpointAliases)
	c.DPoPSigningAlgValuesSupported = slices.Clone(m.DPoPSigningAlgValuesSupported)
	return c
}

// Discover fetches the metadata of the provider whose issuer identifier is
// issuer, as [New] does, for a party that needs the metadata but is no
// client: the side that verifies the provider's tokens, which needs its
// JWKSURI. It reads the OpenID Connect Discovery document, or if there is
// none (404), the RFC 8414 metadata, on ctx, with the [HTTPClient] of opts
// (the other options do not apply), following no redirect.
//
// It fails if the issuer, the token endpoint or the jwks_uri is not HTTPS on
// a non-loopback host ([ErrInsecureURL], before any request is made to the
// issuer); if the document's issuer is not issuer, byte for byte
// ([ErrIssuerMismatch]); or if the document is larger than 1 MiB, is not
// JSON, or answers with a redirect. Unlike [New], it accepts a document
// without a token endpoint, and it checks no client authentication.
func Discover(ctx context.Context, issuer string, opts ...Option) (Metadata, error) {
	if err := checkIssuer(issuer); err != nil {
		return Metadata{}, err
	}
	cfg := newConfig(opts)
	m, err := discover(ctx, cfg.httpClient, issuer)
	if err != nil {
		return Metadata{}, err
	}
	if err := checkMetadata(&m, issuer, false); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// discover fetches the metadata of c's issuer and checks that the client can
// use it.
func (c *Client) discover(ctx context.Context) (Metadata, error) {
	m, err := discover(ctx, c.cfg.httpClient, c.issuer)
	if err != nil {
		return Metadata{}, err
	}
	if err := c.usable(&m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// discover fetches the metadata of issuer with hc: first the OpenID Connect
// document, then, if there is none (404), the RFC 8414 one. It does not
// check what the document says.
func discover(ctx context.Context, hc *http.Client, issuer string) (Metadata, error) {
	m, err := fetchMetadata(ctx, hc, openIDConfiguration(issuer))
	if errors.Is(err, errNotFound) {
		m, err = fetchMetadata(ctx, hc, authorizationServerMetadata(issuer))
		if errors.Is(err, errNotFound) {
			err = fmt.Errorf("provider: discovery: no metadata at %s nor at %s (HTTP 404)",
				openIDConfiguration(issuer), authorizationServerMetadata(issuer))
		}
	}
	return m, err
}

// errNotFound is fetchMetadata's error for a 404, on which discovery tries
// the other well-known URL.
var errNotFound = errors.New("provider: discovery: not found")

// openIDConfiguration is where OpenID Connect Discovery 1.0, section 4,
// places the document: the well-known path appended to the issuer, less any
// terminating slash.
func openIDConfiguration(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// authorizationServerMetadata is where RFC 8414, section 3.1, places the
// metadata: the well-known path inserted between the host and the issuer's
// path, less any terminating slash. The issuer has been checked to parse,
// without query or fragment.
func authorizationServerMetadata(issuer string) string {
	u, _ := url.Parse(issuer)
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path
}

// fetchMetadata fetches, with hc, and decodes the metadata document at u.
func fetchMetadata(ctx context.Context, hc *http.Client, u string) (Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Metadata{}, fmt.Errorf("provider: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return Metadata{}, fmt.Errorf("provider: discovery: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Metadata{}, errNotFound
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Metadata{}, fmt.Errorf("provider: discovery: %s answered a redirect (HTTP %d), which is not followed", u, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return Metadata{}, fmt.Errorf("provider: discovery: %s answered HTTP %d", u, resp.StatusCode)
	}
	data, err := readLimited(resp.Body)
	if err != nil {
		return Metadata{}, fmt.Errorf("provider: discovery: %s: %w", u, err)
	}
	var m Metadata
	if err := json.Unmarshal(data, &m); err != nil {
		return Metadata{}, fmt.Errorf("provider: discovery: %s: not a metadata document: %w", u, err)
	}
	return m, nil
}

// usable checks that the client can use the metadata m: it names c's issuer
// and a token endpoint, every URL the client or a verifier would use is
// secure, and the provider accepts the client's authentication.
func (c *Client) usable(m *Metadata) error {
	if err := checkMetadata(m, c.issuer, true); err != nil {
		return err
	}
	if d := c.cfg.dpop; d != nil && m.DPoPSigningAlgValuesSupported != nil && !slices.Contains(m.DPoPSigningAlgValuesSupported, d.alg) {
		return fmt.Errorf("%w: DPoP: %s is not among those the provider accepts (%s)", ErrSigningAlgorithm, d.alg, listOrNone(m.DPoPSigningAlgValuesSupported))
	}
	return c.auth.check(m)
}

// checkMetadata checks that m names issuer, and a token endpoint if
// needToken, and that its token endpoint and jwks_uri, if any, are secure.
func checkMetadata(m *Metadata, issuer string, needToken bool) error {
	if m.Issuer != issuer {
		return fmt.Errorf("%w: the discovery document says %q; configured %q", ErrIssuerMismatch, short(m.Issuer), issuer)
	}
	if needToken && m.TokenEndpoint == "" {
		return errors.New("provider: discovery: the document has no token_endpoint")
	}
	if m.TokenEndpoint != "" {
		if err := checkURL("token_endpoint", m.TokenEndpoint); err != nil {
			return err
		}
	}
	if m.JWKSURI != "" {
		if err := checkURL("jwks_uri", m.JWKSURI); err != nil {
			return err
		}
	}
	return nil
}

// readLimited reads r to its end, or fails if it holds more than maxResponse
// bytes.
func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponse {
		return nil, fmt.Errorf("the response is larger than %d bytes", maxResponse)
	}
	return bytes.TrimSpace(data), nil
}

// checkIssuer checks an issuer identifier (RFC 8414, section 2): a secure URL
// without query or fragment.
func checkIssuer(issuer string) error {
	if err := checkURL("issuer", issuer); err != nil {
		return err
	}
	u, _ := url.Parse(issuer)
	if u.RawQuery != "" || u.ForceQuery || u.User != nil {
		return fmt.Errorf("provider: issuer %q has a query or user information, which an issuer may not have", issuer)
	}
	return nil
}

// checkURL checks that raw, the URL of what (an issuer, an endpoint), is
// absolute, without a fragment, and secure: https, or http to a loopback
// host.
func checkURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("provider: %s: %w", what, err)
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("provider: %s %q is not an absolute URL", what, short(raw))
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("provider: %s %q has a fragment", what, short(raw))
	}
	if u.Scheme == "https" || u.Scheme == "http" && loopback.Host(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w: %s %q", ErrInsecureURL, what, short(raw))
}

// short cuts a string from the provider to a length fit for an error
// message, which the cache may log: a discovery document may be a megabyte.
func short(s string) string {
	const limit = 256
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
