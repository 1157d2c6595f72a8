package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
)

// Client authentication methods of mutual TLS (RFC 8705, section 2).
const (
	methodTLSClientAuth           = "tls_client_auth"
	methodSelfSignedTLSClientAuth = "self_signed_tls_client_auth"
)

// TLSClientAuth authenticates with a client certificate that a certificate
// authority issued, presented in the TLS handshake of each token request
// (tls_client_auth, RFC 8705, section 2.1): the provider matches its subject
// to the one registered for the client id, which is sent as the client_id
// parameter. The request goes to the provider's mtls_endpoint_aliases
// token_endpoint if it lists one (RFC 8705, section 5), to its token
// endpoint otherwise.
//
// cert is called for every token request, and must be safe for concurrent
// use: it returns the certificate in use now, with its chain and private
// key, so that a rotated certificate is presented as soon as cert returns
// it. It must not return nil, a certificate without a private key, or one
// that has expired by the Client's clock; an error from it fails the token
// request before anything is sent, wrapped. It is called again when the
// response arrives: if it returns another certificate by then, the request
// is made again, once, with that one.
//
// The certificate is presented on a transport of the Client's own: a clone
// of the [HTTPClient]'s, which must be an *http.Transport (the default is)
// that dials TLS itself, not through DialTLSContext. The clone keeps its
// settings, the server's root CAs (TLSClientConfig.RootCAs) among them, but
// opens a connection for each token request and resumes no TLS session, so
// that the certificate of each handshake is the one cert returned for that
// request; token requests are rare, and a handshake costs a round trip and
// a signature. Discovery does not present the certificate.
//
// The provider may bind the tokens it issues to the certificate (RFC 8705,
// section 3), which the client must then present to the resource server too.
// A token is never cached past the certificate's NotAfter, and a JWT access
// token bound (cnf x5t#S256) to a certificate other than the one presented
// is an error. When cert starts returning another certificate, the tokens
// issued with the old one must go: see [Rotated].
func TLSClientAuth(id string, cert func() (*tls.Certificate, error)) ClientAuth {
	return &tlsClientAuth{id: id, cert: cert, meth: methodTLSClientAuth}
}

// SelfSignedTLSClientAuth authenticates with a self-signed client
// certificate (self_signed_tls_client_auth, RFC 8705, section 2.2), which
// the provider matches to the keys or certificates registered for the client
// id. It is [TLSClientAuth] in every other respect.
func SelfSignedTLSClientAuth(id string, cert func() (*tls.Certificate, error)) ClientAuth {
	return &tlsClientAuth{id: id, cert: cert, meth: methodSelfSignedTLSClientAuth}
}

// tlsClientAuth is TLSClientAuth and SelfSignedTLSClientAuth.
type tlsClientAuth struct {
	id   string
	cert func() (*tls.Certificate, error)
	meth string
}

func (a *tlsClientAuth) method() string { return a.meth }

func (a *tlsClientAuth) check(m *Metadata) error {
	switch {
	case a.id == "":
		return fmt.Errorf("provider: %s: empty client id", a.meth)
	case a.cert == nil:
		return fmt.Errorf("provider: %s: no certificate function", a.meth)
	}
	if alias := m.MTLSEndpointAliases["token_endpoint"]; alias != "" {
		if err := discovery.CheckURL("mtls_endpoint_aliases token_endpoint", alias); err != nil {
			return err
		}
	}
	return checkMethod(m, a.meth)
}

func (a *tlsClientAuth) authenticate(_ context.Context, r *tokenRequest) error {
	if r.mtls == nil {
		return errors.New("the Client has no mutual TLS transport")
	}
	cert, err := a.cert()
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	p, err := newPresented(cert, r.now)
	if err != nil {
		return err
	}
	p.source = a.cert
	// RFC 8705, section 2: the client_id parameter is required, as no
	// other credential names the client.
	r.form.Set("client_id", a.id)
	if alias := r.meta.MTLSEndpointAliases["token_endpoint"]; alias != "" {
		r.endpoint = alias
	}
	r.client = r.mtls
	r.cert = p
	r.bound(p.notAfter)
	return nil
}

// presented is the client certificate that one token request presents, and
// what its handshake did with it.
type presented struct {
	cert     *tls.Certificate
	x5t      string    // SHA-256 thumbprint of the leaf, base64url (RFC 8705, section 3.1)
	notAfter time.Time // the leaf's
	// source is the certificate function that returned cert.
	source func() (*tls.Certificate, error)
	// asked is set by the handshake if the server asked for a client
	// certificate, and read after the response.
	asked atomic.Bool
}

