package jwtcache_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// The tests of the root's side of DPoP (RFC 9449): a Scheme that puts a
// proof on each request (the transport's AuthScheme), the nonce challenge
// it answers by sending again, and the Binding that keeps a cache's tokens
// to the replicas that hold its key in a shared store. Package provider's
// DPoP, the real Scheme, is tested in provider/dpop_test.go.

// nonceScheme is a Scheme that asks to send again once for a 401 with a
// DPoP-Nonce header, and records the nonces it put on requests.
type nonceScheme struct {
	mu     sync.Mutex
	nonce  string   // guarded by mu
	proofs []string // guarded by mu
}

func (s *nonceScheme) Authorize(req *http.Request, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", "proof-with-nonce-"+s.nonce)
	s.proofs = append(s.proofs, s.nonce)
	return nil
}

func (s *nonceScheme) Observe(req *http.Request, resp *http.Response) bool {
	n := resp.Header.Get("DPoP-Nonce")
	if n == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh := n != s.nonce
	s.nonce = n
	return fresh && resp.StatusCode == http.StatusUnauthorized
}

// TestDPoP_NonceResendsWithTheSameToken: a 401 use_dpop_nonce with a
// DPoP-Nonce header is answered by sending the request again once, with the
// same token and a proof with the nonce; the token is not dropped.
func TestDPoP_NonceResendsWithTheSameToken(t *testing.T) {
	c, fetches := countingCache(t)
	s := &nonceScheme{}
	srv := &challengeServer{status: 401, header: http.Header{
		"Www-Authenticate": {`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`},
		"Dpop-Nonce":       {"n-1"},
	}}
	req, _ := http.NewRequest(http.MethodPut, "https://api.example/x", strings.NewReader("body"))
	resp, err := jwtcache.NewTransport(c, srv, jwtcache.AuthScheme(s)).RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("RoundTrip() = %v, %v; want 200 after the nonce", resp, err)
	}
	resp.Body.Close()
	sent := srv.sent()
	if len(sent) != 2 || sent[0] != sent[1] || !strings.HasPrefix(sent[0], "DPoP ") {
		t.Errorf("sent %q; want the same DPoP token twice", sent)
	}
	if fetches.Load() != 1 {
		t.Errorf("%d fetches; want 1: a nonce challenge never drops the token", fetches.Load())
	}
	if want := []string{"", "n-1"}; !reflect.DeepEqual(s.proofs, want) {
		t.Errorf("proofs carried nonces %q; want %q", s.proofs, want)
	}
}

// TestDPoP_NonceNoResendWithoutGetBody: a body that cannot be sent again is
// never sent twice, even for a nonce.
func TestDPoP_NonceNoResendWithoutGetBody(t *testing.T) {
	c, fetches := countingCache(t)
	srv := &challengeServer{status: 401, header: http.Header{
		"Www-Authenticate": {`DPoP error="use_dpop_nonce"`}, "Dpop-Nonce": {"n-1"},
	}}
	req, _ := http.NewRequest(http.MethodPost, "https://api.example/", io.NopCloser(strings.NewReader("once")))
	resp, err := jwtcache.NewTransport(c, srv, jwtcache.AuthScheme(&nonceScheme{})).RoundTrip(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("RoundTrip() = %v, %v; want the 401", resp, err)
	}
	resp.Body.Close()
	if n := len(srv.sent()); n != 1 || fetches.Load() != 1 {
		t.Errorf("sent %d requests, %d fetches; want 1 and 1: a body without GetBody is never sent twice", n, fetches.Load())
	}
}

// failingScheme fails to authorize.
type failingScheme struct{}

func (failingScheme) Authorize(*http.Request, string) error      { return errors.New("no key") }
func (failingScheme) Observe(*http.Request, *http.Response) bool { return false }

// TestDPoP_SchemeErrorSendsNothing: a Scheme that cannot authorize a request
// (no key for its proof) fails it unsent, and closes its body.
func TestDPoP_SchemeErrorSendsNothing(t *testing.T) {
	c, _ := countingCache(t)
	srv := &challengeServer{status: 200}
	body := &trackedBody{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, "https://api.example/", body)
	if _, err := jwtcache.NewTransport(c, srv, jwtcache.AuthScheme(failingScheme{})).RoundTrip(req); err == nil {
		t.Fatal("RoundTrip() succeeded; want the scheme's error")
	}
	if n := len(srv.sent()); n != 0 || !body.closed.Load() {
		t.Errorf("sent %d requests, body closed %v; want none sent and the body closed", n, body.closed.Load())
	}
}

// TestDPoP_StoreBinding: caches bound to different keys never share a token, and
// a saved token bound to a key is adopted only by a cache bound to that key.
func TestDPoP_StoreBinding(t *testing.T) {
	f := newSeam()
	a, b := f.replica("api", jwtcache.Binding("key-A")), f.replica("api", jwtcache.Binding("key-B"))
	if ta, tb := mustToken(t, a), mustToken(t, b); ta == tb || f.issued() != 2 {
		t.Errorf("caches bound to two keys share a token: %v (tokens issued = %d)", ta == tb, f.issued())
	}
	if f.store.saved(`api\@key-A`) == "" || f.store.saved(`api\@key-B`) == "" {
		t.Errorf("store keys are not api\\@key-A and api\\@key-B")
	}
	// A name that looks like a name and a binding is no such pair.
	if tb, ta := mustToken(t, f.replica("api@key-A")), mustToken(t, f.replica(`api\`, jwtcache.Binding("key-A"))); tb == ta || f.issued() != 4 {
		t.Errorf("caches named api@key-A and api\\ bound to key-A share a token with api bound to key-A (tokens issued = %d)", f.issued())
	}
	if mustToken(t, f.replica("api", jwtcache.Binding("key-A"))); f.issued() != 4 {
		t.Errorf("a replica bound to key-A fetched its own token; want it to adopt the saved one")
	}

	// A JWT bound to key-A, saved where an unbound cache and a cache bound
	// to key-C look: neither adopts it.
	now := f.clock.Now()
	bound := minter.Mint(now, time.Hour, map[string]any{"cnf": map[string]any{"jkt": "key-A"}})
	for _, key := range []string{"plain", `other\@key-C`} {
		if err := f.store.Save(context.Background(), key, bound, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if tok := mustToken(t, f.replica("plain")); tok == bound {
		t.Errorf("an unbound cache adopted a token bound to key-A")
	}
	if tok := mustToken(t, f.replica("other", jwtcache.Binding("key-C"))); tok == bound {
		t.Errorf("a cache bound to key-C adopted a token bound to key-A")
	}
	if f.issued() != 6 {
		t.Errorf("%d tokens issued; want 6", f.issued())
	}
}
