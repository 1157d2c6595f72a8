// Package discovery fetches and checks the metadata of an OpenID provider or
// OAuth 2.0 authorization server: the OpenID Connect Discovery 1.0 document,
// or the RFC 8414 metadata where there is none. It is the one discovery of
// this module: package provider's Client and Discover, which obtain tokens,
// and package verify's Registry, which needs a provider's jwks_uri to check
// them, both use it, so that verify imports nothing of the sending side.
//
// Its errors read "provider: ...", as package provider's: provider returns
// them as they are, and its exported sentinels are [ErrIssuerMismatch] and
// [ErrInsecureURL]; verify wraps them in its own. They quote what a provider
// sent cut short, and never a credential.
package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/seed7aeb0c6e/jwtcache/internal/loopback"
)

// ErrIssuerMismatch is wrapped by the error of a document whose issuer is
// not the one configured, byte for byte. It is provider.ErrIssuerMismatch.
var ErrIssuerMismatch = errors.New("provider: issuer mismatch")

// ErrInsecureURL is wrapped by the error of a URL that is not https, or http
// to a loopback host. It is provider.ErrInsecureURL.
var ErrInsecureURL = errors.New("provider: not an https URL on a non-loopback host")

// MaxDocument bounds what is read of a metadata document: it is a few
// kilobytes.
const MaxDocument = 1 << 20

// defaultTimeout bounds each request of a nil client: the default of package
// provider's HTTPClient.
const defaultTimeout = 10 * time.Second

// Endpoints are the members of a metadata document that every party checks:
// the issuer, and the URLs it would send a request or a token to.
type Endpoints struct {
	// Issuer is the document's issuer identifier (issuer).
	Issuer string `json:"issuer"`
	// TokenEndpoint is the URL of the token endpoint (token_endpoint); empty
	// if the document has none.
	TokenEndpoint string `json:"token_endpoint"`
	// JWKSURI is the URL of the provider's key set (jwks_uri); empty if the
	// document has none.
	JWKSURI string `json:"jwks_uri"`
}

// Discover fetches the metadata of issuer, as [Fetch] does, for a party that
// is no client: the side that verifies the provider's tokens, which needs its
// JWKSURI. It first checks issuer ([CheckIssuer]: no request is made for one
// that is insecure), and then the document's Endpoints, a token endpoint
// being optional ([Endpoints.Check]). It decodes the document into doc, if
// doc is not nil, and returns its Endpoints.
func Discover(ctx context.Context, hc *http.Client, issuer string, doc any) (Endpoints, error) {
	if err := CheckIssuer(issuer); err != nil {
		return Endpoints{}, err
	}
	e, err := Fetch(ctx, hc, issuer, doc)
	if err != nil {
		return Endpoints{}, err
	}
	if err := e.Check(issuer, false); err != nil {
		return Endpoints{}, err
	}
	return e, nil
}

// Fetch fetches the metadata document of issuer on ctx with a copy of hc
// that follows no redirect: first the OpenID Connect document, then, if
// there is none (404), the RFC 8414 one. It decodes the document into doc
// (as [json.Unmarshal] does), if doc is not nil, and returns its Endpoints.
// It fails for a redirect, a status other than 200 (404 at both URLs
// included), a document larger than [MaxDocument], and one that does not
// decode; it checks nothing the document says (see [Endpoints.Check]).
// A nil hc is a client on [http.DefaultTransport] with a 10-second timeout.
func Fetch(ctx context.Context, hc *http.Client, issuer string, doc any) (Endpoints, error) {
	c := http.Client{Timeout: defaultTimeout}
	if hc != nil {
		c = *hc
	}
	// A redirect is reported, not followed: it would take a client's
	// request (and a verifier's trust) wherever it points.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	oidc, rfc8414 := openIDConfiguration(issuer), authorizationServerMetadata(issuer)
	e, err := fetch(ctx, &c, oidc, doc)
	if errors.Is(err, errNotFound) {
		e, err = fetch(ctx, &c, rfc8414, doc)
		if errors.Is(err, errNotFound) {
			err = fmt.Errorf("provider: discovery: no metadata at %s nor at %s (HTTP 404)", oidc, rfc8414)
		}
	}
	return e, err
}

// errNotFound is fetch's error for a 404, on which Fetch tries the other
// well-known URL.
var errNotFound = errors.New("provider: discovery: not found")

