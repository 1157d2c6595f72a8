package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// ClientAuth is how a [Client] authenticates to the token endpoint: one of
// [ClientSecretBasic], [ClientSecretPost], [ClientSecretJWT],
// [PrivateKeyJWT], [ClientAssertion], [ClientAssertionFile],
// [TLSClientAuth] and [SelfSignedTLSClientAuth], or [NoClientAuth]. A
// ClientAuth is immutable, and may be shared by Clients. Whether it suits
// the provider (a client id, a key its algorithm suits, a method and an
// algorithm the provider lists) is checked by [New] and [NewFromTokenURL],
// which fail if not.
type ClientAuth interface {
	// method returns the token_endpoint_auth_method it implements (RFC
	// 7591, section 2), as providers list them.
	method() string
	// check reports why it cannot be used with the provider m describes,
	// if it cannot.
	check(m *Metadata) error
	// authenticate adds the client's credentials to r, which has its
	// endpoint, metadata and time set. It is called for every token
	// request: an assertion is made afresh each time.
	authenticate(ctx context.Context, r *tokenRequest) error
}

// Client authentication methods, as token_endpoint_auth_methods_supported
// lists them.
const (
	methodSecretBasic   = "client_secret_basic"
	methodSecretPost    = "client_secret_post"
	methodSecretJWT     = "client_secret_jwt"
	methodPrivateKeyJWT = "private_key_jwt"
)

// jwtBearer is the client_assertion_type of a JWT client assertion (RFC
// 7523, section 2.2).
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// defaultAssertionLifetime is documented on AssertionLifetime.
const defaultAssertionLifetime = 60 * time.Second

// checkMethod reports whether the provider m describes lists method, when it
// lists any. Providers that do not list them (the default is
// client_secret_basic) are taken at their word that they accept it: the
// token endpoint will say otherwise.
func checkMethod(m *Metadata, method string) error {
	ms := m.TokenEndpointAuthMethodsSupported
	if ms == nil || slices.Contains(ms, method) {
		return nil
	}
	return fmt.Errorf("%w: %s (it supports %s)", ErrAuthMethod, method, listOrNone(ms))
}

// listOrNone joins vs for an error message.
func listOrNone(vs []string) string {
	if len(vs) == 0 {
		return "none"
	}
	return strings.Join(vs, ", ")
}

// ClientSecretBasic authenticates with a client id and secret in an HTTP
// Basic Authorization header (client_secret_basic, RFC 6749, section 2.3.1),
// each form-urlencoded before the pair is base64-encoded, as the RFC
// requires: a secret with ':', '%' or non-ASCII characters in it arrives
// intact at a provider that decodes it as the RFC says.
func ClientSecretBasic(id, secret string) ClientAuth {
	return &clientSecret{id: id, secret: secret}
}

// ClientSecretPost authenticates with a client id and secret sent as the
// client_id and client_secret form parameters (client_secret_post, RFC 6749,
// section 2.3.1).
func ClientSecretPost(id, secret string) ClientAuth {
	return &clientSecret{id: id, secret: secret, post: true}
}

// clientSecret is ClientSecretBasic and ClientSecretPost.
type clientSecret struct {
	id, secret string
	post       bool // in the form, not the header
}

func (a *clientSecret) method() string {
	if a.post {
		return methodSecretPost
	}
	return methodSecretBasic
}

func (a *clientSecret) check(m *Metadata) error {
	switch {
	case a.id == "":
		return fmt.Errorf("provider: %s: empty client id", a.method())
	case a.secret == "":
		return fmt.Errorf("provider: %s: empty client secret", a.method())
	}
	return checkMethod(m, a.method())
}

func (a *clientSecret) authenticate(_ context.Context, r *tokenRequest) error {
	r.redact(a.secret)
	if a.post {
		r.form.Set("client_id", a.id)
		r.form.Set("client_secret", a.secret)
		return nil
	}
	cred := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(a.id) + ":" + url.QueryEscape(a.secret)))
	r.redact(cred)
	r.header.Set("Authorization", "Basic "+cred)
	return nil
}

// NoClientAuth does not authenticate the client: the token request carries
// no credentials, only the client id as the client_id parameter, or nothing
// if id is empty (token_endpoint_auth_method none, RFC 7591, section 2). It
// is the authentication of a public client (RFC 6749, section 2.1), and of
// the JWT bearer grant where the assertion is the only credential
// ([Client.JWTBearer]; RFC 7523, section 3.1, makes client authentication
// optional there), as Google's and Salesforce's token endpoints take it,
// with an empty id. Since providers that accept none often do not list it
// among their methods, [New] does not check that the provider lists it.
func NoClientAuth(id string) ClientAuth {
	return noClientAuth{id: id}
}

