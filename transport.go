package jwtcache

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Transport is an [http.RoundTripper] that sends a cached token as
// "Authorization: Bearer <token>" on each request, and retries once with a
// fresh token when the server answers 401 Unauthorized. The rejected token is
// dropped either way; a request whose body cannot be sent again (no GetBody)
// is not retried.
//
// It sets the header on a clone of the request, never on the caller's, and
// leaves alone a request that carries its own Authorization header. It sends
// the token only where it belongs: to the hosts given with [Hosts], if any,
// and never on a redirect chain that leaves, even for a hop, the scheme, host
// and port of the request that started it. A request it cannot get a token for fails with that error, unsent.
type Transport struct {
	base  http.RoundTripper
	token func(*http.Request) (string, error)
	// invalidate drops a token the server rejected, if it is still the
	// cached one, so that a burst of 401s causes one fetch.
	invalidate func(*http.Request, string) bool
	hosts      []string // normalized, see Hosts
	restricted bool     // Hosts was given: only hosts may get the token
}

var _ http.RoundTripper = (*Transport)(nil)

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
// without a token; Hosts with no host (an empty list from configuration, say)
// lets no request have one. The default is every host the transport is used
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

// NewTransport returns a transport that sends c's token on requests made
// through base. A nil base is [http.DefaultTransport].
func NewTransport(c *Cache, base http.RoundTripper, opts ...TransportOption) *Transport {
	return newTransport(base, opts,
		func(r *http.Request) (string, error) { return c.EnsureToken(r.Context()) },
		func(_ *http.Request, tok string) bool { return c.InvalidateToken(tok) })
}

// NewMapTransport returns a transport that sends, on each request made through
// base, the token of the key that key returns for it: a tenant from the
// request's context, say. An error from key fails the request, unsent. A nil
// base is [http.DefaultTransport].
func NewMapTransport(m *CacheMap, key func(*http.Request) (string, error), base http.RoundTripper, opts ...TransportOption) *Transport {
	return newTransport(base, opts,
		func(r *http.Request) (string, error) {
			k, err := key(r)
			if err != nil {
				return "", fmt.Errorf("jwtcache: key for request: %w", err)
			}
			return m.EnsureToken(r.Context(), k)
		},
		func(r *http.Request, tok string) bool {
			k, err := key(r)
			return err == nil && m.InvalidateToken(k, tok)
		})
}

func newTransport(base http.RoundTripper, opts []TransportOption, token func(*http.Request) (string, error), invalidate func(*http.Request, string) bool) *Transport {
	t := &Transport{base: base, token: token, invalidate: invalidate}
	for _, o := range opts {
		if o != nil {
			o.applyTransport(t)
		}
	}
	return t
}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" || !t.allowed(req) {
		return t.transport().RoundTrip(req)
	}
	tok, err := t.token(req)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.transport().RoundTrip(withToken(req, req.Body, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}

	// 401: the server rejected the token. Drop it (unless another request
	// already has), and retry once with a fresh one if the body can be sent
	// again. Otherwise, or if no different token is to be had, the caller
	// gets the 401 as it came.
	t.invalidate(req, tok)
	if !replayable(req) {
		return resp, nil
	}
	fresh, err := t.token(req)
	if err != nil || fresh == tok {
		return resp, nil
	}
	body := req.Body
	if req.GetBody != nil {
		if body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	drain(resp)
	return t.transport().RoundTrip(withToken(req, body, fresh))
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

// allowed reports whether req may carry the token: its host is one of the
// transport's hosts (if Hosts was given), and, if req follows redirects, every
// request of the chain had req's scheme, host and port. The client sets
// req.Response on a redirected request, and the base transport sets that
// response's Request to the request before; a chain it cannot follow to its
// start gets no token.
func (t *Transport) allowed(req *http.Request) bool {
	if req.URL == nil {
		return false
	}
	want := origin(req.URL)
	for r := req; r.Response != nil; r = r.Response.Request {
		prev := r.Response.Request
		if prev == nil || prev.URL == nil || origin(prev.URL) != want {
			return false
		}
	}
	if !t.restricted {
		return true
	}
	hostPort, name := canonicalHost(req.URL), normalizeHost(req.URL.Hostname())
	for _, h := range t.hosts {
		if h == hostPort || h == name {
			return true
		}
	}
	return false
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

// withToken returns a clone of req with body and the bearer token.
func withToken(req *http.Request, body io.ReadCloser, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Body = body
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
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
