package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// rotatingIDP makes p's token endpoint a refresh token grant that rotates:
// the live refresh token is "rt-<n>", spent by the refresh that answers with
// "rt-<n+1>" and the access token "at-<n+1>"; any other is invalid_grant.
// It returns the live one's n.
func rotatingIDP(p *idp) func() int {
	var mu sync.Mutex
	n := 1
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.PostForm.Get("refresh_token") != fmt.Sprintf("rt-%d", n) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "refresh token spent"})
			return
		}
		n++
		writeJSON(w, http.StatusOK, map[string]any{"access_token": fmt.Sprintf("at-%d", n), "token_type": "Bearer",
			"expires_in": 3600, "refresh_token": fmt.Sprintf("rt-%d", n)})
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

func TestRefreshToken_Form(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, basic, provider.DefaultRequest(provider.Request{Scopes: []string{"read"}, Resources: []string{"https://api.example"}}))
	tests := []struct {
		name        string
		answer      map[string]any
		wantRotated bool
		wantNext    string
	}{
		{"rotated", map[string]any{"refresh_token": "rt-2"}, true, "rt-2"},
		{"not rotated: none sent", map[string]any{}, false, "rt-1"},
		{"not rotated: the same sent back", map[string]any{"refresh_token": "rt-1"}, false, "rt-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.answer(func(w http.ResponseWriter, r *http.Request) {
				body := map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 60, "scope": "read"}
				for k, v := range tt.answer {
					body[k] = v
				}
				writeJSON(w, http.StatusOK, body)
			})
			got, err := c.Refresh(t.Context(), "rt-1")
			if err != nil {
				t.Fatalf("Refresh() error = %v", err)
			}
			if got.Token != "at" || got.Scope != "read" || got.Rotated != tt.wantRotated || got.RefreshToken != tt.wantNext {
				t.Errorf("Refresh() = token %q, scope %q, Rotated %v, next %q; want at, read, %v, %q",
					got.Token, got.Scope, got.Rotated, got.RefreshToken, tt.wantRotated, tt.wantNext)
			}
			want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"rt-1"}, "scope": {"read"}, "resource": {"https://api.example"}}
			r := p.last(t)
			if !equalForms(r.form, want) {
				t.Errorf("form = %v; want %v", r.form, want)
			}
			if id, _, ok := (&http.Request{Header: r.header}).BasicAuth(); !ok || id != "billing" {
				t.Errorf("client authentication: basic %v as %q; want the client's", ok, id)
			}
		})
	}

	t.Run("no refresh token: no request", func(t *testing.T) {
		before := len(p.got())
		for _, rt := range []string{"", "  "} {
			if _, err := c.Refresh(t.Context(), rt); err == nil {
				t.Errorf("Refresh(%q) error = nil; want one", rt)
			}
		}
		if n := len(p.got()) - before; n != 0 {
			t.Errorf("%d requests; want none", n)
		}
	})
}

func TestRefreshToken_InvalidGrant(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, basic)
	p.answer(respond(http.StatusBadRequest, `{"error":"invalid_grant","error_description":"grant request is invalid"}`))
	_, err := c.Refresh(t.Context(), "rt-secret-value")
	if !errors.Is(err, provider.ErrInvalidGrant) {
		t.Fatalf("Refresh() error = %v; want ErrInvalidGrant", err)
	}
	if strings.Contains(err.Error(), "rt-secret-value") {
		t.Errorf("error %q carries the refresh token", err)
	}
	if n := len(p.got()); n != 1 {
		t.Errorf("%d requests; want 1: a refused grant is not tried again", n)
	}
	p.answer(respond(http.StatusBadRequest, `{"error":"invalid_request"}`))
	if _, err := c.Refresh(t.Context(), "rt"); errors.Is(err, provider.ErrInvalidGrant) {
		t.Errorf("invalid_request: error = %v matches ErrInvalidGrant; want it not to", err)
	}
}

// losing has the first lose requests that reach p's token endpoint answered
// by a broken connection, after the request was read: the provider may have
// acted on it, and the response is lost.
func losing(t *testing.T, p *idp, lose int32) {
	var n atomic.Int32
	p.intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path != "/token" || n.Add(1) > lose {
			next.ServeHTTP(w, r)
			return
		}
		r.ParseForm()
		next.ServeHTTP(&discardWriter{h: http.Header{}}, r) // the provider acts
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
}