// noClientAuth is NoClientAuth.
type noClientAuth struct{ id string }

// methodNone is the token_endpoint_auth_method of NoClientAuth.
const methodNone = "none"

func (a noClientAuth) method() string { return methodNone }

func (a noClientAuth) check(*Metadata) error { return nil }

func (a noClientAuth) authenticate(_ context.Context, r *tokenRequest) error {
	if a.id != "" {
		r.form.Set("client_id", a.id)
	}
	return nil
}

// AssertionOption configures the client assertions of [PrivateKeyJWT] and
// [ClientSecretJWT], and the JWT bearer grant's of [Client.JWTBearerSigner].
type AssertionOption interface {
	applyAssertion(*assertionConfig)
}

// assertionOptionFunc adapts a function to [AssertionOption].
type assertionOptionFunc func(*assertionConfig)

func (f assertionOptionFunc) applyAssertion(c *assertionConfig) { f(c) }

// assertionConfig is the configuration of a signed assertion, written once by
// its constructor.
type assertionConfig struct {
	alg       string
	kid       string
	x5t       string // x5t#S256
	lifetime  time.Duration
	audIssuer bool
}

// SigningAlgorithm sets the algorithm assertions are signed with, which must
// suit the key: RS256, RS384, RS512, PS256, PS384 or PS512 for an RSA key,
// HS256, HS384 or HS512 for [ClientSecretJWT]'s secret. An algorithm that does
// not suit the key fails [New] with [ErrSigningAlgorithm]. The default is the
// key's: RS256 for RSA, ES256, ES384 and ES512 for ECDSA on P-256, P-384 and
// P-521, EdDSA for Ed25519, HS256 for a secret.
func SigningAlgorithm(alg string) AssertionOption {
	return assertionOptionFunc(func(c *assertionConfig) { c.alg = alg })
}

// KeyID sets the kid header of assertions, which tells a provider holding
// several of the client's keys which one to verify with. The default is
// none.
func KeyID(kid string) AssertionOption {
	return assertionOptionFunc(func(c *assertionConfig) { c.kid = kid })
}

// CertificateThumbprint sets the x5t#S256 header of assertions to the
// SHA-256 thumbprint of cert, the key's certificate, for providers that
// identify the client's key by its certificate (Microsoft Entra ID, say). A
// nil cert sets none. The default is none.
func CertificateThumbprint(cert *x509.Certificate) AssertionOption {
	return assertionOptionFunc(func(c *assertionConfig) {
		c.x5t = ""
		if cert != nil {
			sum := sha256.Sum256(cert.Raw)
			c.x5t = base64.RawURLEncoding.EncodeToString(sum[:])
		}
	})
}

// AssertionLifetime sets how long an assertion is valid, from its iat to its
// exp. A fresh assertion is made for every token request, so this need only
// cover the request and the clock skew between client and provider. Zero or
// less is taken as the default. The default is 60 seconds.
func AssertionLifetime(d time.Duration) AssertionOption {
	return assertionOptionFunc(func(c *assertionConfig) { c.lifetime = d })
}

// AudienceIssuer makes the provider's issuer identifier the audience (aud) of
// assertions, for providers that want it there rather than the token
// endpoint's URL (RFC 7523, section 3, allows either). It needs a Client made
// by [New]; [NewFromTokenURL] knows no issuer, and fails. The default is the
// token endpoint's URL.
func AudienceIssuer() AssertionOption {
	return assertionOptionFunc(func(c *assertionConfig) { c.audIssuer = true })
}

// PrivateKeyJWT authenticates with a JWT client assertion signed with the
// client's private key (private_key_jwt, RFC 7523 and OpenID Connect Core,
// section 9). Each token request, retries included, gets an assertion of its
// own: iss and sub are the client id, aud the token endpoint's URL (see
// [AudienceIssuer]), jti a fresh random value, iat the time of the request
// and exp the [AssertionLifetime] after it.
//
// The key is a [crypto.Signer], so that a key in a KMS or an HSM serves as
// well as an *rsa.PrivateKey, *ecdsa.PrivateKey or ed25519.PrivateKey; its
// Public method says which algorithm signs (see [SigningAlgorithm]), pinned
// for the Client's life. Where the provider lists the algorithms it accepts,
// [New] checks the pinned one is among them, and fails with
// [ErrSigningAlgorithm] if not.
func PrivateKeyJWT(id string, key crypto.Signer, opts ...AssertionOption) ClientAuth {
	return newKeyAssertion(id, methodPrivateKeyJWT, key, opts)
}

