package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/clean"
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
	// mtls is the Client's HTTP client for mutual TLS, which presents the
	// certificate in cert; nil unless the Client's ClientAuth presents one.
	mtls *http.Client
	// cert is the client certificate the request presents; set by a mutual
	// TLS client authentication, nil otherwise.
	cert *presented
	// notAfter, if not zero, is when the token must be dropped at the
	// latest (the end of the subject token's or the certificate's life),
	// after now: the token's lifetime is capped to end there.
	notAfter time.Time
	// accept checks the response's token_type and issued_token_type (RFC
	// 8693, section 2.2.1); nil accepts a Bearer token only.
	accept func(r *tokenRequest, tokenType, issuedType string) error
	// dpop, if not nil, proves possession of its key on the request, which
	// asks for a DPoP token.
	dpop *DPoP
	// secrets are what the request carries that no error may show: a client
	// secret, an assertion, a subject token, each as sent.
	secrets []string
}

// bound caps the token's life to end at at, which is after r.now; the
// earliest of several bounds wins.
func (r *tokenRequest) bound(at time.Time) {
	if r.notAfter.IsZero() || at.Before(r.notAfter) {
		r.notAfter = at
	}
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
	return withRequest(url.Values{"grant_type": {"client_credentials"}}, req)
}

// withRequest adds the parameters of req, in its canonical form, to form,
// and returns it.
func withRequest(form url.Values, req Request) url.Values {
	req = req.canonical()
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

// grant makes a token request, of the grant whose parameters form holds,
// authenticated as the client, and returns the token it issued. prepare, if
// not nil, sets what the grant adds to the request beyond its form (secrets,
// a bound, the token types it accepts) before the client authenticates; an
// error from it fails the call before any request is made.
//
// A request that presented a client certificate the certificate function no
// longer returns is made again, once, with the new one: the token may be
// bound to the old certificate, and a [Rotated] call made while the request
// was under way cannot drop it from a cache that held no token yet. A request
// whose DPoP proof the provider refused for want of a nonce is made again,
// once, with the nonce, and with client credentials of its own (a fresh
// assertion: the provider may refuse a replayed one).
func (c *Client) grant(ctx context.Context, form url.Values, prepare func(*tokenRequest) error) (jwtcache.Issued, error) {
	resp, err := c.request(ctx, form, prepare)
	return resp.Issued, err
}

// response is a successful token response, as a grant reads it.
type response struct {
	jwtcache.Issued
	// refresh is the response's refresh_token, if it has one.
	refresh string
}

// request is [Client.grant], returning the whole response.
func (c *Client) request(ctx context.Context, form url.Values, prepare func(*tokenRequest) error) (response, error) {
	certRetried, nonceRetried := false, false
	for {
		meta, err := c.metadata(ctx)
		if err != nil {
			return response{}, err
		}
		r := &tokenRequest{
			endpoint: meta.TokenEndpoint,
			form:     form,
			header:   make(http.Header),
			client:   c.cfg.httpClient,
			mtls:     c.mtls,
			meta:     meta,
			now:      c.cfg.clock(),
			dpop:     c.cfg.dpop,
		}
		if prepare != nil {
			if err := prepare(r); err != nil {
				return response{}, err
			}
		}
		if err := c.auth.authenticate(ctx, r); err != nil {
			return response{}, fmt.Errorf("provider: client authentication (%s): %w", c.auth.method(), err)
		}
		iss, err := c.send(ctx, r, !nonceRetried)
		if errors.Is(err, errDPoPNonce) {
			nonceRetried = true
			continue
		}
		if err != nil || r.cert == nil || certRetried || !r.cert.rotated() {
			return iss, err
		}
		certRetried = true
	}
}

// errDPoPNonce is send's error for a response that asks for the request
// again with the DPoP nonce it gave.
var errDPoPNonce = errors.New("provider: the token endpoint asks for a DPoP nonce")

// send sends r and reads the token response. With nonceRetry, a response
// that refuses r's DPoP proof for want of the nonce it gives is errDPoPNonce.
func (c *Client) send(ctx context.Context, r *tokenRequest, nonceRetry bool) (response, error) {
	if r.cert != nil {
		// The handshake finds the certificate in the context: see
		// presentCertificate.
		ctx = context.WithValue(ctx, presentedKey{}, r.cert)
	}
	if claims, ok := jwtcache.ClaimsChallenge(ctx); ok {
		// A resource server's claims challenge, which the token must
		// satisfy (OpenID Connect's claims parameter, as Microsoft Entra ID
		// takes it on token requests).
		r.form.Set("claims", claims)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, strings.NewReader(r.form.Encode()))
	if err != nil {
		return response{}, fmt.Errorf("provider: token request: %w", err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if r.dpop != nil {
		proof, err := r.dpop.proof(http.MethodPost, req.URL, "")
		if err != nil {
			return response{}, err
		}
		req.Header.Set("DPoP", proof)
	}
	// Whether the request was sent tells a response lost in transit (the
	// provider may have acted on it) from a request that never left.
	var sent atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { sent.Store(info.Err == nil) },
	}))
	resp, err := r.client.Do(req)
	if err != nil {
		// A url.Error: the endpoint's URL and the transport's reason,
		// never the body.
		if sent.Load() {
			err = &lostError{err}
		}
		if r.cert != nil {
			return response{}, fmt.Errorf("provider: token request over mutual TLS: %w", err)
		}
		return response{}, fmt.Errorf("provider: token request: %w", err)
	}
	defer resp.Body.Close()
	data, readErr := readLimited(resp.Body)
	// A DPoP nonce is kept from any response.
	if r.dpop != nil && r.dpop.keepNonce(req.URL, resp.Header) && nonceRetry && useDPoPNonce(resp.StatusCode, data) {
		return response{}, errDPoPNonce
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return response{}, r.certificateHint(r.errorResponse(resp.StatusCode, data, readErr))
	}
	if errors.Is(readErr, errTooLarge) {
		return response{}, fmt.Errorf("provider: token response: %w", readErr)
	}
	if readErr != nil {
		return response{}, fmt.Errorf("provider: token response: %w", &lostError{readErr})
	}
	iss, err := r.tokenResponse(resp.StatusCode, data, c.cfg.maxLifetime)
	if e := (*Error)(nil); errors.As(err, &e) {
		err = r.certificateHint(err)
	}
	return iss, err
}

