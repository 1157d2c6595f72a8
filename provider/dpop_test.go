package provider_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// proofClaims are a DPoP proof's claims.
type proofClaims struct {
	JTI   string  `json:"jti"`
	HTM   string  `json:"htm"`
	HTU   string  `json:"htu"`
	IAT   float64 `json:"iat"`
	ATH   string  `json:"ath"`
	Nonce string  `json:"nonce"`
}

// proofChecker verifies DPoP proofs completely, as a server must (RFC 9449,
// section 4.3): the header (typ, an asymmetric alg, a public jwk), the
// signature by that jwk, htm, htu, iat within window of now, a jti never
// seen before, ath of the access token, and the nonce, if one is required.
type proofChecker struct {
	window time.Duration
	mu     sync.Mutex
	seen   map[string]bool // jti; guarded by mu
}

func newProofChecker() *proofChecker {
	return &proofChecker{window: time.Minute, seen: map[string]bool{}}
}

// check verifies proof for a request with method to htu carrying token (none
// for a token request), and nonce if not empty; it returns the thumbprint of
// the proof's key.
func (pc *proofChecker) check(proof, method, htu, token, nonce string) (jkt string, claims proofClaims, err error) {
	msg, err := jws.Parse([]byte(proof))
	if err != nil {
		return "", claims, fmt.Errorf("not a JWS: %w", err)
	}
	if len(msg.Signatures()) != 1 {
		return "", claims, errors.New("not one signature")
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.Type() != "dpop+jwt" {
		return "", claims, fmt.Errorf("typ %q", h.Type())
	}
	alg := h.Algorithm()
	switch alg {
	case jwa.ES256, jwa.ES384, jwa.ES512, jwa.EdDSA, jwa.RS256, jwa.PS256:
	default:
		return "", claims, fmt.Errorf("alg %q", alg)
	}
	key := h.JWK()
	if key == nil {
		return "", claims, errors.New("no jwk")
	}
	var raw any
	if err := key.Raw(&raw); err != nil {
		return "", claims, err
	}
	switch raw.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey:
	default:
		return "", claims, fmt.Errorf("the jwk is a %T, not a public key", raw)
	}
	payload, err := jws.Verify([]byte(proof), jws.WithKey(alg, key))
	if err != nil {
		return "", claims, fmt.Errorf("signature: %w", err)
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", claims, err
	}
	if claims.HTM != method || claims.HTU != htu {
		return "", claims, fmt.Errorf("htm %q, htu %q; want %q and %q", claims.HTM, claims.HTU, method, htu)
	}
	if skew := time.Since(time.Unix(int64(claims.IAT), 0)); math.Abs(float64(skew)) > float64(pc.window) {
		return "", claims, fmt.Errorf("iat %v off", skew)
	}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		if claims.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return "", claims, errors.New("ath is not the access token's hash")
		}
	} else if claims.ATH != "" {
		return "", claims, errors.New("ath on a token request")
	}
	if nonce != "" && claims.Nonce != nonce {
		return "", claims, fmt.Errorf("nonce %q; want %q", claims.Nonce, nonce)
	}
	if len(claims.JTI) < 16 {
		return "", claims, fmt.Errorf("jti %q is too short to be unique", claims.JTI)
	}
	pc.mu.Lock()
	replay := pc.seen[claims.JTI]
	pc.seen[claims.JTI] = true
	pc.mu.Unlock()
	if replay {
		return "", claims, errors.New("jti replayed")
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", claims, err
	}
	return base64.RawURLEncoding.EncodeToString(tp), claims, nil
}

func TestDPoP_ProofIsComplete(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := map[string]crypto.Signer{
		"ES256": ecKey(elliptic.P256()), "ES384": ecKey(elliptic.P384()), "ES512": ecKey(elliptic.P521()),
		"EdDSA": edKey, "RS256": rsaKey, "ES256 (a KMS signer)": &kmsKey{inner: ecKey(elliptic.P256())},
	}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			d, err := provider.NewDPoP(key)
			if err != nil {
				t.Fatal(err)
			}
			if alg := strings.Fields(name)[0]; d.Algorithm() != alg {
				t.Errorf("Algorithm() = %s; want %s", d.Algorithm(), alg)
			}
			want, err := jwk.FromRaw(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			tp, _ := want.Thumbprint(crypto.SHA256)
			if d.Thumbprint() != base64.RawURLEncoding.EncodeToString(tp) {
				t.Errorf("Thumbprint() = %s; want jwx's %s", d.Thumbprint(), base64.RawURLEncoding.EncodeToString(tp))
			}
			pc := newProofChecker()
			for i := range 3 {
				proof, err := d.Proof("GET", "https://API.example:443/orders/1?x=y#frag", "the-access-token")
				if err != nil {
					t.Fatal(err)
				}
				jkt, _, err := pc.check(proof, "GET", "https://api.example/orders/1", "the-access-token", "")
				if err != nil || jkt != d.Thumbprint() {
					t.Fatalf("proof %d: %v (jkt %s); want a valid proof of the key", i, err, jkt)
				}
			}
			proof, _ := d.Proof("POST", "https://idp.example/token", "")
			if _, _, err := pc.check(proof, "POST", "https://idp.example/token", "", ""); err != nil {
				t.Errorf("token request proof: %v", err)
			}
		})
	}
}

