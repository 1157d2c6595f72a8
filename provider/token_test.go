package provider_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

func TestClient_TokenResponse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    jwtcache.Issued
		wantErr error // or
		wantMsg string
	}{
		{"Bearer", `{"access_token":"t","token_type":"Bearer","expires_in":3600}`, jwtcache.Issued{Token: "t", ExpiresIn: time.Hour}, nil, ""},
		{"bearer", `{"access_token":"t","token_type":"bearer","expires_in":3600}`, jwtcache.Issued{Token: "t", ExpiresIn: time.Hour}, nil, ""},
		{"BEARER", `{"access_token":"t","token_type":"BEARER","expires_in":60}`, jwtcache.Issued{Token: "t", ExpiresIn: time.Minute}, nil, ""},
		{"DPoP", `{"access_token":"t","token_type":"DPoP","expires_in":3600}`, jwtcache.Issued{}, provider.ErrTokenType, `"DPoP"`},
		{"N_A (token exchange's)", `{"access_token":"t","token_type":"N_A","expires_in":3600}`, jwtcache.Issued{}, provider.ErrTokenType, `"N_A"`},
		{"no token_type", `{"access_token":"t","expires_in":3600}`, jwtcache.Issued{}, provider.ErrTokenType, `""`},
		{"expires_in a string", `{"access_token":"t","token_type":"Bearer","expires_in":"3600"}`, jwtcache.Issued{Token: "t", ExpiresIn: time.Hour}, nil, ""},
		{"expires_in a fraction", `{"access_token":"t","token_type":"Bearer","expires_in":1.5}`, jwtcache.Issued{Token: "t", ExpiresIn: 1500 * time.Millisecond}, nil, ""},
		{"expires_in absent", `{"access_token":"t","token_type":"Bearer"}`, jwtcache.Issued{Token: "t"}, nil, ""},
		{"expires_in null", `{"access_token":"t","token_type":"Bearer","expires_in":null}`, jwtcache.Issued{Token: "t"}, nil, ""},
		{"expires_in 0", `{"access_token":"t","token_type":"Bearer","expires_in":0}`, jwtcache.Issued{}, provider.ErrBadExpiresIn, ""},
		{"expires_in negative", `{"access_token":"t","token_type":"Bearer","expires_in":-30}`, jwtcache.Issued{}, provider.ErrBadExpiresIn, "-30"},
		{"expires_in a negative string", `{"access_token":"t","token_type":"Bearer","expires_in":"-30"}`, jwtcache.Issued{}, provider.ErrBadExpiresIn, "-30"},
		{"expires_in not a number", `{"access_token":"t","token_type":"Bearer","expires_in":"soon"}`, jwtcache.Issued{}, provider.ErrBadExpiresIn, "not a number"},
		{"expires_in Inf", `{"access_token":"t","token_type":"Bearer","expires_in":"Inf"}`, jwtcache.Issued{}, provider.ErrBadExpiresIn, "not a number"},
		{"expires_in a bool", `{"access_token":"t","token_type":"Bearer","expires_in":true}`, jwtcache.Issued{}, provider.ErrBadExpiresIn, "not a number"},
		{"expires_in below a nanosecond: a nanosecond", `{"access_token":"t","token_type":"Bearer","expires_in":1e-12}`, jwtcache.Issued{Token: "t", ExpiresIn: time.Nanosecond}, nil, ""},
		{"expires_in huge: capped", `{"access_token":"t","token_type":"Bearer","expires_in":31536000}`, jwtcache.Issued{Token: "t", ExpiresIn: 24 * time.Hour}, nil, ""},
		{"expires_in beyond int64: capped", `{"access_token":"t","token_type":"Bearer","expires_in":1e300}`, jwtcache.Issued{Token: "t", ExpiresIn: 24 * time.Hour}, nil, ""},
		{"expires_in beyond float64: capped", `{"access_token":"t","token_type":"Bearer","expires_in":1e400}`, jwtcache.Issued{Token: "t", ExpiresIn: 24 * time.Hour}, nil, ""},
		{"scope kept", `{"access_token":"t","token_type":"Bearer","expires_in":60,"scope":"read write"}`, jwtcache.Issued{Token: "t", ExpiresIn: time.Minute, Scope: "read write"}, nil, ""},
		{"no access_token", `{"token_type":"Bearer","expires_in":60}`, jwtcache.Issued{}, nil, "no access_token"},
		{"access_token a number", `{"access_token":42,"token_type":"Bearer"}`, jwtcache.Issued{}, nil, "access_token is a JSON number"},
		{"not JSON", `<html>ok</html>`, jwtcache.Issued{}, nil, "not a JSON object"},
		{"an error with 200", `{"error":"invalid_scope"}`, jwtcache.Issued{}, nil, "invalid_scope (HTTP 200)"},
	}
	p := newIDP(t, true)
	c := p.client(t, basic)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.answer(respond(http.StatusOK, tt.body))
			got, err := c.Issue(t.Context())
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) || tt.wantErr == nil && tt.wantMsg == "" && err != nil {
				t.Fatalf("Issue() error = %v; want %v", err, tt.wantErr)
			}
			if err == nil && (tt.wantErr != nil || tt.wantMsg != "") {
				t.Fatalf("Issue() = %+v; want an error", got)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Issue() error = %q; want it to contain %q", err, tt.wantMsg)
			}
			if got != tt.want {
				t.Errorf("Issue() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestClient_MaxLifetime(t *testing.T) {
	p := newIDP(t, false)
	p.answer(respond(http.StatusOK, `{"access_token":"t","token_type":"Bearer","expires_in":7200}`))
	for _, tt := range []struct {
		max, want time.Duration
	}{
		{time.Hour, time.Hour},
		{3 * time.Hour, 2 * time.Hour},
		{0, 2 * time.Hour}, // the default, 24h
	} {
		c := p.client(t, basic, provider.MaxLifetime(tt.max))
		got, err := c.Issue(t.Context())
		if err != nil || got.ExpiresIn != tt.want {
			t.Errorf("MaxLifetime(%v): Issue() = %v, %v; want ExpiresIn %v", tt.max, got.ExpiresIn, err, tt.want)
		}
	}
}

func TestClient_ErrorResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   provider.Error
		msg    string
	}{
		{"invalid_client", http.StatusUnauthorized,
			`{"error":"invalid_client","error_description":"Client authentication failed","error_uri":"https://idp.example/errors#invalid_client"}`,
			provider.Error{Code: "invalid_client", Description: "Client authentication failed", URI: "https://idp.example/errors#invalid_client", StatusCode: 401},
			"provider: token request: invalid_client (HTTP 401): Client authentication failed (see https://idp.example/errors#invalid_client)"},
		{"invalid_scope", http.StatusBadRequest, `{"error":"invalid_scope"}`,
			provider.Error{Code: "invalid_scope", StatusCode: 400}, "provider: token request: invalid_scope (HTTP 400)"},
		{"control characters dropped", http.StatusBadRequest, `{"error":"invalid_request","error_description":"line\nbreak\u001b[31m"}`,
			provider.Error{Code: "invalid_request", Description: "linebreak[31m", StatusCode: 400}, "provider: token request: invalid_request (HTTP 400): linebreak[31m"},
		{"a long description shortened", http.StatusBadRequest, `{"error":"invalid_request","error_description":"` + strings.Repeat("x", 2000) + `"}`,
			provider.Error{Code: "invalid_request", Description: strings.Repeat("x", 512) + "...", StatusCode: 400}, "xxx..."},
	}
	p := newIDP(t, true)
	c := p.client(t, basic)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.answer(respond(tt.status, tt.body))
			_, err := c.Issue(t.Context())
			var e *provider.Error
			if !errors.As(err, &e) {
				t.Fatalf("Issue() error = %v; want a *provider.Error", err)
			}
			if *e != tt.want {
				t.Errorf("Issue() error = %+v; want %+v", *e, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "provider: token request: ") {
				t.Errorf("Issue() error = %q; want %q", err, tt.msg)
			}
		})
	}
}

