package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/internal/loopback"
	"github.com/seed7aeb0c6e/jwtcache/verify/internal/jose"
)

// keySetResponse is what a fetch brought: a set, or a 304, with how long it
// may be used (zero: the server did not say) and its validators.
type keySetResponse struct {
	keys               map[string]jwk.Key // nil for a 304
	doc                []byte             // the document of keys
	notModified        bool
	ttl                time.Duration
	etag, lastModified string
}

// get fetches the set, conditionally when cur has one with validators, on
// ctx, the fetch's.
func (s *KeySet) get(ctx context.Context, cur *keySetSnapshot) (keySetResponse, error) {
	target, err := s.target(ctx)
	if err != nil {
		return keySetResponse{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return keySetResponse{}, fmt.Errorf("verify: fetch key set: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if cur.keys != nil {
		if cur.etag != "" {
			req.Header.Set("If-None-Match", cur.etag)
		}
		if cur.lastModified != "" {
			req.Header.Set("If-Modified-Since", cur.lastModified)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return keySetResponse{}, fmt.Errorf("verify: fetch key set: %w", err)
	}
	defer func() {
		// Drain a little, so that the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		_ = resp.Body.Close()
	}()
	res := keySetResponse{
		ttl:          s.cfg.ttl(resp.Header, s.now()),
		etag:         resp.Header.Get("ETag"),
		lastModified: resp.Header.Get("Last-Modified"),
	}
	switch {
	case resp.StatusCode == http.StatusNotModified && cur.keys != nil:
		res.notModified = true
		return res, nil
	case resp.StatusCode != http.StatusOK:
		return keySetResponse{}, fmt.Errorf("verify: fetch key set: status %d", resp.StatusCode)
	}
	if err := checkContentType(resp.Header.Get("Content-Type")); err != nil {
		return keySetResponse{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.maxResponseSize+1))
	if err != nil {
		return keySetResponse{}, fmt.Errorf("verify: fetch key set: read body: %w", err)
	}
	if int64(len(body)) > s.cfg.maxResponseSize {
		return keySetResponse{}, fmt.Errorf("%w: response larger than %d bytes", ErrKeySetRefused, s.cfg.maxResponseSize)
	}
	if res.keys, err = parseKeySet(body); err != nil {
		return keySetResponse{}, err
	}
	res.doc = body
	return res, nil
}

// checkContentType refuses a response that is not JSON.
func checkContentType(ct string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "application/jwk-set+json") {
		return nil
	}
	return fmt.Errorf("%w: content type %s is not JSON", ErrKeySetRefused, jose.Quote(ct))
}

// parseKeySet parses a JWK Set document (RFC 7517, section 5) into a map
// from kid to key, refusing the whole set if any key is private, symmetric,
// invalid, or lacks a kid, or if two keys share a kid. Keys of an unknown
// type are skipped, as section 5 asks. Errors name keys by index and kid,
// never by their material.
func parseKeySet(doc []byte) (map[string]jwk.Key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	if err := d.Decode(&set); err != nil {
		return nil, fmt.Errorf("%w: not a JWK set: %w", ErrKeySetRefused, jsonError(err))
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: not a JWK set: data after the document", ErrKeySetRefused)
	}
	keys := make(map[string]jwk.Key, len(set.Keys))
	for i, raw := range set.Keys {
		var hint struct {
			Kty string `json:"kty"`
		}
		if err := json.Unmarshal(raw, &hint); err != nil {
			return nil, fmt.Errorf("%w: key %d: not a JWK: %w", ErrKeySetRefused, i, jsonError(err))
		}
		switch jwa.KeyType(hint.Kty) {
		case jwa.RSA, jwa.EC, jwa.OKP:
		case jwa.OctetSeq:
			return nil, fmt.Errorf("%w: key %d is symmetric (oct)", ErrKeySetRefused, i)
		default:
			continue
		}
		k, err := jwk.ParseKey(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrKeySetRefused, i, jsonError(err))
		}
		kid := k.KeyID()
		if kid == "" {
			return nil, fmt.Errorf("%w: key %d has no kid", ErrKeySetRefused, i)
		}
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			return nil, fmt.Errorf("%w: key %d (kid %s) is private", ErrKeySetRefused, i, jose.Quote(kid))
		}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("%w: key %d (kid %s) is invalid", ErrKeySetRefused, i, jose.Quote(kid))
		}
		if _, dup := keys[kid]; dup {
			return nil, fmt.Errorf("%w: two keys with kid %s", ErrKeySetRefused, jose.Quote(kid))
		}
		keys[kid] = k
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrKeySetRefused)
	}
	return keys, nil
}