func TestDPoP_HTU(t *testing.T) {
	d, _ := provider.NewDPoP(nil)
	for in, want := range map[string]string{
		"https://api.example":                 "https://api.example/",
		"https://API.Example.:8443/a%20b?q=1": "https://api.example.:8443/a%20b",
		"http://127.0.0.1:80/x":               "http://127.0.0.1/x",
		"http://[::1]:8080/x#f":               "http://[::1]:8080/x",
		"HTTPS://api.example:443/p/":          "https://api.example/p/",
	} {
		proof, err := d.Proof("GET", in, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, c, err := newProofChecker().check(proof, "GET", want, "", ""); err != nil {
			t.Errorf("Proof(%q): htu %q: %v; want %q", in, c.HTU, err, want)
		}
	}
	if _, err := d.Proof("GET", "/relative", ""); err == nil {
		t.Error("Proof of a relative URL succeeded")
	}
}

func TestDPoP_RefusesUnusableKeys(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	for name, key := range map[string]crypto.Signer{"RSA 1024": small, "P-224": p224} {
		if _, err := provider.NewDPoP(key); !errors.Is(err, provider.ErrSigningAlgorithm) {
			t.Errorf("NewDPoP(%s) error = %v; want ErrSigningAlgorithm", name, err)
		}
	}
}

// dpopMinter signs dpopToken's tokens, which only their claims matter for:
// the client reads them, and nothing verifies their signature.
var dpopMinter = testkit.NewMinter("dpop-test")

// dpopToken returns a JWT about svc that lives an hour, bound to jkt (cnf;
// none if jkt is empty).
func dpopToken(t *testing.T, jkt string) string {
	t.Helper()
	claims := map[string]any{"sub": "svc"}
	if jkt != "" {
		claims["cnf"] = map[string]any{"jkt": jkt}
	}
	return dpopMinter.Mint(time.Now(), time.Hour, claims)
}

func TestDPoP_TokenRequest(t *testing.T) {
	d, _ := provider.NewDPoP(nil)
	p := newIDP(t, true)
	c := p.client(t, basic, provider.DPoPProof(d))
	pc := newProofChecker()
	bound := dpopToken(t, d.Thumbprint())
	var mu sync.Mutex
	nonce := "n-1"
	// Wants a nonce in every proof; hands out a new one on every answer.
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		want := nonce
		nonce += "x"
		w.Header().Set("DPoP-Nonce", nonce)
		mu.Unlock()
		if _, cl, err := pc.check(r.Header.Get("DPoP"), "POST", p.srv.URL+"/token", "", ""); err != nil {
			writeJSON(w, 400, map[string]any{"error": "invalid_dpop_proof", "error_description": err.Error()})
			return
		} else if cl.Nonce != want {
			writeJSON(w, 400, map[string]any{"error": "use_dpop_nonce"})
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": bound, "token_type": "DPoP", "expires_in": 60})
	})
	for i := range 3 {
		iss, err := c.Issue(t.Context())
		if err != nil || iss.Token != bound {
			t.Fatalf("Issue() %d = %v; want the bound token", i, err)
		}
	}
	// The first needed a nonce; each later one used the nonce of the
	// answer before.
	if n := len(p.got()); n != 4 {
		t.Errorf("%d token requests for 3 tokens; want 4 (one nonce challenge)", n)
	}

	// A provider that never takes the nonce: asked twice, then the error.
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", "always-new-"+r.Header.Get("DPoP")[:8]+fmt.Sprint(len(p.got())))
		writeJSON(w, 400, map[string]any{"error": "use_dpop_nonce"})
	})
	before := len(p.got())
	var e *provider.Error
	if _, err := c.Issue(t.Context()); !errors.As(err, &e) || e.Code != "use_dpop_nonce" {
		t.Errorf("Issue() error = %v; want the use_dpop_nonce error", err)
	}
	if n := len(p.got()) - before; n != 2 {
		t.Errorf("%d token requests; want 2: one retry with a nonce, never a loop", n)
	}
}