func TestClient_NonJSONError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"HTML", http.StatusBadGateway, "<html><body>Bad gateway: the upstream said client_secret=s3cret</body></html>"},
		{"JSON without error", http.StatusInternalServerError, `{"message":"client_secret=s3cret is wrong"}`},
		{"empty", http.StatusServiceUnavailable, ""},
		{"oversized", http.StatusBadRequest, `{"error":"invalid_request","error_description":"` + strings.Repeat("x", 1<<20) + `"}`},
	}
	p := newIDP(t, false)
	c := p.client(t, basic)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.answer(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			_, err := c.Issue(t.Context())
			want := fmt.Sprintf("provider: token request: HTTP %d, without an OAuth error response", tt.status)
			if err == nil || err.Error() != want {
				t.Errorf("Issue() error = %v; want %q", err, want)
			}
			var e *provider.Error
			if errors.As(err, &e) {
				t.Errorf("Issue() error is a *provider.Error: %+v; want a plain error", e)
			}
		})
	}
}

// TestClient_ErrorsKeepSecrets has a hostile token endpoint echo everything
// it received (the body, the Authorization header) into every field a
// response can carry text in: no error shows a secret or an assertion.
// echoingAnswers are a token endpoint's hostile answers, each putting echo(r),
// what the request carried, where an error message might quote it: an error
// response (with status and code), a non-JSON body, a token_type, an
// expires_in.
func echoingAnswers(echo func(*http.Request) string, status int, code string) map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"error_description": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, status, map[string]string{"error": code, "error_description": echo(r), "error_uri": echo(r)})
		},
		"error": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": echo(r)})
		},
		"non-JSON body": func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, echo(r))
		},
		"token_type": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "at", "token_type": echo(r)})
		},
		"expires_in": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": echo(r)})
		},
	}
}