// lostError is the error of a request that was sent, and whose response was
// lost: the connection broke, or timed out, before it was read. The provider
// may have acted on the request.
type lostError struct{ err error }

func (e *lostError) Error() string { return "sent, but the response was lost: " + e.err.Error() }
func (e *lostError) Unwrap() error { return e.err }

// useDPoPNonce reports whether a token endpoint's response, with status and
// body data, refused a DPoP proof for want of a nonce (RFC 9449, section 8).
func useDPoPNonce(status int, data []byte) bool {
	if status != http.StatusBadRequest && status != http.StatusUnauthorized {
		return false
	}
	var resp struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(data, &resp) == nil && resp.Error == "use_dpop_nonce"
}

// tokenType is the token_type that r asks for: DPoP with a proof, else
// Bearer.
func (r *tokenRequest) tokenType() string {
	if r.dpop != nil {
		return "DPoP"
	}
	return "Bearer"
}

// tokenResponse reads a successful token response (RFC 6749, section 5.1).
func (r *tokenRequest) tokenResponse(status int, data []byte, maxLifetime time.Duration) (response, error) {
	var resp struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		IssuedType  string          `json:"issued_token_type"` // RFC 8693's
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Scope       string          `json:"scope"`
		Refresh     string          `json:"refresh_token"`
		// Some providers (GitHub's, for one) answer errors with 200 OK.
		Error       string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return response{}, fmt.Errorf("provider: token response: %w", jsonError(err))
	}
	if resp.Error != "" {
		return response{}, r.oauthError(status, resp.Error, resp.Description, resp.URI)
	}
	if resp.AccessToken == "" {
		return response{}, errors.New("provider: token response: no access_token")
	}
	r.redact(resp.AccessToken, resp.Refresh)
	accept := r.accept
	if accept == nil {
		accept = bearerOnly
	}
	if err := accept(r, resp.TokenType, resp.IssuedType); err != nil {
		return response{}, err
	}
	life, err := r.expiresIn(resp.ExpiresIn, maxLifetime)
	if err != nil {
		return response{}, err
	}
	iss := jwtcache.Issued{Token: resp.AccessToken, ExpiresIn: life, Scope: resp.Scope}
	if r.cert != nil {
		if err := r.cert.check(iss.Token); err != nil {
			return response{}, err
		}
	}
	if r.dpop != nil {
		if c, isJWT := peekClaims(iss.Token); isJWT && c.Jkt != "" && c.Jkt != r.dpop.thumb {
			return response{}, fmt.Errorf("%w: the DPoP token is bound to another key (cnf.jkt)", ErrTokenType)
		}
	}
	return response{Issued: r.capLifetime(iss), refresh: resp.Refresh}, nil
}

