package verify_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// claimsHandler answers 200 with the subject of the claims in the context.
var claimsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := verify.FromContext(r.Context())
	if !ok {
		http.Error(w, "no claims", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "hello "+c.Subject())
})

func TestMiddleware_Responses(t *testing.T) {
	k := testKeys()
	valid := sign(t, "ES256", "p256", k.p256, nil, claims(nil))
	expired := sign(t, "ES256", "p256", k.p256, nil, claims(map[string]any{"exp": t0.Add(-time.Hour).Unix()}))
	tests := []struct {
		name          string
		header        []string // Authorization header values
		opts          []verify.Option
		wantStatus    int
		wantChallenge string
		wantBody      string
	}{
		{"valid", []string{"Bearer " + valid}, nil, 200, "", "hello client-1"},
		{"scheme in lower case", []string{"bearer " + valid}, nil, 200, "", "hello client-1"},
		{"scheme in capitals, three spaces", []string{"BEARER   " + valid}, nil, 200, "", "hello client-1"},
		{"no header", nil, nil, 401, "Bearer", "Unauthorized\n"},
		{"another scheme", []string{"Basic dXNlcjpwYXNz"}, nil, 401, "Bearer", "Unauthorized\n"},
		{"no header, realm", nil, []verify.Option{verify.Realm("orders")}, 401, `Bearer realm="orders"`, "Unauthorized\n"},
		{"scheme only", []string{"Bearer"}, nil, 401, `Bearer error="invalid_token"`, "Unauthorized\n"},
		{"bad character", []string{"Bearer " + valid[:10] + "," + valid[10:]}, nil, 401, `Bearer error="invalid_token"`, "Unauthorized\n"},
		{"two headers", []string{"Bearer " + valid, "Bearer " + valid}, nil, 401, `Bearer error="invalid_token"`, "Unauthorized\n"},
		{"expired", []string{"Bearer " + expired}, nil, 401, `Bearer error="invalid_token"`, "Unauthorized\n"},
		{"expired, realm", []string{"Bearer " + expired}, []verify.Option{verify.Realm("orders")}, 401, `Bearer realm="orders", error="invalid_token"`, "Unauthorized\n"},
		{"garbage", []string{"Bearer abc"}, nil, 401, `Bearer error="invalid_token"`, "Unauthorized\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0), tt.opts...)
			r := httptest.NewRequest("GET", "/orders", nil)
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			w := httptest.NewRecorder()
			v.Middleware(claimsHandler).ServeHTTP(w, r)
			if got := w.Code; got != tt.wantStatus {
				t.Errorf("status = %d; want %d", got, tt.wantStatus)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantChallenge {
				t.Errorf("WWW-Authenticate = %q; want %q", got, tt.wantChallenge)
			}
			if got := w.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q; want %q", got, tt.wantBody)
			}
		})
	}
}

func TestMiddleware_Logs(t *testing.T) {
	k := testKeys()
	expired := sign(t, "ES256", "p256", k.p256, nil, claims(map[string]any{"exp": t0.Add(-time.Hour).Unix()}))
	forged := sign(t, "ES256", "p256", k.p384, nil, claims(nil))
	tests := []struct {
		name    string
		header  string
		want    string // in the log
		wantErr error
	}{
		{"expired", "Bearer " + expired, "level=WARN", verify.ErrExpired},
		{"forged", "Bearer " + forged, "level=WARN", verify.ErrSignature},
		{"bad header", "Bearer " + expired + "%", "level=WARN", verify.ErrMalformed},
		{"no token", "", "level=DEBUG", verify.ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf testkit.Buffer
			var logged error
			l := slog.New(captureHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), &logged})
			v := newVerifier(t, newKeys(t), testkit.NewClock(t0), verify.Logger(l))
			r := httptest.NewRequest("GET", "/orders", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			v.Middleware(claimsHandler).ServeHTTP(w, r)
			log := buf.String()
			if !strings.Contains(log, tt.want) || !strings.Contains(log, "path=/orders") {
				t.Errorf("log = %q; want it to hold %q and the path", log, tt.want)
			}
			if !errors.Is(logged, tt.wantErr) {
				t.Errorf("logged error = %v; want %v", logged, tt.wantErr)
			}
			if tt.header != "" {
				checkNoTokenText(t, log, strings.TrimPrefix(tt.header, "Bearer "))
			}
		})
	}
}

// captureHandler is a slog.Handler that keeps the error attribute.
type captureHandler struct {
	slog.Handler
	err *error
}

func (h captureHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if e, ok := a.Value.Any().(error); ok && a.Key == "error" {
			*h.err = e
		}
		return true
	})
	return h.Handler.Handle(ctx, r)
}

func TestMiddleware_FromContext(t *testing.T) {
	if c, ok := verify.FromContext(context.Background()); ok || c != nil {
		t.Errorf("FromContext(Background) = %v, %v; want nil, false", c, ok)
	}
}

