package provider_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// mtlsPKI is a certificate authority for the tests and examples of mutual
// TLS: it issues server certificates for 127.0.0.1 and client certificates,
// on P-256 keys, which are quick to make.
type mtlsPKI struct {
	ca     *x509.Certificate
	key    *ecdsa.PrivateKey
	pool   *x509.CertPool // trusts ca
	serial atomic.Int64
}

// newPKI returns a new certificate authority. It panics on a failure, which
// crypto/rand and crypto/x509 do not have with these inputs.
func newPKI() *mtlsPKI {
	p := &mtlsPKI{key: newKey()}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(p.serial.Add(1)),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, p.key.Public(), p.key)
	if err != nil {
		panic(err)
	}
	if p.ca, err = x509.ParseCertificate(der); err != nil {
		panic(err)
	}
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	return p
}

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// server returns a server certificate for 127.0.0.1.
func (p *mtlsPKI) server() tls.Certificate {
	return *p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotAfter:    time.Now().Add(time.Hour),
	}, p.ca, p.key)
}

// client returns a client certificate for the subject cn that expires at
// notAfter.
func (p *mtlsPKI) client(cn string, notAfter time.Time) *tls.Certificate {
	return p.issue(mtlsClientTemplate(cn, notAfter), p.ca, p.key)
}

// selfSigned returns a self-signed client certificate for the subject cn.
func selfSignedClient(cn string) *tls.Certificate {
	return (&mtlsPKI{}).issue(mtlsClientTemplate(cn, time.Now().Add(time.Hour)), nil, nil)
}

func mtlsClientTemplate(cn string, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		NotAfter:    notAfter,
	}
}

// issue signs tmpl for a new key with the parent certificate and its key,
// or self-signs it if parent is nil.
func (p *mtlsPKI) issue(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *tls.Certificate {
	key := newKey()
	tmpl.SerialNumber = big.NewInt(p.serial.Add(1))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		panic(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// thumbprint returns the x5t#S256 of cert: the SHA-256 of its leaf,
// base64url.
func thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// startTLS starts a server for h with a certificate of pki for 127.0.0.1,
// which asks for client certificates as clientAuth says, and verifies them
// against pki's CA when it says so.
func (p *mtlsPKI) startTLS(h http.Handler, clientAuth tls.ClientAuthType) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	// The handshakes that tests make fail on purpose are not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server()}, ClientAuth: clientAuth, ClientCAs: p.pool}
	srv.StartTLS()
	return srv
}

// httpClient returns an HTTP client that trusts pki's CA, as a caller's
// client for a provider with a private CA does.
func (p *mtlsPKI) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
}

// newMTLSIDP starts a fake provider with certificates of pki: discovery and
// the token endpoint on one server, which asks for client certificates as
// main says, and the mtls_endpoint_aliases token_endpoint, /mtls/token, on a
// second one that asks as alias says. Its Clients trust pki's CA.
func newMTLSIDP(t *testing.T, pki *mtlsPKI, main, alias tls.ClientAuthType) *idp {
	t.Helper()
	p := newIDPOn(t, func(h http.Handler) *httptest.Server { return pki.startTLS(h, main) })
	a := pki.startTLS(p.handler, alias)
	t.Cleanup(a.Close)
	p.hc = pki.httpClient()
	t.Cleanup(p.hc.CloseIdleConnections)
	p.set("mtls_endpoint_aliases", map[string]string{"token_endpoint": a.URL + "/mtls/token"})
	return p
}
