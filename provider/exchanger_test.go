package provider_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// exchanges answers each token exchange with "exchanged-<n>", which lives
// for expiresIn seconds.
func exchanges(p *idp, expiresIn int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": "exchanged-" + strconv.Itoa(len(p.got())), "token_type": "Bearer",
			"issued_token_type": accessToken, "expires_in": expiresIn,
		})
	}
}

func TestExchanger(t *testing.T) {
	clk := jwtcachetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	iss := jwtcachetest.NewIssuer()
	alice := iss.Mint(clk.Now(), 10*time.Minute, map[string]any{"sub": "alice"})
	bob := iss.Mint(clk.Now(), 20*time.Minute, map[string]any{"sub": "bob"})
	p := newIDP(t, false)
	p.answer(exchanges(p, 3600))
	c := p.client(t, basic, provider.Clock(clk.Now))
	x := provider.NewExchanger(c, provider.Request{Audience: []string{"orders"}}, jwtcache.Clock(clk.Now), jwtcache.Logger(nil))

	tests := []struct {
		subject, want string
		wantExpiry    time.Time // the subject's exp
	}{
		{alice, "exchanged-1", clk.Now().Add(10 * time.Minute)},
		{bob, "exchanged-2", clk.Now().Add(20 * time.Minute)},
		{alice, "exchanged-1", clk.Now().Add(10 * time.Minute)},
		{bob, "exchanged-2", clk.Now().Add(20 * time.Minute)},
	}
	for i, tt := range tests {
		got, err := x.Token(t.Context(), tt.subject)
		if err != nil || got.Value != tt.want {
			t.Fatalf("call %d: Token() = %q, %v; want %q", i+1, got.Value, err, tt.want)
		}
		// The exchanged token lives an hour; its subject, less.
		if !got.Expiry.Equal(tt.wantExpiry) {
			t.Errorf("call %d: Token().Expiry = %v; want %v, the subject's exp", i+1, got.Expiry, tt.wantExpiry)
		}
		if s, err := x.EnsureToken(t.Context(), tt.subject); s != tt.want || err != nil {
			t.Errorf("call %d: EnsureToken() = %q, %v; want %q", i+1, s, err, tt.want)
		}
	}
	reqs := p.got()
	if len(reqs) != 2 {
		t.Fatalf("token exchanges = %d; want 2, one per subject", len(reqs))
	}
	for i, subject := range []string{alice, bob} {
		if got := reqs[i].form.Get("subject_token"); got != subject {
			t.Errorf("exchange %d: subject_token = %.20q...; want the caller's", i+1, got)
		}
		if got := reqs[i].form.Get("audience"); got != "orders" {
			t.Errorf("exchange %d: audience = %q; want orders", i+1, got)
		}
	}
	if s := x.Stats(); s.Keys != 2 || s.Fetches != 2 {
		t.Errorf("Stats() = %+v; want 2 keys, 2 fetches", s)
	}
}

func TestExchanger_NoSubject(t *testing.T) {
	p := newIDP(t, false)
	x := provider.NewExchanger(p.client(t, basic), provider.Request{}, jwtcache.Logger(nil))
	for _, subject := range []string{"", "  "} {
		if _, err := x.EnsureToken(t.Context(), subject); !errors.Is(err, provider.ErrNoSubjectToken) {
			t.Errorf("EnsureToken(%q) error = %v; want ErrNoSubjectToken", subject, err)
		}
		if _, err := x.Token(t.Context(), subject); !errors.Is(err, provider.ErrNoSubjectToken) {
			t.Errorf("Token(%q) error = %v; want ErrNoSubjectToken", subject, err)
		}
	}
	if n := len(p.got()); n != 0 {
		t.Errorf("token exchanges = %d; want none", n)
	}
	if s := x.Stats(); s.Keys != 0 || s.Fetches != 0 {
		t.Errorf("Stats() = %+v; want no key, no fetch", s)
	}
}

// TestExchanger_SubjectExpires lets the subject expire while its exchanged
// token would still live: the token goes with the subject, and the next call
// fails without an exchange.
func TestExchanger_SubjectExpires(t *testing.T) {
	clk := jwtcachetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	subject := jwtcachetest.NewIssuer().Mint(clk.Now(), 10*time.Minute, nil)
	p := newIDP(t, false)
	p.answer(exchanges(p, 3600))
	x := provider.NewExchanger(p.client(t, basic, provider.Clock(clk.Now)), provider.Request{}, jwtcache.Clock(clk.Now), jwtcache.Logger(nil))
	if got, err := x.EnsureToken(t.Context(), subject); got != "exchanged-1" || err != nil {
		t.Fatalf("EnsureToken() = %q, %v; want exchanged-1", got, err)
	}
	clk.Advance(10*time.Minute + time.Second)
	got, err := x.EnsureToken(t.Context(), subject)
	if !errors.Is(err, provider.ErrSubjectExpired) {
		t.Errorf("EnsureToken() after the subject's exp = %q, %v; want ErrSubjectExpired", got, err)
	}
	if n := len(p.got()); n != 1 {
		t.Errorf("token exchanges = %d; want 1: none for an expired subject", n)
	}
}