// openIDConfiguration returns where OpenID Connect Discovery 1.0, section 4,
// places the document of issuer: the well-known path appended to the issuer,
// less any terminating slash.
func openIDConfiguration(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// authorizationServerMetadata returns where RFC 8414, section 3.1, places
// the metadata of issuer: the well-known path inserted between the host and
// the issuer's path, less any terminating slash. issuer is a URL that
// [CheckIssuer] accepts.
func authorizationServerMetadata(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path
}

// fetch fetches, with hc, and decodes the metadata document at u.
func fetch(ctx context.Context, hc *http.Client, u string, doc any) (Endpoints, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Endpoints{}, fmt.Errorf("provider: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return Endpoints{}, fmt.Errorf("provider: discovery: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Endpoints{}, errNotFound
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Endpoints{}, fmt.Errorf("provider: discovery: %s answered a redirect (HTTP %d), which is not followed", u, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return Endpoints{}, fmt.Errorf("provider: discovery: %s answered HTTP %d", u, resp.StatusCode)
	}
	data, err := readLimited(resp.Body)
	if err != nil {
		return Endpoints{}, fmt.Errorf("provider: discovery: %s: %w", u, err)
	}
	// The caller's document first, so that its decoding error is the one
	// reported.
	var e Endpoints
	for _, v := range []any{doc, &e} {
		if v == nil {
			continue
		}
		if err := json.Unmarshal(data, v); err != nil {
			return Endpoints{}, fmt.Errorf("provider: discovery: %s: not a metadata document: %w", u, err)
		}
	}
	return e, nil
}

// readLimited reads r to its end, or fails if it holds more than
// MaxDocument bytes.
func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDocument+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxDocument {
		return nil, fmt.Errorf("the response is larger than %d bytes", MaxDocument)
	}
	return bytes.TrimSpace(data), nil
}

// Check checks that e, a document's Endpoints, names issuer byte for byte
// (else the error wraps [ErrIssuerMismatch]: a trailing slash counts), and a
// token endpoint if needToken, and that its token endpoint and jwks_uri, if
// any, are secure ([CheckURL]).
func (e Endpoints) Check(issuer string, needToken bool) error {
	if e.Issuer != issuer {
		return fmt.Errorf("%w: the discovery document says %q; configured %q", ErrIssuerMismatch, short(e.Issuer), issuer)
	}
	if needToken && e.TokenEndpoint == "" {
		return errors.New("provider: discovery: the document has no token_endpoint")
	}
	if e.TokenEndpoint != "" {
		if err := CheckURL("token_endpoint", e.TokenEndpoint); err != nil {
			return err
		}
	}
	if e.JWKSURI != "" {
		if err := CheckURL("jwks_uri", e.JWKSURI); err != nil {
			return err
		}
	}
	return nil
}

// CheckIssuer checks an issuer identifier (RFC 8414, section 2): a URL that
// [CheckURL] accepts, without query or user information.
func CheckIssuer(issuer string) error {
	if err := CheckURL("issuer", issuer); err != nil {
		return err
	}
	u, _ := url.Parse(issuer)
	if u.RawQuery != "" || u.ForceQuery || u.User != nil {
		return fmt.Errorf("provider: issuer %q has a query or user information, which an issuer may not have", issuer)
	}
	return nil
}

// CheckURL checks that raw, the URL of what (an issuer, an endpoint, named
// in the error), is absolute, without a fragment, and secure: https, or http
// to a loopback host (else the error wraps [ErrInsecureURL]).
func CheckURL(what, raw string) error {
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
	switch {
	case u.Scheme == "https" || u.Scheme == "http" && loopback.Host(u.Hostname()):
		return nil
	case u.Scheme != "http":
		// A typo ("htp://") is the scheme's fault, not the host's.
		return fmt.Errorf("%w: %s %q: the scheme %q is neither https nor http", ErrInsecureURL, what, short(raw), short(u.Scheme))
	}
	return fmt.Errorf("%w: %s %q: plain http is for loopback hosts only; use https", ErrInsecureURL, what, short(raw))
}

// short cuts s, a string from a provider, to at most 256 bytes and an
// ellipsis, at a character's start, fit for an error message that may be
// logged: a discovery document may be a megabyte.
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