// jsonError strips what a JSON error may quote of the document: a syntax
// error keeps its offset, a type error its field; anything else is named only.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q has the wrong type", typ.Field)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("truncated JSON")
	}
	return errors.New("unparsable key")
}

// ksRefused reports whether err is a refusal.
func ksRefused(err error) bool { return errors.Is(err, ErrKeySetRefused) }

// ttl returns how long a response with header h, received at now, may be
// used: its Cache-Control max-age less its Age, or else its Expires less its
// Date (or now), clamped to [minTTL, maxTTL]; no-store and no-cache make it
// minTTL. It is zero if h says nothing (the caller then takes minTTL, or for
// a 304, the set's last lifetime).
func (c *keySetConfig) ttl(h http.Header, now time.Time) time.Duration {
	d, ok := freshness(h, now)
	if !ok {
		return 0
	}
	return min(max(d, c.minTTL), c.maxTTL)
}

// freshness returns the freshness lifetime that h gives (RFC 9111, section
// 4.2.1), and whether it gives one.
func freshness(h http.Header, now time.Time) (time.Duration, bool) {
	maxAge, sawMaxAge := time.Duration(0), false
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				maxAge, sawMaxAge = time.Duration(min(n, int64(math.MaxInt64/time.Second)))*time.Second, true
			}
		}
	}
	if sawMaxAge {
		if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
			maxAge -= time.Duration(min(age, int64(math.MaxInt64/time.Second))) * time.Second
		}
		return maxAge, true
	}
	if e := h.Get("Expires"); e != "" {
		exp, err := http.ParseTime(e)
		if err != nil {
			return 0, true // an invalid Expires is in the past (section 5.3)
		}
		date := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			date = d
		}
		return exp.Sub(date), true
	}
	return 0, false
}

// checkURL checks that u may be fetched: https, or http to a loopback host,
// and on the allowed hosts.
func (c *keySetConfig) checkURL(u *url.URL) error {
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return fmt.Errorf("%w: %s has no host", ErrKeySetRefused, u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback.Host(host) {
			return fmt.Errorf("%w: %s is not https (plain http is for loopback hosts only)", ErrKeySetRefused, u.Redacted())
		}
	default:
		return fmt.Errorf("%w: %s is not https", ErrKeySetRefused, u.Redacted())
	}
	if c.allowedHosts != nil && !c.allowedHosts[host] {
		return fmt.Errorf("%w: host %q is not allowed", ErrKeySetRefused, host)
	}
	return nil
}

// httpClient returns the client a KeySet fetches with: a copy of the
// configured one, with the redirect policy and the pins.
func (c *keySetConfig) httpClient() (*http.Client, error) {
	var hc http.Client
	if c.client != nil {
		hc = *c.client
	}
	hc.CheckRedirect = c.checkRedirect
	if len(c.pins) == 0 {
		return &hc, nil
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("verify: PinSPKI needs an *http.Transport, not %T", base)
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	next := t.TLSClientConfig.VerifyConnection
	pins := c.pins
	t.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := checkPins(cs, pins); err != nil {
			return err
		}
		if next != nil {
			return next(cs)
		}
		return nil
	}
	hc.Transport = t
	return &hc, nil
}

// checkPins checks that the server certificate's SubjectPublicKeyInfo
// hashes to one of pins.
func checkPins(cs tls.ConnectionState, pins [][sha256.Size]byte) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no server certificate to check the pin", ErrKeySetRefused)
	}
	sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
	for _, p := range pins {
		if p == sum {
			return nil
		}
	}
	return fmt.Errorf("%w: the server certificate's public key matches no pin", ErrKeySetRefused)
}

// checkRedirect is a KeySet client's CheckRedirect: at most maxRedirects,
// each to a URL the KeySet would accept, and none from https to http.
func (c *keySetConfig) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrKeySetRefused, maxRedirects)
	}
	if err := c.checkURL(req.URL); err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: redirect from https to %s", ErrKeySetRefused, req.URL.Redacted())
	}
	return nil
}