// TestExchanger_TokenExpires lets the exchanged token expire while its
// subject lives: the next call exchanges again.
func TestExchanger_TokenExpires(t *testing.T) {
	clk := jwtcachetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	subject := jwtcachetest.NewIssuer().Mint(clk.Now(), time.Hour, nil)
	p := newIDP(t, false)
	p.answer(exchanges(p, 60))
	x := provider.NewExchanger(p.client(t, basic, provider.Clock(clk.Now)), provider.Request{}, jwtcache.Clock(clk.Now), jwtcache.Logger(nil))
	for _, want := range []string{"exchanged-1", "exchanged-1"} {
		if got, err := x.EnsureToken(t.Context(), subject); got != want || err != nil {
			t.Fatalf("EnsureToken() = %q, %v; want %q", got, err, want)
		}
	}
	clk.Advance(61 * time.Second)
	if got, err := x.EnsureToken(t.Context(), subject); got != "exchanged-2" || err != nil {
		t.Errorf("EnsureToken() after the token expired = %q, %v; want exchanged-2", got, err)
	}
}

func TestExchanger_MaxKeys(t *testing.T) {
	p := newIDP(t, false)
	p.answer(exchanges(p, 3600))
	x := provider.NewExchanger(p.client(t, basic), provider.Request{}, jwtcache.MaxKeys(2), jwtcache.Logger(nil))
	for i := range 5 {
		if _, err := x.EnsureToken(t.Context(), fmt.Sprintf("subject-%d", i)); err != nil {
			t.Fatalf("EnsureToken(subject-%d) error = %v", i, err)
		}
		if k := x.Stats().Keys; k > 2 {
			t.Errorf("after %d subjects: Stats().Keys = %d; want at most 2", i+1, k)
		}
	}
	if s := x.Stats(); s.Keys != 2 || s.Fetches != 5 {
		t.Errorf("Stats() = %+v; want 2 keys (the MaxKeys), 5 fetches", s)
	}
}

// TestExchanger_KeepsSubjectSecret has the provider echo the subject token
// into its error: neither the errors nor the log records (at debug level)
// show a subject token, and every key in the records is the subject's
// SHA-256.
func TestExchanger_KeepsSubjectSecret(t *testing.T) {
	const good, bad = "subject-of-alice.with+specials/=", "subject-of-mallory.with+specials/="
	p := newIDP(t, false)
	p.answer(func(w http.ResponseWriter, r *http.Request) {
		if s := r.PostForm.Get("subject_token"); s == bad {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "bad subject " + s + " " + r.PostForm.Encode()})
			return
		}
		exchanges(p, 3600)(w, r)
	})
	var logs testkit.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	req := provider.Request{Audience: []string{"orders"}}
	x := provider.NewExchanger(p.client(t, basic), req, jwtcache.Logger(logger))

	if _, err := x.EnsureToken(t.Context(), good); err != nil {
		t.Fatalf("EnsureToken(good) error = %v", err)
	}
	_, err := x.EnsureToken(t.Context(), bad)
	var e *provider.Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" {
		t.Fatalf("EnsureToken(bad) error = %v; want the provider's invalid_grant", err)
	}
	for _, s := range []string{good, bad, "alice", "mallory"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("EnsureToken(bad) error = %q; it shows %q", err, s)
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("log records show %q:\n%s", s, logs.String())
		}
	}

	wantKeys := map[string]bool{}
	for _, s := range []string{good, bad} {
		sum := sha256.Sum256([]byte(s))
		wantKeys["sub="+hex.EncodeToString(sum[:])+";"+req.Key()] = true
	}
	records := strings.Split(strings.TrimSpace(logs.String()), "\n")
	keys := map[string]bool{}
	for _, line := range records {
		var rec struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log record %q: %v", line, err)
		}
		if !wantKeys[rec.Key] {
			t.Errorf("log record's key = %q; want one of the subjects' hashes", rec.Key)
		}
		keys[rec.Key] = true
	}
	if len(keys) != 2 {
		t.Errorf("keys in log records = %v; want both subjects' (a fetched token, a failed fetch)", keys)
	}
	if s := x.Stats(); s.Keys != 2 {
		t.Errorf("Stats().Keys = %d; want 2", s.Keys)
	}
}

// TestExchanger_NilClient fails every exchange with an error, not a panic.
func TestExchanger_NilClient(t *testing.T) {
	x := provider.NewExchanger(nil, provider.Request{}, jwtcache.Logger(nil))
	if _, err := x.EnsureToken(t.Context(), "a-subject-token"); err == nil || strings.Contains(err.Error(), "a-subject-token") {
		t.Errorf("EnsureToken() with a nil Client: error = %v; want one, without the subject", err)
	}
}