func TestMiddleware_NewContext(t *testing.T) {
	k := testKeys()
	v := newVerifier(t, newKeys(t), testkit.NewClock(t0))
	want, err := v.Verify(context.Background(), sign(t, "ES256", "p256", k.p256, nil, claims(nil)))
	if err != nil {
		t.Fatalf("Verify() error = %v", err)
	}
	ctx := verify.NewContext(context.Background(), want)
	if got, ok := verify.FromContext(ctx); got != want || !ok {
		t.Errorf("FromContext(NewContext(claims)) = %p, %v; want %p, true", got, ok, want)
	}
	if got, ok := verify.FromContext(verify.NewContext(ctx, nil)); got != nil || ok {
		t.Errorf("FromContext(NewContext(nil)) = %v, %v; want nil, false", got, ok)
	}
}

func TestMiddleware_BearerToken(t *testing.T) {
	tests := []struct {
		name    string
		header  []string
		want    string
		wantErr error
	}{
		{"token", []string{"Bearer abc.def-_~+/=="}, "abc.def-_~+/==", nil},
		{"lower case", []string{"bearer abc"}, "abc", nil},
		{"mixed case, two spaces", []string{"bEaReR  abc"}, "abc", nil},
		{"none", nil, "", verify.ErrNoToken},
		{"empty header", []string{""}, "", verify.ErrNoToken},
		{"basic", []string{"Basic abc"}, "", verify.ErrNoToken},
		{"scheme with no space", []string{"Bearerabc"}, "", verify.ErrNoToken},
		{"tab", []string{"Bearer\tabc"}, "", verify.ErrNoToken},
		{"scheme only", []string{"Bearer"}, "", verify.ErrMalformed},
		{"spaces only", []string{"Bearer   "}, "", verify.ErrMalformed},
		{"two tokens", []string{"Bearer abc def"}, "", verify.ErrMalformed},
		{"comma", []string{"Bearer abc,def"}, "", verify.ErrMalformed},
		{"quote", []string{`Bearer "abc"`}, "", verify.ErrMalformed},
		{"padding inside", []string{"Bearer ab=c"}, "", verify.ErrMalformed},
		{"padding only", []string{"Bearer =="}, "", verify.ErrMalformed},
		{"non-ASCII", []string{"Bearer abcé"}, "", verify.ErrMalformed},
		{"two headers", []string{"Bearer abc", "Bearer abc"}, "", verify.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			got, err := verify.BearerToken(r)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, got, err, tt.want, tt.wantErr)
			}
			// The same rules for values carried elsewhere (gRPC metadata).
			if got, err := verify.ParseBearer(tt.header); got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", tt.header, got, err, tt.want, tt.wantErr)
			}
			if err != nil && len(tt.header) == 1 && len(tt.header[0]) > 8 {
				checkNoTokenText(t, err.Error(), "."+strings.TrimPrefix(tt.header[0], "Bearer ")+".")
			}
		})
	}
}

// FuzzBearerHeader checks that BearerToken never panics, accepts only
// b64tokens, and finds the token of every header it accepts at its end.
func FuzzBearerHeader(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer a.b.c", "Bearer  x==", "Basic abc", "Bearer", "Bearer a=b", "Bearer é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{h}
		token, err := verify.BearerToken(r)
		if err != nil {
			if token != "" {
				t.Errorf("BearerToken(%q) = %q, %v; want no token with an error", h, token, err)
			}
			if !errors.Is(err, verify.ErrNoToken) && !errors.Is(err, verify.ErrMalformed) {
				t.Errorf("BearerToken(%q) error = %v; want ErrNoToken or ErrMalformed", h, err)
			}
			return
		}
		if !isB64Token(token) {
			t.Errorf("BearerToken(%q) = %q, not a b64token", h, token)
		}
		if !strings.HasSuffix(h, " "+token) || !strings.EqualFold(h[:7], "bearer ") {
			t.Errorf("BearerToken(%q) = %q; not Bearer, spaces, and it", h, token)
		}
	})
}

// isB64Token reports whether s is a b64token (RFC 6750, section 2.1).
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range body {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-._~+/", c)
		if !ok {
			return false
		}
	}
	return true
}

// staleKeys is a KeySource whose key set cannot be had.
type staleKeys struct{}

func (staleKeys) Key(context.Context, string) (jwk.Key, error) {
	return nil, fmt.Errorf("%w: fetch: connection refused", verify.ErrKeySetStale)
}

// TestMiddleware_KeySetStale: a token that cannot be checked for want of the
// issuer's keys gets a 503 with Retry-After, not a 401 that would make its
// client drop a good token and fetch another.
func TestMiddleware_KeySetStale(t *testing.T) {
	k := testKeys()
	valid := sign(t, "ES256", "p256", k.p256, nil, claims(nil))
	var logs testkit.Buffer
	v, err := verify.New(staleKeys{}, verify.Issuer(testIssuer), verify.Audience(testAudience),
		verify.Clock(testkit.NewClock(t0).Now), verify.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/orders", nil)
	r.Header.Set("Authorization", "Bearer "+valid)
	w := httptest.NewRecorder()
	v.Middleware(claimsHandler).ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("status %d, Retry-After %q, WWW-Authenticate %q; want 503, a Retry-After, no challenge",
			w.Code, w.Header().Get("Retry-After"), w.Header().Get("WWW-Authenticate"))
	}
	if !strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), valid) {
		t.Errorf("log %q; want a warning without the token", logs.String())
	}
}