// newKeyAssertion is newSignedAssertion, signing with key by the algorithm
// its public key and opts pick.
func newKeyAssertion(id, method string, key crypto.Signer, opts []AssertionOption) *signedAssertion {
	a := newSignedAssertion(id, method, opts)
	pub, err := publicKey(key)
	if err != nil {
		a.err = err
		return a
	}
	a.key = key
	a.alg, a.err = keyAlgorithm(a.cfg.alg, pub)
	return a
}

// ClientSecretJWT authenticates with a JWT client assertion signed with the
// client secret, by HMAC (client_secret_jwt, OpenID Connect Core, section 9):
// HS256 unless [SigningAlgorithm] says otherwise; the secret must be at least
// as long as the hash (32 bytes for HS256), as RFC 7518 requires. Its
// assertions are made as [PrivateKeyJWT]'s are. The secret is copied.
func ClientSecretJWT(id string, secret []byte, opts ...AssertionOption) ClientAuth {
	a := newSignedAssertion(id, methodSecretJWT, opts)
	if len(secret) == 0 {
		a.err = errors.New("empty client secret")
		return a
	}
	a.key = slices.Clone(secret)
	a.alg, a.err = pick(a.cfg.alg, "a client secret", jwa.HS256, jwa.HS384, jwa.HS512)
	// RFC 7518, section 3.2: the key must be at least as long as the hash.
	if need := map[jwa.SignatureAlgorithm]int{jwa.HS256: 32, jwa.HS384: 48, jwa.HS512: 64}[a.alg]; a.err == nil && len(secret) < need {
		a.err = fmt.Errorf("%w: %s needs a secret of at least %d bytes (RFC 7518, section 3.2); it has %d", ErrSigningAlgorithm, a.alg, need, len(secret))
	}
	return a
}

// signedAssertion is PrivateKeyJWT and ClientSecretJWT, and the signer of
// JWT bearer grant assertions (Client.JWTBearerSigner).
type signedAssertion struct {
	id   string
	sub  string // the assertion's sub; iss is id
	meth string
	key  any // crypto.Signer, or []byte for client_secret_jwt
	alg  jwa.SignatureAlgorithm
	cfg  assertionConfig
	err  error // why it cannot be used, found by the constructor and reported by check
}

// newSignedAssertion applies opts over the defaults.
func newSignedAssertion(id, method string, opts []AssertionOption) *signedAssertion {
	a := &signedAssertion{id: id, sub: id, meth: method}
	for _, o := range opts {
		if o != nil {
			o.applyAssertion(&a.cfg)
		}
	}
	if a.cfg.lifetime <= 0 {
		a.cfg.lifetime = defaultAssertionLifetime
	}
	return a
}

func (a *signedAssertion) method() string { return a.meth }

func (a *signedAssertion) check(m *Metadata) error {
	switch {
	case a.id == "":
		return fmt.Errorf("provider: %s: empty client id", a.meth)
	case a.err != nil:
		return fmt.Errorf("provider: %s: %w", a.meth, a.err)
	case a.cfg.audIssuer && m.Issuer == "":
		return fmt.Errorf("provider: %s: AudienceIssuer needs the issuer, which a Client made by NewFromTokenURL does not know", a.meth)
	}
	if err := checkMethod(m, a.meth); err != nil {
		return err
	}
	if algs := m.TokenEndpointAuthSigningAlgValuesSupported; algs != nil && !slices.Contains(algs, a.alg.String()) {
		return fmt.Errorf("%w: %s: %s is not among those the provider accepts (%s)", ErrSigningAlgorithm, a.meth, a.alg, listOrNone(algs))
	}
	return nil
}

func (a *signedAssertion) authenticate(_ context.Context, r *tokenRequest) error {
	s, err := a.signFor(r)
	if err != nil {
		return err
	}
	r.setAssertion(a.id, s)
	return nil
}

// signFor returns a new assertion for r: its audience the token endpoint's
// URL, or the issuer with AudienceIssuer, issued at r.now.
func (a *signedAssertion) signFor(r *tokenRequest) (string, error) {
	aud := r.endpoint
	if a.cfg.audIssuer {
		aud = r.meta.Issuer
	}
	if secret, ok := a.key.([]byte); ok {
		r.redact(string(secret))
	}
	return a.sign(aud, r.now)
}

