package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/seed7aeb0c6e/jwtcache"
)

// tokenRequest is one request to the token endpoint, as it is built: the
// grant fills in its form, then the client authentication adds its
// credentials. A grant adds parameters to form; a client authentication may
// also replace client and endpoint (mutual TLS presents a certificate, on the
// provider's mtls_endpoint_aliases).
type tokenRequest struct {
	endpoint string       // where the request goes; an assertion's default audience
	form     url.Values   // the body
	header   http.Header  // beside Content-Type and Accept
	client   *http.Client // sends it
	meta     *Metadata    // the provider's, never modified
	now      time.Time    // when the request is made, by the Client's clock
	// secrets are what the request carries that no error may show: a client
	// secret, an assertion, each as sent.
	secrets []string
}

// redact records secrets that the request carries, as they are and as they
// are form-encoded, so that errors replace them if the provider echoes them.
func (r *tokenRequest) redact(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s, url.QueryEscape(s))
		}
	}
}

// setAssertion adds a JWT client assertion for the client id to the form.
// client_id is optional beside an assertion (RFC 7521, section 4.2), but
// some providers (Microsoft Entra ID) want it.
func (r *tokenRequest) setAssertion(id, assertion string) {
	r.redact(assertion)
	r.form.Set("client_id", id)
	r.form.Set("client_assertion_type", jwtBearer)
	r.form.Set("client_assertion", assertion)
}

// clientCredentials returns the form of a client credentials grant (RFC 6749,
// section 4.4) for req, in its canonical form: the same request whatever the
// order of its values.
func clientCredentials(req Request) url.Values {
	req = req.canonical()
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(req.Scopes) > 0 {
		form.Set("scope", strings.Join(req.Scopes, " "))
	}
	if len(req.Audience) > 0 {
		form["audience"] = req.Audience
	}
	if len(req.Resources) > 0 {
		form["resource"] = req.Resources
	}
	return form
}

// grant makes one token request, of the grant whose parameters form holds,
// authenticated as the client, and returns the token it issued.
func (c *Client) grant(ctx context.Context, form url.Values) (jwtcache.Issued, error) {
	meta := c.metadata(ctx)
	r := &tokenRequest{
		endpoint: meta.TokenEndpoint,
		form:     form,
		header:   make(http.Header),
		client:   c.cfg.httpClient,
		meta:     meta,
		now:      c.cfg.clock(),
	}
	if err := c.auth.authenticate(ctx, r); err != nil {
		return jwtcache.Issued{}, fmt.Errorf("provider: client authentication (%s): %w", c.auth.method(), err)
	}
	return c.send(ctx, r)
}

// send sends r and reads the token response.
func (c *Client) send(ctx context.Context, r *tokenRequest) (jwtcache.Issued, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, strings.NewReader(r.form.Encode()))
	if err != nil {
		return jwtcache.Issued{}, fmt.Errorf("provider: token request: %w", err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		// A url.Error: the endpoint's URL and the transport's reason,
		// never the body.
		return jwtcache.Issued{}, fmt.Errorf("provider: token request: %w", err)
	}
	defer resp.Body.Close()
	data, readErr := readLimited(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return jwtcache.Issued{}, r.errorResponse(resp.StatusCode, data, readErr)
	}
	if readErr != nil {
		return jwtcache.Issued{}, fmt.Errorf("provider: token response: %w", readErr)
	}
	return r.tokenResponse(resp.StatusCode, data, c.cfg.maxLifetime)
}