// discardWriter is a response nobody reads.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func TestRefreshToken_LostResponse(t *testing.T) {
	t.Run("retried once, with the same token", func(t *testing.T) {
		p := newIDP(t, false)
		c := p.client(t, basic)
		p.answer(respond(http.StatusOK, `{"access_token":"at","token_type":"Bearer","expires_in":60,"refresh_token":"rt-2"}`))
		losing(t, p, 1)
		got, err := c.Refresh(t.Context(), "rt-1")
		if err != nil || got.RefreshToken != "rt-2" {
			t.Fatalf("Refresh() = %q, %v; want rt-2 on the second try", got.RefreshToken, err)
		}
		reqs := p.got()
		if len(reqs) != 2 || reqs[0].form.Get("refresh_token") != "rt-1" || reqs[1].form.Get("refresh_token") != "rt-1" {
			t.Errorf("%d requests; want 2, both with rt-1", len(reqs))
		}
	})
	t.Run("lost twice: an error, no third try", func(t *testing.T) {
		p := newIDP(t, false)
		c := p.client(t, basic)
		losing(t, p, 10)
		if _, err := c.Refresh(t.Context(), "rt-1"); err == nil {
			t.Fatal("Refresh() error = nil; want one")
		}
		if n := len(p.got()); n != 2 {
			t.Errorf("%d requests; want 2", n)
		}
	})
	t.Run("a provider without a grace window: the grant's error", func(t *testing.T) {
		p := newIDP(t, false)
		c := p.client(t, basic)
		rotatingIDP(p)
		losing(t, p, 1)
		if _, err := c.Refresh(t.Context(), "rt-1"); !errors.Is(err, provider.ErrInvalidGrant) {
			t.Errorf("Refresh() error = %v; want ErrInvalidGrant", err)
		}
	})
}

// flakyGrants is a GrantStore whose calls fail while down, and whose next
// swap, with applyThenFail, is applied and then reported as failed (as a
// timeout after the write would be).
// With corrupt, a stored token cannot be read back; afterLoad, if set, runs
// once, after the next load.
type flakyGrants struct {
	*jwtcachetest.Grants
	down, applyThenFail, corrupt atomic.Bool
	swaps                        atomic.Int32
	afterLoad                    atomic.Pointer[func()]
}

var (
	errGrantsDown = errors.New("grant store down")
	errCorrupt    = errors.New("grant store: the token cannot be read back")
)

func (g *flakyGrants) Load(ctx context.Context, key string) (string, int64, error) {
	if g.down.Load() {
		return "", 0, errGrantsDown
	}
	token, v, err := g.Grants.Load(ctx, key)
	if hook := g.afterLoad.Swap(nil); hook != nil {
		(*hook)()
	}
	if err == nil && g.corrupt.Load() {
		return "", v, errCorrupt
	}
	return token, v, err
}

func (g *flakyGrants) Swap(ctx context.Context, key string, version int64, token string) (int64, error) {
	g.swaps.Add(1)
	if g.down.Load() {
		return 0, errGrantsDown
	}
	v, err := g.Grants.Swap(ctx, key, version, token)
	if err == nil && g.applyThenFail.CompareAndSwap(true, false) {
		return 0, errGrantsDown
	}
	return v, err
}

func (g *flakyGrants) Delete(ctx context.Context, key string, version int64) (bool, error) {
	if g.down.Load() {
		return false, errGrantsDown
	}
	return g.Grants.Delete(ctx, key, version)
}

// newDelegated returns a Delegated of p's client over grants, logging to the
// returned buffer, with alice's grant at rt-1.
func newDelegated(t *testing.T, p *idp, grants provider.GrantStore) (*provider.Delegated, *testkit.Buffer) {
	t.Helper()
	log, logs := testkit.NewLogger()
	d, err := provider.NewDelegated(p.client(t, basic, provider.Logger(log)), grants, jwtcache.Logger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Authorize(t.Context(), "alice", "rt-1"); err != nil {
		t.Fatal(err)
	}
	return d, logs
}

// downAtRefresh returns a Delegated of a rotating provider whose GrantStore
// goes down as the first refresh is sent: between the load of rt-1 and the
// swap of the provider's rt-2, which spends rt-1.
func downAtRefresh(t *testing.T) (*idp, func() int, *flakyGrants, *provider.Delegated, *testkit.Buffer) {
	t.Helper()
	p := newIDP(t, false)
	live := rotatingIDP(p)
	grants := &flakyGrants{Grants: jwtcachetest.NewGrants()}
	d, logs := newDelegated(t, p, grants)
	p.intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		grants.down.Store(true)
		next.ServeHTTP(w, r)
	})
	return p, live, grants, d, logs
}

