package provider_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// Token type identifiers (RFC 8693, section 3) and the grant type.
const (
	tokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessToken   = "urn:ietf:params:oauth:token-type:access_token"
	idToken       = "urn:ietf:params:oauth:token-type:id_token"
	jwtType       = "urn:ietf:params:oauth:token-type:jwt"
)

func TestClient_Exchange(t *testing.T) {
	tests := []struct {
		name string
		x    provider.Exchange
		want url.Values
	}{
		{"the subject alone: an access token", provider.Exchange{SubjectToken: "subject"}, url.Values{
			"grant_type":         {tokenExchange},
			"subject_token":      {"subject"},
			"subject_token_type": {accessToken},
		}},
		{"an actor: an access token", provider.Exchange{SubjectToken: "subject", ActorToken: "actor"}, url.Values{
			"grant_type":         {tokenExchange},
			"subject_token":      {"subject"},
			"subject_token_type": {accessToken},
			"actor_token":        {"actor"},
			"actor_token_type":   {accessToken},
		}},
		{"every parameter, the request's sorted", provider.Exchange{
			SubjectToken:       "subject",
			SubjectTokenType:   idToken,
			ActorToken:         "actor",
			ActorTokenType:     jwtType,
			Request:            provider.Request{Audience: []string{"orders", "billing"}, Scopes: []string{"write read"}, Resources: []string{"https://api.example/"}},
			RequestedTokenType: accessToken,
		}, url.Values{
			"grant_type":           {tokenExchange},
			"subject_token":        {"subject"},
			"subject_token_type":   {idToken},
			"actor_token":          {"actor"},
			"actor_token_type":     {jwtType},
			"audience":             {"billing", "orders"},
			"scope":                {"read write"},
			"resource":             {"https://api.example/"},
			"requested_token_type": {accessToken},
		}},
	}
	p := newIDP(t, false)
	c := p.client(t, basic)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Exchange(t.Context(), tt.x)
			if err != nil {
				t.Fatalf("Exchange() error = %v", err)
			}
			if got.Token == "" || got.ExpiresIn != time.Hour {
				t.Errorf("Exchange() = %+v; want a token that lives an hour", got)
			}
			r := p.last(t)
			if !equalForms(r.form, tt.want) {
				t.Errorf("form = %v; want %v", r.form, tt.want)
			}
			if !strings.HasPrefix(r.header.Get("Authorization"), "Basic ") {
				t.Errorf("Authorization = %q; want the client's authentication", r.header.Get("Authorization"))
			}
		})
	}
}

func TestClient_ExchangeTokenType(t *testing.T) {
	tests := []struct {
		name                  string
		requested             string // RequestedTokenType
		tokenType, issuedType string // of the response; empty: absent
		wantErr               error  // or
		wantMsg               string
	}{
		{"Bearer", "", "Bearer", accessToken, nil, ""},
		{"Bearer, no issued_token_type", "", "Bearer", "", nil, ""},
		{"bearer, an ID token issued", "", "bearer", idToken, nil, ""},
		{"N_A, nothing requested", "", "N_A", idToken, provider.ErrTokenType, `"N_A"`},
		{"N_A for an access token requested", accessToken, "N_A", accessToken, provider.ErrTokenType, `"N_A"`},
		{"N_A for an ID token requested", idToken, "N_A", idToken, nil, ""},
		{"Bearer for a JWT requested", jwtType, "Bearer", jwtType, nil, ""},
		{"another type than requested", jwtType, "Bearer", accessToken, nil,
			`provider: token response: issued_token_type "` + accessToken + `", not the "` + jwtType + `" asked for`},
		{"DPoP", "", "DPoP", accessToken, provider.ErrTokenType, `"DPoP"`},
		{"no token_type", "", "", accessToken, provider.ErrTokenType, `""`},
	}
	p := newIDP(t, false)
	c := p.client(t, basic)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := map[string]any{"access_token": "exchanged", "expires_in": 60}
			if tt.tokenType != "" {
				resp["token_type"] = tt.tokenType
			}
			if tt.issuedType != "" {
				resp["issued_token_type"] = tt.issuedType
			}
			p.answer(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, resp) })
			got, err := c.Exchange(t.Context(), provider.Exchange{SubjectToken: "subject", RequestedTokenType: tt.requested})
			switch {
			case tt.wantErr == nil && tt.wantMsg == "":
				if err != nil || got.Token != "exchanged" {
					t.Errorf("Exchange() = %+v, %v; want the token", got, err)
				}
			case err == nil:
				t.Errorf("Exchange() = %+v; want an error", got)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr), !strings.Contains(err.Error(), tt.wantMsg):
				t.Errorf("Exchange() error = %v; want %v, %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestClient_ExchangeLifetime(t *testing.T) {
	clk := jwtcachetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	iss := jwtcachetest.NewIssuer()
	subject := iss.Mint(clk.Now(), 10*time.Minute, nil) // exp in 10 minutes
	noExp := iss.Mint(clk.Now(), 0, map[string]any{"exp": nil})
	exchanged := iss.Mint(clk.Now(), time.Hour, nil)
	tests := []struct {
		name      string
		x         provider.Exchange
		token     string // issued; opaque if empty
		expiresIn any    // of the response; nil: absent
		want      time.Duration
	}{
		{"a JWT subject caps expires_in", provider.Exchange{SubjectToken: subject}, "", 3600, 10 * time.Minute},
		{"a JWT subject, a shorter expires_in", provider.Exchange{SubjectToken: subject}, "", 300, 5 * time.Minute},
		{"a JWT subject, no expires_in, a JWT issued: capped", provider.Exchange{SubjectToken: subject}, exchanged, nil, 10 * time.Minute},
		{"a JWT subject, no expires_in, an opaque token issued: no lifetime", provider.Exchange{SubjectToken: subject}, "", nil, 0},
		{"a JWT subject and an earlier SubjectExpiry", provider.Exchange{SubjectToken: subject, SubjectExpiry: clk.Now().Add(3 * time.Minute)}, "", 3600, 3 * time.Minute},
		{"a JWT subject and a later SubjectExpiry", provider.Exchange{SubjectToken: subject, SubjectExpiry: clk.Now().Add(time.Hour)}, "", 3600, 10 * time.Minute},
		{"a JWT subject without exp", provider.Exchange{SubjectToken: noExp}, "", 3600, time.Hour},
		{"an opaque subject with SubjectExpiry", provider.Exchange{SubjectToken: "opaque", SubjectExpiry: clk.Now().Add(2 * time.Minute)}, "", 3600, 2 * time.Minute},
		{"an opaque subject: expires_in", provider.Exchange{SubjectToken: "opaque"}, "", 3600, time.Hour},
		{"an opaque subject, no expires_in: none", provider.Exchange{SubjectToken: "opaque"}, exchanged, nil, 0},
		{"a subject that looks like a JWT, and is not", provider.Exchange{SubjectToken: "a.b.c"}, "", 3600, time.Hour},
	}
	p := newIDP(t, false)
	c := p.client(t, basic, provider.Clock(clk.Now))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := map[string]any{"access_token": "opaque-exchanged", "token_type": "Bearer", "issued_token_type": accessToken}
			if tt.token != "" {
				resp["access_token"] = tt.token
			}
			if tt.expiresIn != nil {
				resp["expires_in"] = tt.expiresIn
			}
			p.answer(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, resp) })
			got, err := c.Exchange(t.Context(), tt.x)
			if err != nil {
				t.Fatalf("Exchange() error = %v", err)
			}
			if got.ExpiresIn != tt.want {
				t.Errorf("Exchange().ExpiresIn = %v; want %v", got.ExpiresIn, tt.want)
			}
		})
	}
}