// assertionClaims are the claims of an assertion (RFC 7523, section 3).
type assertionClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	ID       string `json:"jti"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
}

// sign returns a new assertion for audience aud, issued at now: a client
// assertion, or a JWT bearer grant's.
func (a *signedAssertion) sign(aud string, now time.Time) (string, error) {
	payload, err := json.Marshal(assertionClaims{
		Issuer:   a.id,
		Subject:  a.sub,
		Audience: aud,
		// 128 random bits: a provider that remembers jtis to refuse
		// replays (RFC 7523, section 3, item 7) never sees one twice.
		ID:       rand.Text(),
		IssuedAt: now.Unix(),
		Expiry:   now.Add(a.cfg.lifetime).Unix(),
	})
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	// A fresh header each time: jws.Sign sets alg on the one it is given.
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, "JWT"); err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	if a.cfg.kid != "" {
		if err := h.Set(jws.KeyIDKey, a.cfg.kid); err != nil {
			return "", fmt.Errorf("sign assertion: %w", err)
		}
	}
	if a.cfg.x5t != "" {
		if err := h.Set(jws.X509CertThumbprintS256Key, a.cfg.x5t); err != nil {
			return "", fmt.Errorf("sign assertion: %w", err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(a.alg, a.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("sign assertion: %w", err)
	}
	return string(signed), nil
}

// publicKey returns key's public key, or why there is none: a nil key, or a
// nil pointer behind the interface.
func publicKey(key crypto.Signer) (pub crypto.PublicKey, err error) {
	if key == nil {
		return nil, errors.New("no key")
	}
	defer func() {
		if recover() != nil {
			pub, err = nil, errors.New("the key's Public method panicked (a nil key?)")
		}
	}()
	if pub = key.Public(); pub == nil {
		return nil, errors.New("the key has no public key")
	}
	return pub, nil
}

// keyAlgorithm returns the algorithm that signs with the private key of pub:
// alg if it suits it, the key's default if alg is empty.
func keyAlgorithm(alg string, pub crypto.PublicKey) (jwa.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return pick(alg, "an RSA key", jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512)
	case *ecdsa.PublicKey:
		if k.Curve == nil {
			return "", fmt.Errorf("%w: an ECDSA key without a curve", ErrSigningAlgorithm)
		}
		switch k.Curve {
		case elliptic.P256():
			return pick(alg, "a P-256 key", jwa.ES256)
		case elliptic.P384():
			return pick(alg, "a P-384 key", jwa.ES384)
		case elliptic.P521():
			return pick(alg, "a P-521 key", jwa.ES512)
		}
		return "", fmt.Errorf("%w: ECDSA on %s is not supported", ErrSigningAlgorithm, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return pick(alg, "an Ed25519 key", jwa.EdDSA)
	}
	return "", fmt.Errorf("%w: a key of type %T is not supported", ErrSigningAlgorithm, pub)
}

// pick returns alg if it is one of suited, the first of them if alg is empty.
func pick(alg, key string, suited ...jwa.SignatureAlgorithm) (jwa.SignatureAlgorithm, error) {
	if alg == "" {
		return suited[0], nil
	}
	for _, s := range suited {
		if s.String() == alg {
			return s, nil
		}
	}
	names := make([]string, len(suited))
	for i, s := range suited {
		names[i] = s.String()
	}
	return "", fmt.Errorf("%w: %s does not suit %s (use %s)", ErrSigningAlgorithm, alg, key, strings.Join(names, ", "))
}

// ClientAssertion authenticates with a client assertion that f returns, sent
// with the client_assertion_type of a JWT (RFC 7523, section 2.2) and counted
// as private_key_jwt where the provider lists its methods: a workload
// identity token from the platform, or one signed elsewhere. f is called for
// every token request, on its context; what it returns is trimmed of
// surrounding whitespace, and must not be empty. f must be safe for
// concurrent use.
func ClientAssertion(id string, f func(ctx context.Context) (string, error)) ClientAuth {
	return &externalAssertion{id: id, get: f}
}

// ClientAssertionFile authenticates with a client assertion read from the
// file at path, as [ClientAssertion] does: a projected service account token
// in Kubernetes, which the kubelet rotates. The file is read again for every
// token request, so a rotated token is used as soon as it is there; a
// Kubernetes volume swaps its files atomically, behind a symbolic link, so a
// read never sees half of one.
func ClientAssertionFile(id, path string) ClientAuth {
	return &externalAssertion{id: id, get: func(context.Context) (string, error) {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		data, err := readLimited(f)
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return string(data), nil
	}}
}

// externalAssertion is ClientAssertion and ClientAssertionFile.
type externalAssertion struct {
	id  string
	get func(context.Context) (string, error)
}

func (a *externalAssertion) method() string { return methodPrivateKeyJWT }

func (a *externalAssertion) check(m *Metadata) error {
	switch {
	case a.id == "":
		return fmt.Errorf("provider: client assertion: empty client id")
	case a.get == nil:
		return fmt.Errorf("provider: client assertion: no function")
	}
	return checkMethod(m, a.method())
}

func (a *externalAssertion) authenticate(ctx context.Context, r *tokenRequest) error {
	s, err := a.get(ctx)
	if err != nil {
		return fmt.Errorf("client assertion: %w", err)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return errors.New("client assertion is empty")
	}
	r.setAssertion(a.id, s)
	return nil
}