// bearerOnly is the accept of a request for an access token: the token must
// be a Bearer token, or with DPoP a DPoP token.
func bearerOnly(r *tokenRequest, tokenType, _ string) error {
	if !strings.EqualFold(tokenType, r.tokenType()) {
		return fmt.Errorf("%w: %q", ErrTokenType, r.clean(tokenType, 32))
	}
	return nil
}

// capLifetime caps iss's lifetime to end at r.notAfter, if r has a bound:
// its expires_in is shortened; without one, a JWT gets the time left as its
// ExpiresIn, which the cache takes beside its exp. An opaque token without
// expires_in keeps none, and is passed through uncached: the bound limits
// its life, but is no lifetime. The time left is counted from r.now, before
// the request, as a cache counts ExpiresIn from before its fetch: a token
// that arrives after the bound is expired on arrival.
func (r *tokenRequest) capLifetime(iss jwtcache.Issued) jwtcache.Issued {
	if r.notAfter.IsZero() {
		return iss
	}
	left := max(r.notAfter.Sub(r.now), time.Nanosecond) // zero would be none
	if iss.ExpiresIn > left {
		iss.ExpiresIn = left
	} else if _, isJWT := peekClaims(iss.Token); iss.ExpiresIn == 0 && isJWT {
		iss.ExpiresIn = left
	}
	return iss
}

// claims are the claims of a JWT that this package reads without verifying
// it, each to shorten a lifetime or to refuse a token, never to trust one.
type claims struct {
	// Expiry is the exp claim; zero if there is none, or it is no number.
	Expiry time.Time
	// X5t is the cnf claim's x5t#S256 (RFC 8705, section 3.1): the
	// thumbprint of the certificate the token is bound to.
	X5t string
	// Jkt is the cnf claim's jkt (RFC 9449, section 6.1): the thumbprint
	// of the DPoP key the token is bound to.
	Jkt string
}

// peekClaims reads the claims of token, a JWS in compact serialization,
// without verifying its signature, and reports whether it is one: three
// base64url segments, the second a JSON object.
func peekClaims(token string) (claims, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return claims{}, false
	}
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return claims{}, false
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return claims{}, false
	}
	// A claim of an unexpected type (an exp that is no number, a cnf that
	// is no object) is taken as absent.
	var c claims
	var exp float64
	if raw := obj["exp"]; string(raw) != "null" && json.Unmarshal(raw, &exp) == nil {
		// Clamped to what time.Unix takes: before 1970 is long expired,
		// past the year 36812 as good as never.
		sec, frac := math.Modf(min(max(exp, 0), 1<<40))
		c.Expiry = time.Unix(int64(sec), int64(frac*1e9))
	}
	var cnf struct {
		X5t string `json:"x5t#S256"`
		Jkt string `json:"jkt"`
	}
	if json.Unmarshal(obj["cnf"], &cnf) == nil {
		c.X5t, c.Jkt = cnf.X5t, cnf.Jkt
	}
	return c, true
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
	if errors.Is(err, strconv.ErrRange) && math.IsInf(secs, 1) {
		secs, err = math.MaxFloat64, nil // more than MaxLifetime: capped below
	}
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

// clean returns s, from the provider, fit for an error message: control and
// invalid characters dropped, the secrets the request carried replaced by
// "[redacted]", and at most limit bytes long.
func (r *tokenRequest) clean(s string, limit int) string {
	return clean.Text(s, limit, r.secrets...)
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

// readLimited reads r to its end, or fails if it holds more than maxResponse
// bytes.
// errTooLarge is readLimited's error for a response larger than maxResponse:
// an answer received, not one lost.
var errTooLarge = fmt.Errorf("the response is larger than %d bytes", maxResponse)

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponse {
		return nil, errTooLarge
	}
	return bytes.TrimSpace(data), nil
}
