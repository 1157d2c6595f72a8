package jwtcache_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache"
)

// FuzzParse hands the cache any string as the token function's answer. The
// cache must not panic, must never hand out a token with an error, and must
// cache only a token with an exp it can read, for no longer than that exp
// allows; anything else is passed through uncached (or, with
// RejectUnparsable, refused). Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	now := newClock().Now()
	f.Add(minter.Mint(now, time.Hour, nil), false)
	f.Add(minter.Mint(now.Add(-59*time.Minute), time.Hour, nil), false) // within the headroom
	f.Add(minter.Mint(now, 0, map[string]any{jwt.ExpirationKey: nil}), true)

	f.Fuzz(func(t *testing.T, raw string, reject bool) {
		clk := newClock()
		var calls atomic.Int64
		c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil), jwtcache.RejectUnparsable(reject),
			jwtcache.TokenFunction(func(context.Context) (string, error) {
				calls.Add(1)
				return raw, nil
			}))
		ctx := context.Background()
		// What the cache may read from raw: the claims jwx finds without
		// verification, as the cache parses by default.
		exp, parsed := time.Time{}, false
		if tok, err := jwt.ParseString(raw, jwt.WithVerify(false), jwt.WithValidate(false)); err == nil {
			exp, parsed = tok.Expiration(), true
		}

		tok, err := c.Token(ctx)
		if err != nil {
			if tok != (jwtcache.Token{}) {
				t.Fatalf("Token() = %+v with error %v; want no token", tok, err)
			}
			switch {
			case errors.Is(err, jwtcache.ErrEmptyToken):
				if raw != "" {
					t.Fatalf("Token() error = %v for a non-empty token", err)
				}
			case errors.Is(err, jwtcache.ErrExpired):
				if exp.IsZero() {
					t.Fatalf("Token() error = %v for a token without exp", err)
				}
			case errors.Is(err, jwtcache.ErrUnparsable):
				if !reject || parsed {
					t.Fatalf("Token() error = %v (RejectUnparsable %v, token parses %v)", err, reject, parsed)
				}
			default: // ErrPanic among them: the parser panicked
				t.Fatalf("Token() error = %v; want ErrEmptyToken, ErrExpired or ErrUnparsable", err)
			}
			return
		}
		if tok.Value != raw {
			t.Fatalf("Token().Value = %q; want the token function's %q", tok.Value, raw)
		}

		if tok.Expiry.IsZero() {
			// Passed through uncached: only a token without a readable exp.
			if !exp.IsZero() {
				t.Fatalf("token with exp %v passed through uncached", exp)
			}
			if reject && !parsed {
				t.Fatalf("unparsable token passed through with RejectUnparsable")
			}
			if again, err := c.Token(ctx); err != nil || again.Value != raw || calls.Load() != 2 {
				t.Fatalf("second Token() = %+v, %v after %d calls; want the token passed through again by a second call", again, err, calls.Load())
			}
			return
		}

		// Cached: the token has an exp, and the cache honours it.
		if exp.IsZero() {
			t.Fatalf("Token().Expiry = %v for a token without a readable exp", tok.Expiry)
		}
		if !tok.Expiry.After(clk.Now()) {
			t.Fatalf("Token().Expiry = %v; want after now (%v)", tok.Expiry, clk.Now())
		}
		if tok.Expiry.After(exp) {
			t.Fatalf("Token().Expiry = %v; want no later than exp %v", tok.Expiry, exp)
		}
		if again, err := c.Token(ctx); err != nil || again != tok || calls.Load() != 1 {
			t.Fatalf("second Token() = %+v, %v after %d calls; want the cached token and no new call", again, err, calls.Load())
		}
		// At its expiry it is gone, though the token function hands it back.
		clk.Advance(tok.Expiry.Sub(clk.Now()))
		if late, err := c.Token(ctx); err == nil && (late.Value != raw || !late.Expiry.After(clk.Now())) {
			t.Fatalf("Token() at %v = %+v; want an error or an unexpired token", clk.Now(), late)
		}
	})
}

// sentRequest is what a fake base transport saw.
type sentRequest struct {
	req    *http.Request
	header http.Header // a copy, taken when the request was sent
}