func TestClient_ExchangeErrors(t *testing.T) {
	clk := jwtcachetest.NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	expired := jwtcachetest.NewIssuer().Mint(clk.Now().Add(-time.Hour), 30*time.Minute, nil)
	tests := []struct {
		name    string
		x       provider.Exchange
		wantErr error
		want    string
	}{
		{"no subject token", provider.Exchange{}, provider.ErrNoSubjectToken, "provider: no subject token"},
		{"a blank subject token", provider.Exchange{SubjectToken: " \n"}, provider.ErrNoSubjectToken, "provider: no subject token"},
		{"an actor token type without an actor token", provider.Exchange{SubjectToken: "s", ActorTokenType: accessToken}, nil,
			"provider: token exchange: an actor token type without an actor token"},
		{"an expired JWT subject", provider.Exchange{SubjectToken: expired}, provider.ErrSubjectExpired,
			"provider: subject token expired (at 2026-03-04T04:36:07Z, less than 2s from now): the caller needs a new token"},
		{"an opaque subject past its SubjectExpiry", provider.Exchange{SubjectToken: "opaque", SubjectExpiry: clk.Now()}, provider.ErrSubjectExpired,
			"provider: subject token expired (at 2026-03-04T05:06:07Z, less than 2s from now): the caller needs a new token"},
		{"a subject too close to its end to be exchanged", provider.Exchange{SubjectToken: "opaque", SubjectExpiry: clk.Now().Add(1500 * time.Millisecond)}, provider.ErrSubjectExpired,
			"provider: subject token expired (at 2026-03-04T05:06:08Z, less than 2s from now): the caller needs a new token"},
	}
	p := newIDP(t, false)
	c := p.client(t, basic, provider.Clock(clk.Now))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Exchange(t.Context(), tt.x)
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || err.Error() != tt.want {
				t.Errorf("Exchange() error = %v; want %v, %q", err, tt.wantErr, tt.want)
			}
			if n := len(p.got()); n != 0 {
				t.Errorf("token requests = %d; want none", n)
			}
		})
	}
}

// TestClient_ExchangeKeepsTokens has a hostile token endpoint echo the
// request into every field a response can carry text in: no error shows the
// subject or actor token.
func TestClient_ExchangeKeepsTokens(t *testing.T) {
	const subject, actor = "the-Subject+token/with=specials%&é", "eyJhbGciOiJFUzI1NiJ9.the-actor.sig"
	echo := func(r *http.Request) string {
		return r.PostForm.Encode() + " " + fmt.Sprint(r.PostForm)
	}
	answers := echoingAnswers(echo, http.StatusBadRequest, "invalid_grant")
	answers["issued_token_type"] = func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": "at", "token_type": "Bearer", "issued_token_type": echo(r)})
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			p := newIDP(t, false)
			c := p.client(t, basic)
			p.answer(answer)
			_, err := c.Exchange(t.Context(), provider.Exchange{SubjectToken: subject, ActorToken: actor, RequestedTokenType: jwtType})
			if err == nil {
				t.Fatal("Exchange() error = nil; want one")
			}
			for _, s := range []string{subject, url.QueryEscape(subject), actor, "the-Subject", "the-actor"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("Exchange() error = %q; it shows %q", err, s)
				}
			}
		})
	}
}
