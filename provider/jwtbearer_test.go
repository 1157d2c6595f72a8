package provider_test

import (
	"crypto"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// grantJWTBearer is the grant_type of the JWT bearer grant (RFC 7523).
const grantJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// TestJWTBearer_Form: the form of a JWT bearer grant request, field for
// field, with client authentication and without.
func TestJWTBearer_Form(t *testing.T) {
	req := provider.DefaultRequest(provider.Request{Scopes: []string{"write read"}, Resources: []string{"https://api.example"}})
	grant := url.Values{
		"grant_type": {grantJWTBearer},
		"assertion":  {"h.p.s"},
		"scope":      {"read write"},
		"resource":   {"https://api.example"},
	}
	with := func(kv ...string) url.Values {
		form := url.Values{}
		for k, v := range grant {
			form[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return form
	}
	tests := []struct {
		name      string
		auth      provider.ClientAuth
		want      url.Values
		wantBasic bool
	}{
		{"no client authentication", provider.NoClientAuth(""), grant, false},
		{"a public client", provider.NoClientAuth("app"), with("client_id", "app"), false},
		{"client_secret_basic", basic, grant, true},
		{"client_secret_post", provider.ClientSecretPost("billing", "s3cret"), with("client_id", "billing", "client_secret", "s3cret"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, false)
			c := p.client(t, tt.auth, req)
			iss, err := c.JWTBearer(t.Context(), " h.p.s\n")
			if err != nil || iss.Token != "token-1" {
				t.Fatalf("JWTBearer() = %+v, %v; want token-1", iss, err)
			}
			got := p.last(t)
			if !reflect.DeepEqual(got.form, tt.want) {
				t.Errorf("form = %v; want %v", got.form, tt.want)
			}
			if ok := strings.HasPrefix(got.header.Get("Authorization"), "Basic "); ok != tt.wantBasic {
				t.Errorf("Basic authorization sent = %v; want %v", ok, tt.wantBasic)
			}
		})
	}
}

// TestJWTBearer_Empty: an empty or blank assertion is an error, and no
// request is made.
func TestJWTBearer_Empty(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, provider.NoClientAuth(""))
	for _, a := range []string{"", " \n\t"} {
		if iss, err := c.JWTBearer(t.Context(), a); err == nil || !strings.HasPrefix(err.Error(), "provider: ") {
			t.Errorf("JWTBearer(%q) = %+v, %v; want an error", a, iss, err)
		}
	}
	if n := len(p.got()); n != 0 {
		t.Errorf("token requests = %d; want 0", n)
	}
}

// TestJWTBearer_SignerClaims: the signer's assertion carries iss, sub, aud
// (the token endpoint, or the issuer with AudienceIssuer), a jti of its own
// for every request, iat and exp by the Client's clock, and the kid.
func TestJWTBearer_SignerClaims(t *testing.T) {
	key := ecKey(elliptic.P256())
	clk := newClock()
	for _, tt := range []struct {
		name string
		opts []provider.AssertionOption
		aud  func(p *idp) string
	}{
		{"token endpoint", nil, func(p *idp) string { return p.srv.URL + "/token" }},
		{"AudienceIssuer", []provider.AssertionOption{provider.AudienceIssuer()}, func(p *idp) string { return p.srv.URL }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newIDP(t, false)
			c := p.client(t, provider.NoClientAuth(""), provider.Clock(clk.Now))
			issue, err := c.JWTBearerSigner("svc@example", "alice", key, append([]provider.AssertionOption{provider.KeyID("k1"), provider.AssertionLifetime(time.Minute)}, tt.opts...)...)
			if err != nil {
				t.Fatalf("JWTBearerSigner() error = %v", err)
			}
			jtis := map[string]bool{}
			for range 2 {
				if _, err := issue(t.Context()); err != nil {
					t.Fatalf("issue() error = %v", err)
				}
				got := p.last(t).form
				if g := got.Get("grant_type"); g != grantJWTBearer {
					t.Errorf("grant_type = %q; want %q", g, grantJWTBearer)
				}
				msg, err := jws.Verify([]byte(got.Get("assertion")), jws.WithKey(jwa.ES256, &key.PublicKey))
				if err != nil {
					t.Fatalf("the assertion does not verify with the key: %v", err)
				}
				var cl struct {
					Iss, Sub, Aud, Jti string
					Iat, Exp           int64
				}
				if err := json.Unmarshal(msg, &cl); err != nil {
					t.Fatal(err)
				}
				if cl.Iss != "svc@example" || cl.Sub != "alice" || cl.Aud != tt.aud(p) {
					t.Errorf("iss, sub, aud = %q, %q, %q; want svc@example, alice, %q", cl.Iss, cl.Sub, cl.Aud, tt.aud(p))
				}
				if cl.Iat != clk.Now().Unix() || cl.Exp != cl.Iat+60 {
					t.Errorf("iat, exp = %d, %d; want %d, %d", cl.Iat, cl.Exp, clk.Now().Unix(), clk.Now().Unix()+60)
				}
				if cl.Jti == "" || jtis[cl.Jti] {
					t.Errorf("jti = %q; want a new one (seen %v)", cl.Jti, jtis)
				}
				jtis[cl.Jti] = true
				if kid := protectedKID(t, got.Get("assertion")); kid != "k1" {
					t.Errorf("kid = %q; want k1", kid)
				}
			}
		})
	}
}

