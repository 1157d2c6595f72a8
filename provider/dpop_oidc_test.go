package provider_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// dpopAPI is a resource server that takes DPoP tokens only (RFC 9449,
// section 7): the token verified against the provider's keys, the proof
// verified completely (proofChecker), its key the token's cnf.jkt, and a
// nonce of its own in every proof. It rotates its nonce every rotate
// requests, accepting the one before too, and sends the new one on the
// response.
type dpopAPI struct {
	*httptest.Server
	v      *verify.Verifier
	proofs *proofChecker
	rotate int

	mu         sync.Mutex
	nonces     [2]string // current, previous; guarded by mu
	served     int
	challenged int // nonce challenges sent
	refused    []string
}

func newDPoPAPI(t *testing.T, v *verify.Verifier, rotate int) *dpopAPI {
	a := &dpopAPI{v: v, proofs: newProofChecker(), rotate: rotate, nonces: [2]string{"api-nonce-0"}}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *dpopAPI) refuse(w http.ResponseWriter, why string) {
	a.mu.Lock()
	a.refused = append(a.refused, why)
	a.mu.Unlock()
	w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 EdDSA", error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
}

func (a *dpopAPI) serve(w http.ResponseWriter, r *http.Request) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "DPoP") || token == "" {
		a.refuse(w, "scheme "+scheme)
		return
	}
	claims, err := a.v.Verify(r.Context(), token)
	if err != nil {
		a.refuse(w, "token: "+err.Error())
		return
	}
	cnf, _ := claims.Get("cnf")
	m, _ := cnf.(map[string]any)
	jkt, _, err := a.proofs.check(r.Header.Get("DPoP"), r.Method, "http://"+r.Host+r.URL.Path, token, "")
	if err != nil {
		a.refuse(w, "proof: "+err.Error())
		return
	}
	if want, _ := m["jkt"].(string); want == "" || jkt != want {
		a.refuse(w, "proof key "+jkt+" is not the token's cnf.jkt "+want)
		return
	}
	// The nonce last: a proof that fails for want of it is otherwise good.
	_, cl, _ := newProofChecker().check(r.Header.Get("DPoP"), r.Method, "http://"+r.Host+r.URL.Path, token, "")
	a.mu.Lock()
	if cl.Nonce == "" || (cl.Nonce != a.nonces[0] && cl.Nonce != a.nonces[1]) {
		a.challenged++
		w.Header().Set("DPoP-Nonce", a.nonces[0])
		a.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.served++
	if a.served%a.rotate == 0 {
		a.nonces = [2]string{"api-nonce-" + strconv.Itoa(a.served), a.nonces[0]}
	}
	w.Header().Set("DPoP-Nonce", a.nonces[0])
	a.mu.Unlock()
	io.WriteString(w, "ok")
}

func (a *dpopAPI) counts() (served, challenged int, refused []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.served, a.challenged, append([]string(nil), a.refused...)
}

