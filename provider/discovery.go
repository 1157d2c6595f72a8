package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
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
	var m Metadata
	if _, err := discovery.Discover(ctx, newConfig(opts).httpClient, issuer, &m); err != nil {
		return Metadata{}, err
	}
	return m, nil
}

// usable checks that the client can use m, its Issuer's document: the
// provider accepts the client's authentication and its DPoP key's algorithm.
func (c *Client) usable(m *Metadata) error {
	if d := c.cfg.dpop; d != nil && m.DPoPSigningAlgValuesSupported != nil && !slices.Contains(m.DPoPSigningAlgValuesSupported, d.alg) {
		return fmt.Errorf("%w: DPoP: %s is not among those the provider accepts (%s)", ErrSigningAlgorithm, d.alg, listOrNone(m.DPoPSigningAlgValuesSupported))
	}
	mc := m.clone()
	return c.auth.check(&mc)
}
