package jwtcache

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/challenge"
	"github.com/seed7aeb0c6e/jwtcache/internal/engine"
	"github.com/seed7aeb0c6e/jwtcache/internal/loopback"
)

// Transport is an [http.RoundTripper] that puts a cached token on each
// request, as "Authorization: Bearer <token>" or by another [Scheme] (DPoP),
// and acts on what the server answers (see below): on a plain 401, it drops
// the token and retries once with a fresh one.
//
// It sets the header on a clone of the request, never on the caller's, and
// leaves alone a request that carries its own Authorization header. It sends
// the token only where it belongs: to the hosts given with [Hosts], if any;
// never on a redirect chain that leaves, even for a hop, the scheme, host
// and port of the request that started it; and never over plain HTTP, but to
// a loopback host (unless [InsecureAllowPlainHTTP]): such a request fails
// with [ErrInsecureRequest], unsent. A request it cannot get a token for fails
// with that error, unsent.
//
// It reads the challenges of a 401 or 403 response's WWW-Authenticate header
// (RFC 9110, section 11.6.1), by the rule that package jwtgrpc's client
// interceptors follow too, and sends a request again at most once:
//   - invalid_token (RFC 6750), or a 401 that says nothing more: the token is
//     dropped, if it is still the cached one, and the request is sent again
//     with a fresh token, if one different from the rejected one is to be had;
//   - insufficient_claims with a claims parameter (a claims challenge, as
//     Microsoft Entra ID's continuous access evaluation sends): a fresh token
//     is fetched with the claims (see [ClaimsChallenge]) and the request sent
//     again with it; the token stays cached until it arrives, and if none
//     does, the caller gets the response as it came;
//   - use_dpop_nonce (RFC 9449), with a DPoP-Nonce header: sent again with
//     the same token and a proof with the nonce, if the Scheme took it;
//   - insufficient_scope (RFC 6750) and insufficient_user_authentication
//     (RFC 9470): no token of the cache can do better, so the request is not
//     sent again and the caller gets a [*ChallengeError] instead of the
//     response.
//
// A request whose body cannot be sent again (it has one and no GetBody) is
// not retried: the caller gets the response as it came (but the token was
// dropped all the same, on invalid_token). A token rejected on the retry is
// dropped too, for the next request to replace; a server that rejects every
// token thus makes the cache back off (see [ErrRejected]).
type Transport struct {
	base   http.RoundTripper
	scheme Scheme
	// The source of the tokens: cache for NewTransport; m and key for
	// NewMapTransport, whose requests each get the source of their key (a
	// mapKey), the key function called once per request. Written by the
	// constructor and only read after.
	cache      *Cache
	m          *CacheMap
	key        func(*http.Request) (string, error)
	hosts      []string // normalized, see Hosts
	restricted bool     // Hosts was given: only hosts may get the token
	plainHTTP  bool     // InsecureAllowPlainHTTP
	// err is the misuse found at construction (a nil cache, say), which
	// every request returns, unsent.
	err error
	// logger is the cache's (or the map's keys'); dropped rate-limits its
	// warnings of requests sent without their token.
	logger  *slog.Logger
	dropped dropLog
}

var _ http.RoundTripper = (*Transport)(nil)

// Scheme is how a [Transport] puts a token on a request, and reads what the
// server answers to it. The default is the Bearer scheme (RFC 6750); package
// provider's DPoP is the other (RFC 9449). A Scheme must be safe for
// concurrent use.
type Scheme interface {
	// Authorize sets the credentials of req, the transport's own clone of a
	// request, for token: its Authorization header, and any other (a DPoP
	// proof). An error fails the request, unsent; it must not carry the
	// token.
	Authorize(req *http.Request, token string) error
	// Observe is given every response to a request that Authorize
	// authorized, before the transport acts on it; it reports whether the
	// request should be sent again with the same token, because the
	// response asks only for something Authorize will now add (a DPoP
	// nonce). It must not read or close the body.
	Observe(req *http.Request, resp *http.Response) (again bool)
}

// bearer is the Bearer scheme (RFC 6750), the default.
type bearer struct{}

func (bearer) Authorize(req *http.Request, token string) error {
	req.Header.Set("Authorization", "Bearer "+token)
	return nil
}

func (bearer) Observe(*http.Request, *http.Response) bool { return false }

// TransportOption configures a [Transport].
type TransportOption interface {
	applyTransport(*Transport)
}