// TestOIDC_DPoP: a DPoP-bound client of oidc-provider, which requires a
// nonce in every proof, gets one DPoP token through a cache, and its
// transport sends it with a valid proof on every request to a resource
// server that requires nonces of its own and rotates them: one token, one
// nonce challenge at each end, every request served.
func TestOIDC_DPoP(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, oidcConfig{
		Clients:    []oidcClient{{ID: "orders", Secret: harnessSecret, DPoPBound: true}},
		Resources:  []oidcResource{{Identifier: "https://orders.example", TTL: time.Hour}},
		DPoPNonces: true,
	})
	key, err := provider.NewDPoP(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newOIDCClient(t, s, provider.ClientSecretBasic("orders", harnessSecret), provider.DPoPProof(key),
		provider.DefaultRequest(provider.Request{Resources: []string{"https://orders.example"}}))
	keys, err := verify.NewKeySet(c.JWKSURI(), verify.HTTPClient(s.Client(t)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys, verify.Issuer(s.Issuer), verify.Audience("https://orders.example"), verify.Algorithms(jwa.RS256))
	if err != nil {
		t.Fatal(err)
	}
	api := newDPoPAPI(t, v, 30)
	cache := cached(c, key.Binding())
	client := &http.Client{Transport: jwtcache.NewTransport(cache, nil, jwtcache.AuthScheme(key))}

	post := func(path string) int {
		req, _ := http.NewRequest(http.MethodPost, api.URL+path+"?q=1", strings.NewReader(`{"n":1}`))
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post("/orders"); st != http.StatusOK {
		_, _, refused := api.counts()
		t.Fatalf("POST /orders = %d (refused: %q); want 200", st, refused)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if st := post("/orders/" + strconv.Itoa(g*10+i)); st != http.StatusOK {
					t.Errorf("POST = %d; want 200", st)
				}
			}
		}()
	}
	wg.Wait()

	served, challenged, refused := api.counts()
	if served != 81 || len(refused) != 0 {
		t.Errorf("served %d, refused %q; want 81 served, none refused", served, refused)
	}
	// The first request had no nonce. A request whose proof raced a
	// rotation may meet a challenge too, but rotations keep the nonce
	// before, so that is rare; never more than once per rotation.
	if challenged < 1 || challenged > 1+81/30 {
		t.Errorf("%d nonce challenges; want 1 (and at most one per rotation)", challenged)
	}
	if n := s.Issued(t, "orders"); n != 1 {
		t.Errorf("%d tokens issued; want 1: a nonce challenge never drops the token", n)
	}
	nonceRefusals := 0
	for _, r := range s.Refused(t, "orders") {
		if r.Error != "use_dpop_nonce" {
			t.Errorf("token endpoint refused with %s: %s", r.Error, r.Detail)
		}
		nonceRefusals++
	}
	t.Logf("resource server: %d served, %d nonce challenges; token endpoint: %d nonce challenges, %d tokens", served, challenged, nonceRefusals, s.Issued(t, "orders"))
	if nonceRefusals != 1 {
		t.Errorf("token endpoint sent %d nonce challenges; want 1", nonceRefusals)
	}

	// The token is bound: it is a DPoP token, whose cnf.jkt is the key's.
	tok, err := cache.EnsureToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if cnf, _ := claims.Get("cnf"); cnf.(map[string]any)["jkt"] != key.Thumbprint() {
		t.Errorf("token cnf = %v; want jkt %s", cnf, key.Thumbprint())
	}

	// The server checks what it must: a proof is good once; replayed, of
	// another key, of another request, or the token as a bearer token, it
	// is refused.
	proof := mustProof(t, key, http.MethodGet, api.URL+"/x", tok)
	if st := doRaw(t, api.URL+"/x", "DPoP "+tok, proof); st != http.StatusOK {
		t.Errorf("a fresh proof: status %d; want 200", st)
	}
	other, _ := provider.NewDPoP(nil)
	for _, tt := range []struct{ name, auth, proof string }{
		{"replayed proof", "DPoP " + tok, proof},
		{"another key", "DPoP " + tok, mustProof(t, other, http.MethodGet, api.URL+"/x", tok)},
		{"another request", "DPoP " + tok, mustProof(t, key, http.MethodDelete, api.URL+"/x", tok)},
		{"as a bearer token", "Bearer " + tok, ""},
	} {
		if st := doRaw(t, api.URL+"/x", tt.auth, tt.proof); st != http.StatusUnauthorized {
			t.Errorf("%s: status %d; want 401", tt.name, st)
		}
	}
}

func mustProof(t *testing.T, d *provider.DPoP, method, url, tok string) string {
	p, err := d.Proof(method, url, tok)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// doRaw sends a GET to url with the given Authorization and DPoP headers,
// by no transport of this library, and returns the status.
func doRaw(t *testing.T, url, auth, proof string) int {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", auth)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