// newPresented checks cert, which the certificate function returned, at now.
func newPresented(cert *tls.Certificate, now time.Time) (*presented, error) {
	switch {
	case cert == nil:
		return nil, errors.New("client certificate: the certificate function returned none")
	case len(cert.Certificate) == 0:
		return nil, errors.New("client certificate: the tls.Certificate holds no certificate")
	case cert.PrivateKey == nil:
		return nil, errors.New("client certificate: the tls.Certificate has no private key")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
	}
	if !now.Before(leaf.NotAfter) {
		return nil, fmt.Errorf("client certificate: it expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	sum := sha256.Sum256(cert.Certificate[0])
	return &presented{cert: cert, x5t: base64.RawURLEncoding.EncodeToString(sum[:]), notAfter: leaf.NotAfter}, nil
}

// check refuses a JWT access token bound to a certificate other than p's,
// which the resource server would refuse too.
func (p *presented) check(token string) error {
	if cl, ok := peekClaims(token); ok && cl.X5t != "" && cl.X5t != p.x5t {
		return errors.New("provider: token response: the token is bound (cnf x5t#S256) to a certificate other than the one presented")
	}
	return nil
}

// rotated reports whether the certificate function now returns a
// certificate other than p's; a function that fails says nothing.
func (p *presented) rotated() bool {
	cert, err := p.source()
	return err == nil && cert != nil && len(cert.Certificate) > 0 && !bytes.Equal(cert.Certificate[0], p.cert.Certificate[0])
}

// certificateHint adds to err, an error response to r, that the client
// certificate was not sent, if r presents one and the server did not ask for
// it: a token endpoint that is not set up for mutual TLS (the wrong URL, or
// no mtls_endpoint_aliases where the provider needs them) says only that the
// client did not authenticate.
func (r *tokenRequest) certificateHint(err error) error {
	if r.cert == nil || r.cert.asked.Load() {
		return err
	}
	return fmt.Errorf("%w (the token endpoint asked for no client certificate, so none was sent)", err)
}

// presentedKey is the context key of a token request's *presented.
type presentedKey struct{}

// presentCertificate is the GetClientCertificate of the Client's mutual TLS
// transport: it presents the certificate of the token request whose
// connection is being made, which the transport passes on in the
// handshake's context (net/http dials with a context that keeps the
// request's values). A connection for no token request presents none.
func presentCertificate(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
	p, _ := info.Context().Value(presentedKey{}).(*presented)
	if p == nil {
		return &tls.Certificate{}, nil
	}
	p.asked.Store(true)
	return p.cert, nil
}

// mtlsClient returns the HTTP client for token requests with mutual TLS: a
// copy of hc on a clone of its transport that presents each token request's
// certificate, on a connection of its own.
func mtlsClient(hc *http.Client) (*http.Client, error) {
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("provider: mutual TLS: the HTTP client's transport is a %T, not an *http.Transport, so it cannot present the client certificate", rt)
	}
	//lint:ignore SA1019 a transport with the deprecated DialTLS dials TLS itself just the same.
	if t.DialTLSContext != nil || t.DialTLS != nil {
		return nil, errors.New("provider: mutual TLS: the HTTP client's transport dials TLS itself (DialTLSContext), so it cannot present the client certificate")
	}
	t = t.Clone()
	if t.TLSClientConfig == nil {
		t.TLSClientConfig = &tls.Config{}
	}
	t.TLSClientConfig.GetClientCertificate = presentCertificate
	// A resumed session presents no certificate: the server would see the
	// one of the session's first handshake, from before a rotation.
	t.TLSClientConfig.ClientSessionCache = nil
	// A connection kept alive would carry its first certificate into later
	// requests, past a rotation.
	t.DisableKeepAlives = true
	c := *hc
	c.Transport = t
	return &c, nil
}

// TokenCache is the set of caches of a [Client]'s tokens that [Rotated]
// empties: a [jwtcache.Cache], a [jwtcache.CacheMap] or an [Exchanger]. It is
// a type constraint, for Rotated's type parameter.
type TokenCache interface {
	*jwtcache.Cache | *jwtcache.CacheMap | *Exchanger
}

// Rotated drops every token that caches hold, for the code that rotates the
// client certificate of [TLSClientAuth] or [SelfSignedTLSClientAuth]: the
// provider may have bound each of them to the old certificate, which the
// client no longer presents, and a cache hit does no work that could notice.
// For a [jwtcache.CacheMap] it drops the token of every key, which stays in
// the map; for an [Exchanger], the token of every subject.
//
// The contract: rotation code first makes the certificate function return
// the new certificate, then calls Rotated with every cache the Client feeds
// (once per kind: Rotated(cache, otherCache), then Rotated(exchanger)).
// From then on, no call gets a token that those caches held, and every
// token request presents the new certificate. A token request under way
// during the rotation is made again with the new certificate if the
// function returns it when the response arrives. If the response came just
// before, its token goes to the callers that were waiting for it, and is
// not cached ([jwtcache.Cache.Invalidate] keeps a fetch in flight from
// caching its token). Rotated drops tokens whether or not they were bound
// and whether or not the certificate changed: call it once per rotation,
// which costs a token request per cache or key.
//
// A token dropped with [jwtcache.SharedStore] is not adopted from the store
// again; other replicas share bound tokens only if they present the same
// certificate. Without Rotated, a [jwtcache.Transport] still recovers: the
// resource server refuses a token bound to the old certificate (401), and the
// transport drops it and retries once with a fresh one.
func Rotated[C TokenCache](caches ...C) {
	for _, c := range caches {
		switch c := any(c).(type) {
		case *jwtcache.Cache:
			if c != nil {
				c.Invalidate()
			}
		case *jwtcache.CacheMap:
			if c != nil {
				invalidateAll(c)
			}
		case *Exchanger:
			if c != nil {
				invalidateAll(c.m)
			}
		}
	}
}

// invalidateAll drops the token of every key of m.
func invalidateAll(m *jwtcache.CacheMap) {
	m.Range(func(key string, _ jwtcache.Stats) bool {
		m.Invalidate(key)
		return true
	})
}