// transportOptionFunc adapts a function to [TransportOption].
type transportOptionFunc func(*Transport)

func (f transportOptionFunc) applyTransport(t *Transport) { f(t) }

// Hosts restricts the token to requests for the given hosts: a host name
// ("api.example.com") matches it on any port, a host and port
// ("api.example.com:8443", "[::1]:8443") only on that port. Names are compared
// without regard to case or a trailing dot. Requests for other hosts are sent
// without a token (their servers will likely answer 401), and a warning
// naming the host is logged, at most once a minute per host; Hosts with no
// host (an empty list from configuration, say) lets no request have one. The default is every host the transport is used
// for; a client that may reach other hosts (through links, redirects, or user
// input) should name them.
func Hosts(hosts ...string) TransportOption {
	return transportOptionFunc(func(t *Transport) {
		t.restricted = true
		for _, h := range hosts {
			// An entry with no host in it (empty, or malformed) matches
			// nothing: it must not match a request without a host.
			if host, port, err := net.SplitHostPort(h); err == nil && normalizeHost(host) != "" {
				t.hosts = append(t.hosts, net.JoinHostPort(normalizeHost(host), port))
			} else if n := normalizeHost(h); err != nil && n != "" && !strings.ContainsAny(n, "[]/") {
				t.hosts = append(t.hosts, normalizeHost(h))
			}
		}
	})
}

// AuthScheme makes the transport put its token on requests by s instead of
// the Bearer scheme: package provider's DPoP, say. A nil s is the Bearer
// scheme.
func AuthScheme(s Scheme) TransportOption {
	return transportOptionFunc(func(t *Transport) { t.scheme = s })
}

// InsecureAllowPlainHTTP lets the transport send its token over plain HTTP to
// any host, where anyone on the path can read it and use it. It is meant for
// a network that TLS cannot reach (a sidecar on a pod's own interface, a
// test); the default refuses with [ErrInsecureRequest], but for loopback
// hosts.
func InsecureAllowPlainHTTP() TransportOption {
	return transportOptionFunc(func(t *Transport) { t.plainHTTP = true })
}

// NewTransport returns a transport that sends c's token on requests made
// through base. A nil base is [http.DefaultTransport]. A nil c is a mistake:
// the transport logs it at once, and every request fails, unsent, with an
// error wrapping [ErrInvalid].
func NewTransport(c *Cache, base http.RoundTripper, opts ...TransportOption) *Transport {
	t := &Transport{base: base, cache: c}
	if c == nil {
		t.err = fmt.Errorf("%w: NewTransport given a nil *Cache", ErrInvalid)
	} else {
		t.logger = c.cfg.logger
	}
	return newTransport(t, opts)
}

// NewMapTransport returns a transport that sends, on each request made through
// base, the token of the key that key returns for it: a tenant from the
// request's context, say. key is called once per request; an error from it
// fails the request, unsent. A nil base is [http.DefaultTransport]. A nil m
// or key is a mistake: the transport logs it at once, and every request
// fails, unsent, with an error wrapping [ErrInvalid].
func NewMapTransport(m *CacheMap, key func(*http.Request) (string, error), base http.RoundTripper, opts ...TransportOption) *Transport {
	t := &Transport{base: base, m: m, key: key}
	switch {
	case m == nil:
		t.err = fmt.Errorf("%w: NewMapTransport given a nil *CacheMap", ErrInvalid)
	case key == nil:
		t.err = fmt.Errorf("%w: NewMapTransport given a nil key function", ErrInvalid)
	default:
		t.logger = newConfig(m.cfg.cacheOpts).logger
	}
	return newTransport(t, opts)
}

// WithKey returns a copy of ctx that carries key: the [CacheMap] key (a
// tenant, say) of the requests made with it, which [RequestKey] reads for
// [NewMapTransport].
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, requestKey{}, key)
}

// RequestKey is the key function of the common case for [NewMapTransport]:
// the key that [WithKey] put in the request's context. A request without one
// fails, unsent, with an error wrapping [ErrEmptyKey].
func RequestKey(r *http.Request) (string, error) {
	if k, _ := r.Context().Value(requestKey{}).(string); k != "" {
		return k, nil
	}
	return "", fmt.Errorf("%w: the request's context has none (see jwtcache.WithKey)", ErrEmptyKey)
}

// requestKey is the context key of WithKey.
type requestKey struct{}