func TestClient_ErrorsKeepSecrets(t *testing.T) {
	const secret = "the-Secret+value/with=specials%&é"
	auths := map[string]provider.ClientAuth{
		"client_secret_basic": provider.ClientSecretBasic("billing", secret),
		"client_secret_post":  provider.ClientSecretPost("billing", secret),
		"client_secret_jwt":   provider.ClientSecretJWT("billing", []byte(secret)),
		"private_key_jwt":     provider.PrivateKeyJWT("billing", p256Key()),
		"client_assertion": provider.ClientAssertion("billing", func(context.Context) (string, error) {
			return "eyJhbGciOiJSUzI1NiJ9.the-platform-assertion.sig", nil
		}),
	}
	echo := func(r *http.Request) string {
		return r.PostForm.Encode() + " " + r.Header.Get("Authorization") + " " + fmt.Sprint(r.PostForm)
	}
	answers := echoingAnswers(echo, http.StatusUnauthorized, "invalid_client")
	answers["200 with an error"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"error": "x", "error_description": echo(r)})
	}
	answers["control characters inside the secrets"] = func(w http.ResponseWriter, r *http.Request) {
		// Between every two characters of the echo: dropped when the text is
		// cleaned, which must come before the redaction.
		sneaky := strings.Join(strings.Split(echo(r), ""), "\u0007") + " " + strings.Join(strings.Split(echo(r), ""), "\u200b")
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": sneaky})
	}
	for authName, auth := range auths {
		for answerName, answer := range answers {
			t.Run(authName+"/"+answerName, func(t *testing.T) {
				p := newIDP(t, false)
				c := p.client(t, auth)
				p.answer(answer)
				_, err := c.Issue(t.Context())
				if err == nil {
					t.Fatal("Issue() error = nil; want one")
				}
				r := p.last(t)
				secrets := []string{secret, url.QueryEscape(secret), r.form.Get("client_assertion"), r.header.Get("Authorization")}
				if h := r.header.Get("Authorization"); h != "" {
					secrets = append(secrets, strings.TrimPrefix(h, "Basic "))
				}
				for _, s := range secrets {
					if s != "" && strings.Contains(err.Error(), s) {
						t.Errorf("Issue() error = %q; it shows %q", err, s)
					}
				}
			})
		}
	}
}

func TestClient_RequestForm(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, basic, provider.DefaultRequest(provider.Request{
		Audience:  []string{"https://api.example/orders", "https://api.example/billing"},
		Scopes:    []string{"write", "read", "read"},
		Resources: []string{"https://api.example/"},
	}))
	tests := []struct {
		name  string
		issue func() (jwtcache.Issued, error)
		want  url.Values
	}{
		{"Issue: the default request, sorted", func() (jwtcache.Issued, error) { return c.Issue(t.Context()) }, url.Values{
			"grant_type": {"client_credentials"},
			"audience":   {"https://api.example/billing", "https://api.example/orders"},
			"scope":      {"read write"},
			"resource":   {"https://api.example/"},
		}},
		{"IssueFor: not merged with the default", func() (jwtcache.Issued, error) {
			return c.IssueFor(t.Context(), provider.Request{Scopes: []string{"admin openid"}})
		}, url.Values{
			"grant_type": {"client_credentials"},
			"scope":      {"admin openid"},
		}},
		{"IssueFor the zero Request: the grant alone", func() (jwtcache.Issued, error) {
			return c.IssueFor(t.Context(), provider.Request{})
		}, url.Values{"grant_type": {"client_credentials"}}},
		{"IssueKey", func() (jwtcache.Issued, error) {
			return c.IssueKey(t.Context(), provider.Request{Audience: []string{"b", "a"}, Resources: []string{"r"}}.Key())
		}, url.Values{
			"grant_type": {"client_credentials"},
			"audience":   {"a", "b"},
			"resource":   {"r"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.issue(); err != nil {
				t.Fatalf("error = %v", err)
			}
			r := p.last(t)
			if !equalForms(r.form, tt.want) {
				t.Errorf("form = %v; want %v", r.form, tt.want)
			}
			if got := r.header.Get("Accept"); got != "application/json" {
				t.Errorf("Accept = %q; want application/json", got)
			}
		})
	}

	before := len(p.got())
	if _, err := c.IssueKey(t.Context(), "not a key"); err == nil {
		t.Error("IssueKey(not a key) error = nil; want one")
	}
	if got := len(p.got()); got != before {
		t.Errorf("token requests after IssueKey(not a key) = %d; want %d", got, before)
	}
}

func equalForms(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestClient_Canceled(t *testing.T) {
	p := newIDP(t, false)
	c := p.client(t, basic)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Issue(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Issue(canceled) error = %v; want context.Canceled", err)
	}
}