// recordingTransport is a base RoundTripper that records each request and
// answers with status, without any network.
type recordingTransport struct {
	status int

	mu sync.Mutex
	// guards sent
	sent []sentRequest
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.sent = append(rt.sent, sentRequest{req: req, header: req.Header.Clone()})
	rt.mu.Unlock()
	return &http.Response{StatusCode: rt.status, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func (rt *recordingTransport) requests() []sentRequest {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]sentRequest(nil), rt.sent...)
}

// requestState is what of a request the transport must leave as it was.
type requestState struct {
	method, url, host string
	header            http.Header
	response          *http.Response
}

func stateOf(req *http.Request) requestState {
	return requestState{req.Method, req.URL.String(), req.Host, req.Header.Clone(), req.Response}
}

// tokenAllowed is the rule of [jwtcache.Hosts] and of redirects, written from
// their documentation: after redirects, only if every request of the chain
// had the scheme, host and port (the scheme's default if none) of req, and
// never when the chain cannot be followed to its start; with hosts, only to a
// listed host name on any port, or a listed host and port. Host names are
// compared without regard to case, a trailing dot or IPv6 brackets.
//
// The documentation does not say what an entry that is neither (such as
// "[:80", a bracket short) matches: must is whether req must get the token,
// reading such entries as matching nothing, and may whether it may, reading
// them as a host and port as well as a name.
func tokenAllowed(hosts []string, req *http.Request) (must, may bool) {
	norm := func(h string) string { return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".") }
	hostPort := func(u *url.URL) string {
		port := u.Port()
		if port == "" {
			port = "80"
			if s := strings.ToLower(u.Scheme); s == "https" || s == "wss" {
				port = "443"
			}
		}
		return net.JoinHostPort(norm(u.Hostname()), port)
	}
	origin := func(u *url.URL) string { return strings.ToLower(u.Scheme) + "://" + hostPort(u) }
	for r := req; r.Response != nil; r = r.Response.Request {
		if r.Response.Request == nil || origin(r.Response.Request.URL) != origin(req.URL) {
			return false, false
		}
	}
	if hosts == nil {
		return true, true
	}
	for _, h := range hosts {
		// An entry with no host in it (empty, or only a port) matches
		// nothing, as Hosts documents.
		if host, port, err := net.SplitHostPort(h); err == nil {
			if norm(host) != "" && net.JoinHostPort(norm(host), port) == hostPort(req.URL) {
				return true, true
			}
		} else if n := norm(h); n != "" && !strings.ContainsAny(n, "[]/") && n == norm(req.URL.Hostname()) {
			return true, true
		} else if n != "" && n == hostPort(req.URL) {
			may = true
		}
	}
	return false, may
}