func newTransport(t *Transport, opts []TransportOption) *Transport {
	for _, o := range opts {
		if o != nil {
			o.applyTransport(t)
		}
	}
	if t.scheme == nil {
		t.scheme = bearer{}
	}
	if t.logger == nil {
		t.logger = slog.Default()
	}
	if t.err != nil {
		t.logger.Error(t.err.Error())
	}
	return t
}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.err != nil {
		closeBody(req)
		return nil, t.err
	}
	if req.Header.Get("Authorization") != "" {
		return t.transport().RoundTrip(req)
	}
	if why := t.denied(req); why != "" {
		t.dropped.warn(t.logger, req.URL, why)
		return t.transport().RoundTrip(req)
	}
	if err := t.secure(req); err != nil {
		closeBody(req)
		return nil, err
	}
	if t.m == nil {
		return roundTrip(t, req, cacheSource{t.cache})
	}
	k, err := t.key(req)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("jwtcache: key for request: %w", err)
	}
	return roundTrip(t, req, mapKey{t.m, k})
}

// roundTrip sends req with a token of src, a request that may carry one,
// and acts on the answer by the rule of challenge.Handle. It takes src by
// type, as Handle does, so that a mapKey is not boxed for each request.
func roundTrip[S challenge.Source](t *Transport, req *http.Request, src S) (*http.Response, error) {
	ctx := req.Context()
	tok, err := src.Token(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, again, err := t.send(req, req.Body, tok)
	if err != nil {
		return nil, err
	}
	status := statusOf(resp.StatusCode)
	if status == challenge.Other {
		return resp, nil
	}
	// A refusal: Handle drops a rejected token (unless another request
	// already has), fetches a successor for a claims challenge (the token
	// stays cached meanwhile: other requests may not need the claims), and
	// says whether to send the request again, with which token: only if the
	// body can be sent again, and the token differs from the one refused.
	// Otherwise the caller gets the response as it came.
	v, next, ok := challenge.Handle(ctx, src, status, again, resp.Header.Values("Www-Authenticate"), tok, replayable(req))
	if v.Action == challenge.Refuse {
		drain(resp)
		return nil, newChallengeError(resp.StatusCode, v.Challenge, tok)
	}
	if !ok {
		return resp, nil
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	drain(resp)
	// The last try: what it answers, the caller gets (the Scheme still
	// sees it, to pick up a rotated nonce). A token it rejects is dropped
	// (Handle, told the request cannot be sent again), but not replaced
	// here: never a second retry.
	resp, _, err = t.send(req, body, next)
	if err == nil {
		if status := statusOf(resp.StatusCode); status != challenge.Other {
			challenge.Handle(ctx, src, status, false, resp.Header.Values("Www-Authenticate"), next, false)
		}
	}
	return resp, err
}

// send sends a clone of req with body and tok, and reports whether the
// scheme asks for it to be sent again with tok.
func (t *Transport) send(req *http.Request, body io.ReadCloser, tok string) (*http.Response, bool, error) {
	r := req.Clone(req.Context())
	r.Body = body
	if err := t.scheme.Authorize(r, tok); err != nil {
		if body != nil {
			body.Close()
		}
		return nil, false, fmt.Errorf("jwtcache: authorize request: %w", err)
	}
	resp, err := t.transport().RoundTrip(r)
	if err != nil {
		return nil, false, err
	}
	return resp, t.scheme.Observe(r, resp), nil
}

// statusOf returns what the challenge rule reads of an HTTP status.
func statusOf(code int) challenge.Status {
	switch code {
	case http.StatusUnauthorized:
		return challenge.Unauthorized
	case http.StatusForbidden:
		return challenge.Forbidden
	}
	return challenge.Other
}

// cacheSource is a Cache as the challenge rule's Source. Cache cannot be one
// itself: the Source's method names are exported (its interface is another
// package's), and Cache has its own Token and Invalidate, of other
// signatures, and keeps renew out of its API.
type cacheSource struct{ c *Cache }

func (s cacheSource) Token(ctx context.Context) (string, error) { return s.c.EnsureToken(ctx) }

func (s cacheSource) Invalidate(token string) bool { return s.c.InvalidateToken(token) }

func (s cacheSource) Renew(ctx context.Context, token string) (string, error) {
	t, err := s.c.renew(ctx, token)
	return t.Value, err
}

// mapKey is one key of a CacheMap as the challenge rule's Source: the source
// of a request of NewMapTransport, its key resolved once.
type mapKey struct {
	m   *CacheMap
	key string
}

func (s mapKey) Token(ctx context.Context) (string, error) { return s.m.EnsureToken(ctx, s.key) }

func (s mapKey) Invalidate(token string) bool { return s.m.InvalidateToken(s.key, token) }

func (s mapKey) Renew(ctx context.Context, token string) (string, error) {
	t, err := s.m.renew(ctx, s.key, token)
	return t.Value, err
}

func init() {
	// jwtgrpc's interceptors follow the challenge rule on a Cache or a
	// CacheMap too, and renew on a claims challenge: through these, not
	// through an exported renew (see challenge.RenewCache).
	challenge.RenewCache = (*Cache).renew
	challenge.RenewMap = (*CacheMap).renew
}

// secure returns ErrInsecureRequest, with the request's host, unless req is
// one a token may go on: HTTPS, or plain HTTP to a loopback host, or anything
// with InsecureAllowPlainHTTP.
func (t *Transport) secure(req *http.Request) error {
	switch strings.ToLower(req.URL.Scheme) {
	case "https", "wss":
		return nil
	}
	if t.plainHTTP || loopback.Host(req.URL.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w: refused to send one to %s://%s", ErrInsecureRequest, strings.ToLower(req.URL.Scheme), req.URL.Host)
}

// CloseIdleConnections closes the idle connections of the base transport, if
// it has such a method.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.transport().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *Transport) transport() http.RoundTripper {
	if t.base != nil {
		return t.base
	}
	return http.DefaultTransport
}

// denied says why req may not carry the token, or "" if it may: its host
// must be one of the transport's hosts (if Hosts was given), and, if req
// follows redirects, every request of the chain must have had req's scheme,
// host and port. The client sets req.Response on a redirected request, and
// the base transport sets that response's Request to the request before; a
// chain it cannot follow to its start gets no token.
func (t *Transport) denied(req *http.Request) string {
	if req.URL == nil {
		return "the request has no URL"
	}
	want := origin(req.URL)
	for r := req; r.Response != nil; r = r.Response.Request {
		prev := r.Response.Request
		if prev == nil || prev.URL == nil || origin(prev.URL) != want {
			return "a redirect led to another origin"
		}
	}
	if !t.restricted {
		return ""
	}
	hostPort, name := canonicalHost(req.URL), normalizeHost(req.URL.Hostname())
	for _, h := range t.hosts {
		if h == hostPort || h == name {
			return ""
		}
	}
	return "the host is not among the transport's Hosts"
}

// dropLog rate-limits the warnings of requests sent without their token:
// one a minute per host, for the last maxDropHosts hosts.
type dropLog struct {
	mu    sync.Mutex // guards hosts
	hosts map[string]*engine.Every
}

// maxDropHosts bounds the hosts a dropLog remembers; past it, it starts
// afresh (so a client of many hosts may warn more often, never unboundedly).
const maxDropHosts = 256

// warn logs, at most once a minute for u's host, that a request to u was
// sent without the token, and why.
func (d *dropLog) warn(l *slog.Logger, u *url.URL, why string) {
	host := "?"
	if u != nil {
		host = u.Host
	}
	d.mu.Lock()
	if d.hosts == nil || len(d.hosts) >= maxDropHosts {
		d.hosts = map[string]*engine.Every{}
	}
	e := d.hosts[host]
	if e == nil {
		e = &engine.Every{}
		d.hosts[host] = e
	}
	d.mu.Unlock()
	if e.Allow(time.Now(), time.Minute) {
		l.Warn("jwtcache: request sent without its token", "host", host, "reason", why)
	}
}

// origin returns u's scheme, host and port, the port being the scheme's
// default if u names none: https://a and https://a:443 are one origin,
// http://a and https://a two.
func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + canonicalHost(u)
}

// canonicalHost returns u's host, normalized, with its port (the scheme's
// default if u names none).
func canonicalHost(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https", "wss":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(normalizeHost(u.Hostname()), port)
}

// normalizeHost lower-cases a host name and drops a trailing dot and IPv6
// brackets.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// replayable reports whether req's body can be sent a second time.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// drain reads a little of resp's body, so that its connection can be reused,
// and closes it.
func drain(resp *http.Response) {
	const maxDrain = 4 << 10
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
}

// closeBody closes req's body, as a RoundTripper must even when it sends
// nothing.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