func TestDPoP_TokenResponseChecks(t *testing.T) {
	d, _ := provider.NewDPoP(nil)
	other, _ := provider.NewDPoP(nil)
	p := newIDP(t, true)
	c := p.client(t, basic, provider.DPoPProof(d))
	for name, tt := range map[string]struct {
		body map[string]any
		err  error
	}{
		"a DPoP JWT bound to the key":     {map[string]any{"access_token": dpopToken(t, d.Thumbprint()), "token_type": "DPoP", "expires_in": 60}, nil},
		"an opaque DPoP token":            {map[string]any{"access_token": "opaque", "token_type": "dpop", "expires_in": 60}, nil},
		"a Bearer token":                  {map[string]any{"access_token": "opaque", "token_type": "Bearer", "expires_in": 60}, provider.ErrTokenType},
		"a DPoP JWT bound to another key": {map[string]any{"access_token": dpopToken(t, other.Thumbprint()), "token_type": "DPoP", "expires_in": 60}, provider.ErrTokenType},
	} {
		p.answer(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, tt.body) })
		if _, err := c.Issue(t.Context()); !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s: Issue() error = %v; want %v", name, err, tt.err)
		}
	}
	if got := p.last(t).header.Get("DPoP"); got == "" {
		t.Error("no DPoP header on the token request")
	}

	// A provider that lists the proof algorithms it takes.
	p.set("dpop_signing_alg_values_supported", []string{"RS256"})
	if _, err := provider.New(t.Context(), p.srv.URL, basic, provider.HTTPClient(p.srv.Client()), provider.DPoPProof(d)); !errors.Is(err, provider.ErrSigningAlgorithm) {
		t.Errorf("New() with an ES256 DPoP key, provider taking RS256: error = %v; want ErrSigningAlgorithm", err)
	}
	p.set("dpop_signing_alg_values_supported", []string{"RS256", "ES256"})
	if _, err := provider.New(t.Context(), p.srv.URL, basic, provider.HTTPClient(p.srv.Client()), provider.DPoPProof(d)); err != nil {
		t.Errorf("New() with an ES256 DPoP key, provider taking ES256: %v", err)
	}
}

// TestChallenge_ClaimsReachTheTokenRequest: the claims of a claims challenge,
// through a cache and its transport, become the token request's claims.
func TestChallenge_ClaimsReachTheTokenRequest(t *testing.T) {
	p := newIDP(t, true)
	c := p.client(t, basic)
	cache := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.IssueFunction(c.Issue))
	const claims = `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`
	var mu sync.Mutex
	calls := 0
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			w.Header().Set("WWW-Authenticate", `Bearer realm="", error="insufficient_claims", claims="`+base64.StdEncoding.EncodeToString([]byte(claims))+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(api.Close)
	hc := &http.Client{Transport: jwtcache.NewTransport(cache, api.Client().Transport)}
	resp, err := hc.Get(api.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := p.got()
	if resp.StatusCode != 200 || len(reqs) != 2 {
		t.Fatalf("status %d after %d token requests; want 200 after 2", resp.StatusCode, len(reqs))
	}
	if got := reqs[0].form.Get("claims"); got != "" {
		t.Errorf("first token request has claims %q; want none", got)
	}
	if got := reqs[1].form.Get("claims"); got != claims {
		t.Errorf("second token request has claims %q; want %q", got, claims)
	}
}

// TestDPoP_NonceRetryAuthenticatesAgain: the request made again with the
// provider's nonce carries a client assertion of its own, not a replay.
func TestDPoP_NonceRetryAuthenticatesAgain(t *testing.T) {
	d, _ := provider.NewDPoP(nil)
	p := newIDP(t, true)
	c := p.client(t, provider.PrivateKeyJWT("billing", ecKey(elliptic.P256())), provider.DPoPProof(d))
	first := true
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("DPoP-Nonce", "n-1")
		if first {
			first = false
			writeJSON(w, 400, map[string]any{"error": "use_dpop_nonce"})
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": "t", "token_type": "DPoP", "expires_in": 60})
	})
	if _, err := c.Issue(t.Context()); err != nil {
		t.Fatal(err)
	}
	reqs := p.got()
	if len(reqs) != 2 {
		t.Fatalf("%d token requests; want 2", len(reqs))
	}
	a, b := reqs[0].form.Get("client_assertion"), reqs[1].form.Get("client_assertion")
	if a == "" || a == b {
		t.Errorf("the retry's client assertion is the first one's (%v); want one of its own", a == b)
	}
	if reqs[0].header.Get("DPoP") == reqs[1].header.Get("DPoP") {
		t.Error("the retry's DPoP proof is the first one's")
	}
}