// protectedKID returns the kid of a JWS's protected header.
func protectedKID(t *testing.T, s string) string {
	t.Helper()
	head, _, _ := strings.Cut(s, ".")
	data, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// TestJWTBearer_SignerMisuse: a signer that cannot be meant fails where it
// is made, with no request.
func TestJWTBearer_SignerMisuse(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, provider.NoClientAuth(""))
	static, err := provider.NewFromTokenURL(p.srv.URL+"/token", provider.NoClientAuth(""))
	if err != nil {
		t.Fatal(err)
	}
	key := ecKey(elliptic.P256())
	tests := []struct {
		name     string
		c        *provider.Client
		iss, sub string
		key      crypto.Signer
		opts     []provider.AssertionOption
		want     error
	}{
		{"empty issuer", c, "", "alice", key, nil, nil},
		{"empty subject", c, "svc", "", key, nil, nil},
		{"no key", c, "svc", "alice", nil, nil, nil},
		{"algorithm", c, "svc", "alice", key, []provider.AssertionOption{provider.SigningAlgorithm("RS256")}, provider.ErrSigningAlgorithm},
		{"AudienceIssuer without issuer", static, "svc", "alice", key, []provider.AssertionOption{provider.AudienceIssuer()}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := tt.c.JWTBearerSigner(tt.iss, tt.sub, tt.key, tt.opts...)
			if err == nil || f != nil || !strings.HasPrefix(err.Error(), "provider: jwt bearer signer: ") {
				t.Errorf("JWTBearerSigner() = %v; want an error prefixed \"provider: jwt bearer signer: \", and no function", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("JWTBearerSigner() = %v; want it to match %v", err, tt.want)
			}
		})
	}
	if n := len(p.got()); n != 0 {
		t.Errorf("token requests = %d; want 0", n)
	}
}

// The JWT bearer grant against oidc-provider: clients with and without
// client authentication, an issuer of assertions it trusts.
const (
	bearerIssuer   = "svc@example"
	bearerResource = "https://api.example"
)