// FuzzTransportHeaders sends requests built from fuzzed URLs, Host headers,
// redirect chains, headers and Hosts lists through a Transport over a fake
// base transport. from lists the URLs the request was redirected from, first
// to last, separated by spaces; one that does not parse is a hop the chain
// cannot be followed through. hosts is a comma-separated list for Hosts; an
// empty one sets no Hosts option. The token must be sent exactly when the request has no
// Authorization header of its own and may carry it; it must go on a clone,
// leaving the caller's request as it was; and no token may be fetched for a
// request that does not carry it. With unauthorized, the server answers 401,
// and a request with the token is retried once with a new one. Seeds are in
// testdata/fuzz/FuzzTransportHeaders.
func FuzzTransportHeaders(f *testing.F) {
	now := newClock().Now()
	tokens := [2]string{minter.Mint(now, time.Hour, nil), minter.Mint(now, time.Hour, nil)}

	f.Fuzz(func(t *testing.T, rawURL, host, from, authName, authValue, hosts string, unauthorized bool) {
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		if err != nil {
			return
		}
		if host != "" {
			req.Host = host
		}
		if authName != "" {
			req.Header.Add(authName, authValue)
		}
		if from != "" {
			r := req
			hops := strings.Split(from, " ")
			for i := len(hops) - 1; i >= 0 && r != nil; i-- {
				prev, _ := http.NewRequest(http.MethodGet, hops[i], nil) // nil: a broken chain
				r.Response = &http.Response{StatusCode: http.StatusFound, Request: prev}
				r = prev
			}
		}
		var opts []jwtcache.TransportOption
		var allow []string
		if hosts != "" {
			allow = strings.Split(hosts, ",")
			opts = append(opts, jwtcache.Hosts(allow...))
		}

		clk := newClock()
		var calls atomic.Int64
		c := jwtcache.NewCache(jwtcache.Clock(clk.Now), jwtcache.Logger(nil),
			jwtcache.TokenFunction(func(context.Context) (string, error) {
				return tokens[(calls.Add(1)-1)%2], nil
			}))
		base := &recordingTransport{status: http.StatusOK}
		if unauthorized {
			base.status = http.StatusUnauthorized
		}
		before := stateOf(req)
		resp, err := jwtcache.NewTransport(c, base, opts...).RoundTrip(req)
		own := req.Header.Get("Authorization") != ""
		must, may := tokenAllowed(allow, req)
		plain := !strings.EqualFold(req.URL.Scheme, "https") && !strings.EqualFold(req.URL.Scheme, "wss") && !isLoopback(req.URL.Hostname())
		if err != nil {
			// Only a token for a request over plain HTTP to another host is
			// refused, before anything is fetched or sent.
			if !errors.Is(err, jwtcache.ErrInsecureRequest) || own || !may || !plain {
				t.Fatalf("RoundTrip() error = %v", err)
			}
			if n := len(base.requests()); n != 0 || calls.Load() != 0 {
				t.Fatalf("refused request: sent %d requests, fetched %d tokens; want none", n, calls.Load())
			}
			return
		}
		resp.Body.Close()
		if resp.StatusCode != base.status {
			t.Errorf("RoundTrip() status = %d; want the base's %d", resp.StatusCode, base.status)
		}
		if after := stateOf(req); !reflect.DeepEqual(after, before) {
			t.Fatalf("caller's request modified:\n got %+v\nwant %+v", after, before)
		}

		sent := base.requests()
		injected := len(sent) > 0 && sent[0].req != req
		switch {
		case own && injected:
			t.Fatalf("token sent on a request with its own Authorization header")
		case !own && must && !injected:
			t.Fatalf("token not sent; want it sent to %s", req.URL)
		case injected && !may:
			t.Fatalf("token sent to %s; want it only where it belongs", req.URL)
		case injected && plain:
			t.Fatalf("token sent over plain HTTP to %s; want ErrInsecureRequest", req.URL)
		}
		if !injected {
			if len(sent) != 1 || sent[0].req != req || calls.Load() != 0 {
				t.Fatalf("request without token: sent %d requests (the caller's: %v), fetched %d tokens; want the caller's request sent as is, no fetch",
					len(sent), len(sent) > 0 && sent[0].req == req, calls.Load())
			}
			return
		}
		want := 1
		if unauthorized {
			want = 2 // one retry, with the next token
		}
		if len(sent) != want || calls.Load() != int64(want) {
			t.Fatalf("sent %d requests, fetched %d tokens; want %d and %d", len(sent), calls.Load(), want, want)
		}
		for i, s := range sent {
			if s.req == req {
				t.Fatalf("request %d is the caller's, not a clone", i)
			}
			if got, want := s.header.Get("Authorization"), "Bearer "+tokens[i]; got != want {
				t.Errorf("request %d Authorization = %.20q…; want %.20q…", i, got, want)
			}
			other := s.header.Clone()
			other.Del("Authorization")
			mine := req.Header.Clone()
			mine.Del("Authorization")
			if !reflect.DeepEqual(other, mine) {
				t.Errorf("request %d headers = %v; want the caller's %v and the token", i, other, mine)
			}
			if s.req.URL.String() != req.URL.String() || s.req.Host != req.Host {
				t.Errorf("request %d to %s (Host %q); want %s (Host %q)", i, s.req.URL, s.req.Host, req.URL, req.Host)
			}
		}
	})
}

// isLoopback is the fuzz test's own reading of a loopback host, to which a
// token may go over plain HTTP.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback()
}