// TestNonce_DPoPTransport runs the DPoP scheme through the transport against
// a resource server that asks for a nonce, rotates it on a success, and sends
// nonces the client must not take.
func TestNonce_DPoPTransport(t *testing.T) {
	d, _ := provider.NewDPoP(nil)
	pc := newProofChecker()
	var mu sync.Mutex
	var got []string // the nonce of each proof
	next := map[string]string{"": "n-1", "n-1": "n-2"}
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, cl, err := pc.check(r.Header.Get("DPoP"), r.Method, "https://"+r.Host+r.URL.Path, strings.TrimPrefix(r.Header.Get("Authorization"), "DPoP "), "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, cl.Nonce)
		mu.Unlock()
		switch {
		case r.URL.Path == "/forbidden":
			w.Header().Set("DPoP-Nonce", "n-forbidden")
			w.WriteHeader(http.StatusForbidden)
		case r.URL.Path == "/bad-nonce":
			w.Header().Set("DPoP-Nonce", `has "quotes"`)
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
		case cl.Nonce == "":
			w.Header().Set("DPoP-Nonce", "n-1")
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("DPoP-Nonce", next[cl.Nonce]) // rotated on a success
		}
	}))
	t.Cleanup(api.Close)
	cache := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.IssueFunction(func(context.Context) (jwtcache.Issued, error) {
		return jwtcache.Issued{Token: "the-token", ExpiresIn: time.Hour}, nil
	}))
	client := &http.Client{Transport: jwtcache.NewTransport(cache, api.Client().Transport, jwtcache.AuthScheme(d))}
	status := func(path string) int {
		resp, err := client.Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tt := range []struct {
		path   string
		status int
		nonces []string // of the proofs sent for it
	}{
		{"/a", 200, []string{"", "n-1"}}, // challenged, sent again with the nonce
		{"/b", 200, []string{"n-2"}},     // the nonce rotated on /a's success
		{"/forbidden", 403, []string{"n-2"}},
		{"/c", 200, []string{"n-forbidden"}}, // a 403's nonce is kept, but not resent for
		{"/bad-nonce", 401, []string{"n-forbidden"}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		if st := status(tt.path); st != tt.status {
			t.Errorf("GET %s = %d; want %d", tt.path, st, tt.status)
		}
		mu.Lock()
		if !slices.Equal(got, tt.nonces) {
			t.Errorf("GET %s: proofs with nonces %q; want %q", tt.path, got, tt.nonces)
		}
		mu.Unlock()
	}
}

// TestDPoP_AuthorizeTargetURI: a proof names the request's target URI as the
// server sees it: the Host header's authority when the request sets one, and
// GET for a request without a method.
func TestDPoP_AuthorizeTargetURI(t *testing.T) {
	d, _ := provider.NewDPoP(nil)
	req, _ := http.NewRequest(http.MethodGet, "https://10.0.0.7:8443/orders?x=1", nil)
	req.Host = "api.example"
	req.Method = ""
	if err := d.Authorize(req, "tok"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := newProofChecker().check(req.Header.Get("DPoP"), "GET", "https://api.example/orders", "tok", ""); err != nil {
		t.Errorf("proof: %v", err)
	}
	if got := req.Header.Get("Authorization"); got != "DPoP tok" {
		t.Errorf("Authorization = %q; want DPoP tok", got)
	}
}

// publicOnly is a crypto.Signer of which only the public key is known.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("no private key")
}

// TestDPoP_ThumbprintRFC7638 checks the thumbprint against RFC 7638's own
// example (section 3.1), and that a signer that fails makes Proof fail.
func TestDPoP_ThumbprintRFC7638(t *testing.T) {
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	nb, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil {
		t.Fatal(err)
	}
	d, err := provider.NewDPoP(publicOnly{&rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: 65537}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint() = %s; want RFC 7638's %s", got, want)
	}
	if _, err := d.Proof(http.MethodGet, "https://api.example/", "tok"); err == nil {
		t.Error("Proof() with a signer that fails succeeded")
	}
}
