package provider_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// The interleavings of a Delegated's refreshes with its GrantStore's
// failures and with the user's Authorize and Forget, on a provider that
// refuses a spent refresh token (rotatingIDP).

// wantStored fails the test unless grants holds the live refresh token of
// the provider, at version.
func wantStored(t *testing.T, grants provider.GrantStore, live func() int, version int64) {
	t.Helper()
	stored, v, err := grants.Load(t.Context(), "alice")
	if want := fmt.Sprintf("rt-%d", live()); err != nil || stored != want || v != version {
		t.Errorf("stored %q version %d (error %v); want the live %s, version %d", stored, v, err, want, version)
	}
}

// TestDelegated_ChainedPending: a rotated token kept in memory is used for
// the next refresh while its store, reported failed, was applied: the newer
// rotation goes on top of it, and the chain is unbroken.
func TestDelegated_ChainedPending(t *testing.T) {
	p, live, grants, d, logs := downAtRefresh(t)
	if _, err := d.Token(t.Context(), "alice"); err != nil { // rt-2 kept in memory
		t.Fatal(err)
	}
	p.intercept(nil)
	grants.down.Store(false)
	grants.applyThenFail.Store(true) // the next store of rt-2 lands, and says it failed
	d.Map().Invalidate("alice")
	if _, err := d.Token(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "nothing kept in memory", func() bool { return d.Stats().Pending == 0 })
	wantStored(t, grants, live, 3)
	d.Map().Invalidate("alice")
	if _, err := d.Token(t.Context(), "alice"); err != nil {
		t.Errorf("the next refresh: error = %v; want a token: the stored refresh token is the live one", err)
	}
	if strings.Contains(logs.String(), "dropped") {
		t.Errorf("log = %q; want no rotated token dropped", logs)
	}
}

// TestDelegated_AuthorizeAfterForget: while a replica keeps the old grant's
// rotated token in memory, another forgets the user and stores their new
// authorization: the kept token finds the version moved (versions are never
// used twice), and is dropped, loudly; the new grant stays.
func TestDelegated_AuthorizeAfterForget(t *testing.T) {
	p, _, grants, a, logs := downAtRefresh(t)
	if _, err := a.Token(t.Context(), "alice"); err != nil { // rt-2 kept in memory by a
		t.Fatal(err)
	}
	b, err := provider.NewDelegated(p.client(t, basic), grants.Grants, jwtcache.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Forget(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := b.Authorize(t.Context(), "alice", "rt-new"); err != nil {
		t.Fatal(err)
	}
	grants.down.Store(false)
	testkit.Eventually(t, "a drops what it kept", func() bool { return a.Stats().Pending == 0 })
	if stored, _, err := grants.Load(t.Context(), "alice"); err != nil || stored != "rt-new" {
		t.Errorf("stored %q (error %v); want the new authorization's rt-new", stored, err)
	}
	if !strings.Contains(logs.String(), "dropped") {
		t.Errorf("log = %q; want the dropped rotation logged", logs)
	}
}

// TestDelegated_ForgetDuringRotation: a rotation stored between Forget's load
// and its delete moves the version; Forget tries again, and the grant is
// gone.
func TestDelegated_ForgetDuringRotation(t *testing.T) {
	p := newIDP(t, false)
	rotatingIDP(p)
	grants := &flakyGrants{Grants: jwtcachetest.NewGrants()}
	d, _ := newDelegated(t, p, grants.Grants)
	other, err := provider.NewDelegated(p.client(t, basic), grants, jwtcache.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	hook := func() {
		if _, err := d.Token(t.Context(), "alice"); err != nil {
			t.Errorf("the rotation: %v", err)
		}
	}
	grants.afterLoad.Store(&hook)
	if err := other.Forget(t.Context(), "alice"); err != nil {
		t.Fatalf("Forget() error = %v", err)
	}
	if _, _, err := grants.Load(t.Context(), "alice"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Errorf("after Forget: Load() error = %v; want ErrNotFound", err)
	}
}

// TestDelegated_AuthorizeFails: an Authorize that cannot reach the GrantStore
// fails and keeps the rotated token kept in memory, the only copy of the
// grant until the user's new authorization is stored.
func TestDelegated_AuthorizeFails(t *testing.T) {
	_, live, grants, d, _ := downAtRefresh(t)
	if _, err := d.Token(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if err := d.Authorize(t.Context(), "alice", "rt-new"); !errors.Is(err, errGrantsDown) {
		t.Fatalf("Authorize() with the GrantStore down: error = %v; want its error", err)
	}
	if n := d.Stats().Pending; n != 1 {
		t.Errorf("Stats().Pending = %d; want 1: kept", n)
	}
	grants.down.Store(false)
	testkit.Eventually(t, "the kept token is stored", func() bool { return d.Stats().Pending == 0 })
	wantStored(t, grants, live, 2)
}

// TestDelegated_AuthorizeOverCorrupt: a stored token that cannot be read back
// (a seal key removed too soon, a row tampered with) is replaced by the
// user's new authorization, and deleted by Forget.
func TestDelegated_AuthorizeOverCorrupt(t *testing.T) {
	p := newIDP(t, false)
	rotatingIDP(p)
	grants := &flakyGrants{Grants: jwtcachetest.NewGrants()}
	d, _ := newDelegated(t, p, grants)
	grants.corrupt.Store(true)
	if _, err := d.Token(t.Context(), "alice"); !errors.Is(err, errCorrupt) {
		t.Errorf("Token() error = %v; want the GrantStore's", err)
	}
	if err := d.Authorize(t.Context(), "alice", "rt-new"); err != nil {
		t.Errorf("Authorize() over a corrupt token: error = %v", err)
	}
	if err := d.Forget(t.Context(), "alice"); err != nil {
		t.Errorf("Forget() of a corrupt token: error = %v", err)
	}
	grants.corrupt.Store(false)
	if _, _, err := grants.Load(t.Context(), "alice"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Errorf("after Forget: Load() error = %v; want ErrNotFound", err)
	}
}

// TestRefreshToken_TooLarge: a response too large to read is an answer, not
// a lost one: not sent again (the provider may have rotated the token).
func TestRefreshToken_TooLarge(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, basic)
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"at","token_type":"Bearer","expires_in":60,"pad":"%s"}`, strings.Repeat("x", 1<<20))
	})
	if _, err := c.Refresh(t.Context(), "rt-1"); err == nil {
		t.Fatal("Refresh() error = nil; want one")
	}
	if n := len(p.got()); n != 1 {
		t.Errorf("%d requests; want 1", n)
	}
}