// bearerOIDC starts oidc-provider with the clients bearer-basic
// (client_secret_basic) and bearer-public (none), both for the JWT bearer
// grant, and bearerIssuer's key trusted for assertions; it returns the
// server and that key.
func bearerOIDC(t *testing.T) (*oidcServer, jwk.Key) {
	t.Helper()
	key := newSigningKey(t, jwa.ES256, "svc-es256")
	grants := map[string]any{"grant_types": []string{grantJWTBearer}}
	s := startOIDC(t, oidcConfig{
		Clients: []oidcClient{
			{ID: "bearer-basic", Secret: harnessSecret, Metadata: grants},
			{ID: "bearer-public", AuthMethod: "none", Metadata: grants},
		},
		Resources:        []oidcResource{{Identifier: bearerResource, Scope: "read write", TTL: 5 * time.Minute}},
		AssertionIssuers: []oidcTrustedIssuer{{Issuer: bearerIssuer, JWKS: publicJWKS(t, key)}},
	})
	return s, key
}

// bearerClients are the clients of bearerOIDC, by name, with their auth.
var bearerClients = []struct {
	name, id string
	auth     provider.ClientAuth
}{
	{"client authentication", "bearer-basic", provider.ClientSecretBasic("bearer-basic", harnessSecret)},
	{"no client authentication", "bearer-public", provider.NoClientAuth("bearer-public")},
}

// bearerRequest is the request of the bearer clients' tokens.
var bearerRequest = provider.DefaultRequest(provider.Request{Scopes: []string{"read"}, Resources: []string{bearerResource}})

// TestJWTBearer_OIDC: a signed assertion, with and without client
// authentication, gets a JWT access token about the assertion's subject, for
// the resource and scope asked for.
func TestJWTBearer_OIDC(t *testing.T) {
	t.Parallel()
	s, key := bearerOIDC(t)
	for _, cl := range bearerClients {
		t.Run(cl.name, func(t *testing.T) {
			c := newOIDCClient(t, s, cl.auth, bearerRequest)
			issue, err := c.JWTBearerSigner(bearerIssuer, "alice", rawKey(t, key), provider.KeyID("svc-es256"))
			if err != nil {
				t.Fatalf("JWTBearerSigner() error = %v", err)
			}
			iss, err := issue(t.Context())
			if err != nil {
				t.Fatalf("issue() error = %v", err)
			}
			tok := verifyAccessToken(t, s, s.Client(t), iss.Token)
			if tok.Subject() != "alice" {
				t.Errorf("sub = %q; want alice, the assertion's", tok.Subject())
			}
			if aud := tok.Audience(); !slices.Equal(aud, []string{bearerResource}) {
				t.Errorf("aud = %v; want [%s]", aud, bearerResource)
			}
			if scope, _ := tok.Get("scope"); scope != "read" || iss.Scope != "read" {
				t.Errorf("scope = %v, Issued.Scope = %q; want read, read", scope, iss.Scope)
			}
			if iss.ExpiresIn != 5*time.Minute {
				t.Errorf("ExpiresIn = %v; want 5m, the resource's TTL", iss.ExpiresIn)
			}
			if n := s.Issued(t, cl.id); n != 1 {
				t.Errorf("Issued(%s) = %d; want 1", cl.id, n)
			}
		})
	}
}

// TestJWTBearer_OIDCCache: a Cache over the signer keeps the token and gets
// a new one, with a new assertion, once it expires.
func TestJWTBearer_OIDCCache(t *testing.T) {
	t.Parallel()
	s, key := bearerOIDC(t)
	c := newOIDCClient(t, s, provider.NoClientAuth("bearer-public"), bearerRequest)
	issue, err := c.JWTBearerSigner(bearerIssuer, "alice", rawKey(t, key))
	if err != nil {
		t.Fatalf("JWTBearerSigner() error = %v", err)
	}
	// The cache's clock only, and a token's life behind the real one: the
	// assertions are dated by the real clock, which oidc-provider judges
	// them by, and the cache takes the earlier of expires_in (by its clock)
	// and the JWT's exp (by the real one).
	clk := testkit.NewClock(time.Now().Add(-5 * time.Minute))
	cache := jwtcache.NewCache(jwtcache.Name("bearer"), jwtcache.Logger(nil), jwtcache.IssueFunction(issue), jwtcache.Clock(clk.Now))
	first := ensureMany(t, cache, 5)
	if len(first) != 1 || s.Issued(t, "bearer-public") != 1 {
		t.Fatalf("5 calls: %d distinct tokens, %d issued; want 1, 1", len(first), s.Issued(t, "bearer-public"))
	}
	clk.Advance(5 * time.Minute)
	second := ensureMany(t, cache, 3)
	if len(second) != 1 || first[firstKey(second)] {
		t.Errorf("after expiry: %d distinct tokens, the first one again %v; want 1 new one", len(second), first[firstKey(second)])
	}
	if n := s.Issued(t, "bearer-public"); n != 2 {
		t.Errorf("Issued(bearer-public) = %d; want 2", n)
	}
}