// tokenResponse reads a successful token response (RFC 6749, section 5.1).
func (r *tokenRequest) tokenResponse(status int, data []byte, maxLifetime time.Duration) (jwtcache.Issued, error) {
	var resp struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Scope       string          `json:"scope"`
		// Some providers (GitHub's, for one) answer errors with 200 OK.
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return jwtcache.Issued{}, fmt.Errorf("provider: token response: %w", jsonError(err))
	}
	if resp.Error != "" {
		return jwtcache.Issued{}, r.oauthError(status, resp.Error, resp.Description, resp.URI)
	}
	if resp.AccessToken == "" {
		return jwtcache.Issued{}, errors.New("provider: token response: no access_token")
	}
	r.redact(resp.AccessToken)
	if !strings.EqualFold(resp.TokenType, "Bearer") {
		return jwtcache.Issued{}, fmt.Errorf("%w: %q", ErrTokenType, r.clean(resp.TokenType, 32))
	}
	life, err := r.expiresIn(resp.ExpiresIn, maxLifetime)
	if err != nil {
		return jwtcache.Issued{}, err
	}
	return jwtcache.Issued{Token: resp.AccessToken, ExpiresIn: life, Scope: resp.Scope}, nil
}

// expiresIn reads expires_in: a JSON number of seconds or, as some providers
// send it, a string holding one. Absent (or null) is zero; more than
// maxLifetime is maxLifetime.
func (r *tokenRequest) expiresIn(raw json.RawMessage, maxLifetime time.Duration) (time.Duration, error) {
	s := string(raw)
	if s == "" || s == "null" {
		return 0, nil
	}
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%w: not a number", ErrBadExpiresIn)
		}
		s = strings.TrimSpace(s)
		// Only a JSON number: ParseFloat would also take "Inf", "NaN", hex
		// and underscores.
		if s == "" || s[0] != '-' && (s[0] < '0' || s[0] > '9') || !json.Valid([]byte(s)) {
			return 0, fmt.Errorf("%w: %q is not a number", ErrBadExpiresIn, r.clean(s, 32))
		}
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(secs) {
		return 0, fmt.Errorf("%w: %s is not a number", ErrBadExpiresIn, r.clean(s, 32))
	}
	if secs <= 0 {
		return 0, fmt.Errorf("%w: %s seconds: the token is expired on arrival", ErrBadExpiresIn, r.clean(s, 32))
	}
	if secs >= maxLifetime.Seconds() {
		return maxLifetime, nil
	}
	// A lifetime below a nanosecond would read as none.
	return max(time.Duration(secs*float64(time.Second)), time.Nanosecond), nil
}

// errorResponse is the error for a response with status, which is not 2xx,
// and body data (unless reading it failed with readErr). The body is never
// shown: only an OAuth error response's fields, cleaned.
func (r *tokenRequest) errorResponse(status int, data []byte, readErr error) error {
	if status >= 300 && status < 400 {
		return fmt.Errorf("provider: token request: HTTP %d: a redirect, which is not followed", status)
	}
	var resp struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if readErr != nil || json.Unmarshal(data, &resp) != nil || resp.Error == "" {
		return fmt.Errorf("provider: token request: HTTP %d, without an OAuth error response", status)
	}
	return r.oauthError(status, resp.Error, resp.Description, resp.URI)
}

// oauthError returns an *Error with the fields the provider sent, cleaned.
func (r *tokenRequest) oauthError(status int, code, desc, uri string) *Error {
	return &Error{
		Code:        r.clean(code, 64),
		Description: r.clean(desc, 512),
		URI:         r.clean(uri, 512),
		StatusCode:  status,
	}
}

// clean returns s, from the provider, fit for an error message: the secrets
// the request carried replaced by "[redacted]", control and invalid
// characters dropped, and at most limit bytes long.
func (r *tokenRequest) clean(s string, limit int) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	var b strings.Builder
	for _, c := range s {
		if c == utf8.RuneError || !unicode.IsPrint(c) {
			continue
		}
		if b.Len()+utf8.RuneLen(c) > limit {
			b.WriteString("...")
			break
		}
		b.WriteRune(c)
	}
	return b.String()
}

// jsonError describes why a token response did not decode, without quoting
// it: a syntax error's message quotes the body.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Errorf("%s is a JSON %s, not a %s", typeErr.Field, typeErr.Value, typeErr.Type)
	}
	return errors.New("not a JSON object")
}