func TestRefreshRotation_GrantStoreDown(t *testing.T) {
	t.Run("before the refresh: no request", func(t *testing.T) {
		p := newIDP(t, false)
		rotatingIDP(p)
		grants := &flakyGrants{Grants: jwtcachetest.NewGrants()}
		d, _ := newDelegated(t, p, grants)
		grants.down.Store(true)
		if _, err := d.Token(t.Context(), "alice"); !errors.Is(err, errGrantsDown) {
			t.Fatalf("Token() error = %v; want the GrantStore's", err)
		}
		if n := len(p.got()); n != 0 {
			t.Errorf("%d token requests; want none: no refresh without the current refresh token", n)
		}
	})

	t.Run("after the refresh: kept, used, stored once back", func(t *testing.T) {
		p, live, grants, d, logs := downAtRefresh(t)
		tok, err := d.Token(t.Context(), "alice")
		if err != nil || tok != "at-2" {
			t.Fatalf("Token() = %q, %v; want at-2: the access token is good though its refresh token is not stored yet", tok, err)
		}
		if st := d.Stats(); st.Pending != 1 || st.StoreFailures == 0 {
			t.Errorf("Stats() = %+v; want 1 pending, store failures counted", st)
		}
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "could not be stored") {
			t.Errorf("log = %q; want an error that the refresh token is not stored", logs)
		}
		// Still down: the next refresh uses the token kept in memory.
		d.Map().Invalidate("alice")
		if tok, err := d.Token(t.Context(), "alice"); err != nil || tok != "at-3" {
			t.Fatalf("second Token() = %q, %v; want at-3, refreshed with the kept rt-2", tok, err)
		}
		p.intercept(nil)
		grants.down.Store(false)
		testkit.Eventually(t, "the kept refresh token is stored", func() bool { return d.Stats().Pending == 0 })
		stored, version, err := grants.Load(t.Context(), "alice")
		if want := fmt.Sprintf("rt-%d", live()); err != nil || stored != want || version != 2 {
			t.Errorf("stored %q version %d (error %v); want %s version 2, the live one over the spent rt-1", stored, version, err, want)
		}
		if logs := logs.String(); strings.Contains(logs, "rt-2") || strings.Contains(logs, "rt-3") || strings.Contains(logs, "at-") {
			t.Errorf("log carries a token: %q", logs)
		}
		// A replica started now continues the chain.
		d2, err := provider.NewDelegated(p.client(t, basic), grants, jwtcache.Logger(nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d2.Token(t.Context(), "alice"); err != nil {
			t.Errorf("a new replica's Token() error = %v; want a token: the chain is unbroken", err)
		}
	})

	t.Run("a failed swap that was applied", func(t *testing.T) {
		p := newIDP(t, false)
		rotatingIDP(p)
		grants := &flakyGrants{Grants: jwtcachetest.NewGrants()}
		d, logs := newDelegated(t, p, grants)
		grants.applyThenFail.Store(true)
		if _, err := d.Token(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, "the kept refresh token is found stored", func() bool { return d.Stats().Pending == 0 })
		if strings.Contains(logs.String(), "dropped") {
			t.Errorf("log = %q; want no token dropped: the one stored is this replica's", logs)
		}
		d.Map().Invalidate("alice")
		if tok, err := d.Token(t.Context(), "alice"); err != nil || tok != "at-3" {
			t.Errorf("Token() = %q, %v; want at-3", tok, err)
		}
	})
}

func TestDelegated_Close(t *testing.T) {
	t.Run("waits for a refresh under way", func(t *testing.T) {
		p := newIDP(t, false)
		rotatingIDP(p)
		d, _ := newDelegated(t, p, jwtcachetest.NewGrants())
		arrived, release := make(chan struct{}), make(chan struct{})
		p.intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			close(arrived)
			<-release
			next.ServeHTTP(w, r)
		})
		got := make(chan error, 1)
		go func() {
			_, err := d.Token(context.Background(), "alice")
			got <- err
		}()
		<-arrived
		closed := make(chan error, 1)
		go func() { closed <- d.Close(context.Background()) }()
		select {
		case err := <-closed:
			t.Fatalf("Close() = %v before the refresh under way ended", err)
		case <-time.After(50 * time.Millisecond):
		}
		close(release)
		if err := <-got; err != nil {
			t.Errorf("the refresh under way: error = %v; want its token", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close() error = %v", err)
		}
		d.Map().Invalidate("alice")
		if _, err := d.Token(context.Background(), "alice"); !errors.Is(err, provider.ErrClosed) {
			t.Errorf("Token() after Close: error = %v; want ErrClosed", err)
		}
	})

	t.Run("stores what it keeps, or says it is lost", func(t *testing.T) {
		_, live, grants, d, logs := downAtRefresh(t)
		if _, err := d.Token(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if err := d.Close(ctx); err == nil || !strings.Contains(logs.String(), "lost") {
			t.Errorf("Close() with the GrantStore down: error = %v, log %q; want an error, and the loss logged", err, logs)
		}
		grants.down.Store(false)
		if err := d.Close(t.Context()); err != nil {
			t.Errorf("Close() with the GrantStore back: error = %v", err)
		}
		if stored, _, _ := grants.Load(t.Context(), "alice"); stored != fmt.Sprintf("rt-%d", live()) {
			t.Errorf("stored %q; want the live rt-%d", stored, live())
		}
	})
}