// TestJWTBearer_OIDCRefused: a replayed assertion, one signed with a key the
// provider does not trust, an expired one and one for another audience are
// refused with invalid_grant, which matches ErrInvalidGrant; nothing is
// issued, and no error carries the assertion.
func TestJWTBearer_OIDCRefused(t *testing.T) {
	t.Parallel()
	s, key := bearerOIDC(t)
	other := newSigningKey(t, jwa.ES256, "svc-es256") // same kid, another key
	for _, cl := range bearerClients {
		t.Run(cl.name, func(t *testing.T) {
			c := newOIDCClient(t, s, cl.auth, bearerRequest)
			replayed := clientAssertion(t, jwa.ES256, key, bearerIssuer, s.TokenURL)
			if _, err := c.JWTBearer(t.Context(), replayed); err != nil {
				t.Fatalf("JWTBearer() the first time error = %v", err)
			}
			signed := func(c *provider.Client, k jwk.Key) func() error {
				return func() error {
					issue, err := c.JWTBearerSigner(bearerIssuer, "alice", rawKey(t, k))
					if err != nil {
						t.Fatal(err)
					}
					_, err = issue(t.Context())
					return err
				}
			}
			sent := func(a string) func() error {
				return func() error { _, err := c.JWTBearer(t.Context(), a); return err }
			}
			// A Client whose clock is behind: its assertions expired a
			// minute before they are sent.
			late := newOIDCClient(t, s, cl.auth, bearerRequest, provider.Clock(func() time.Time { return time.Now().Add(-2 * time.Minute) }))
			tests := []struct {
				name, why string
				call      func() error
			}{
				{"replayed jti", "already used", sent(replayed)},
				{"wrong key", "signature", signed(c, other)},
				{"expired", "exp", signed(late, key)},
				{"wrong audience", "aud", sent(clientAssertion(t, jwa.ES256, key, bearerIssuer, "https://other.example"))},
				{"untrusted issuer", "not trusted", sent(clientAssertion(t, jwa.ES256, key, "mallory@example", s.TokenURL))},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := s.Issued(t, cl.id)
					err := tt.call()
					if !errors.Is(err, provider.ErrInvalidGrant) {
						t.Fatalf("error = %v; want one matching ErrInvalidGrant", err)
					}
					// Every JWT starts with the base64 of `{"`.
					if strings.Contains(err.Error(), "eyJ") {
						t.Errorf("error = %q; it carries a JWT", err)
					}
					checkRefusal(t, s, cl.id, "invalid_grant", tt.why)
					if n := s.Issued(t, cl.id); n != before {
						t.Errorf("Issued(%s) = %d; want %d, none more", cl.id, n, before)
					}
				})
			}
		})
	}
}

// TestJWTBearer_Redacted: a provider's error that quotes the assertion
// shows it redacted.
func TestJWTBearer_Redacted(t *testing.T) {
	p := newIDP(t, false)
	const assertion = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
	p.answer(respond(400, `{"error":"invalid_grant","error_description":"bad assertion `+assertion+`"}`))
	c := p.client(t, provider.NoClientAuth(""))
	_, err := c.JWTBearer(t.Context(), assertion)
	if !errors.Is(err, provider.ErrInvalidGrant) || strings.Contains(err.Error(), assertion) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("JWTBearer() error = %v; want invalid_grant, with the assertion [redacted]", err)
	}
}
