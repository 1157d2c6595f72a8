package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Realm sets the realm that [Verifier.Middleware] names in its
// WWW-Authenticate challenges (RFC 6750, section 3). It must be printable
// ASCII without a quote or a backslash, or [New] fails. The default is none:
// the challenges carry no realm.
func Realm(realm string) Option {
	return optionFunc(func(c *config) { c.realm, c.realmSet = realm, true })
}

// Middleware returns a handler that admits to next only the requests with a
// token that [Verifier.Verify] accepts, sent as an Authorization header with
// the Bearer scheme (RFC 6750, section 2.1; see [BearerToken]), and puts the
// token's claims in the request's context for [FromContext].
//
// A request without Bearer credentials gets a 401 with the challenge
// "WWW-Authenticate: Bearer"; one with a bad header or a token refused, a 401
// with "WWW-Authenticate: Bearer error="invalid_token"" (RFC 6750, section
// 3.1). Neither body says why; the [Logger] is told. A token that cannot be
// checked for want of the issuer's keys ([ErrKeySetStale]: the key set could
// not be fetched, nor a stale one served) gets a 503 with Retry-After instead,
// logged as a warning: the token may be good, and a 401 would make every
// client drop it and fetch another from its provider, a herd on the provider
// for an outage of the key set. Tokens in a query or a form (RFC 6750,
// sections 2.2 and 2.3) are not looked for.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := BearerToken(r)
		var c *Claims
		if err == nil {
			c, err = v.Verify(r.Context(), token)
		}
		if err != nil {
			v.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), c)))
	})
}

// NewContext returns a copy of ctx that carries c, for [FromContext]: it is
// how [Verifier.Middleware] hands a request's claims to its handler, and how
// other front ends (a gRPC interceptor, say) hand them to theirs. A nil c
// puts no claims in the copy: FromContext then reports none.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// FromContext returns the claims that [NewContext] (through
// [Verifier.Middleware], say) put in ctx, and whether there were any.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// BearerToken returns the token of r's Authorization header, which must be
// the one such header and hold credentials of the Bearer scheme, named in any
// case, then one or more spaces, then a b64token (RFC 6750, section 2.1):
// letters, digits, "-", ".", "_", "~", "+" and "/", then any "=" padding. It
// returns [ErrNoToken] if r has no Authorization header or one of another
// scheme, and [ErrMalformed] otherwise; the error never carries the header.
func BearerToken(r *http.Request) (string, error) {
	return ParseBearer(r.Header.Values("Authorization"))
}

// ParseBearer returns the token of the Authorization header whose values are
// given, by the rules of [BearerToken], for protocols that carry the header
// elsewhere than in an [http.Request]: gRPC's "authorization" metadata, say.
// It returns [ErrNoToken] for no value or one of another scheme, and
// [ErrMalformed] for more than one value or a malformed one; the error never
// carries a value.
func ParseBearer(values []string) (string, error) {
	switch {
	case len(values) == 0:
		return "", ErrNoToken
	case len(values) > 1:
		return "", fmt.Errorf("%w: %d Authorization headers", ErrMalformed, len(values))
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimLeft(token, " ")
	if token == "" {
		return "", fmt.Errorf("%w: Bearer credentials without a token", ErrMalformed)
	}
	pad := false
	for i := range len(token) {
		switch ch := token[i]; {
		case ch == '=':
			pad = true
		case pad || !b64Token[ch]:
			return "", fmt.Errorf("%w: character %d of the bearer token is not of a b64token", ErrMalformed, i)
		}
	}
	if token[0] == '=' {
		return "", fmt.Errorf("%w: bearer token of padding only", ErrMalformed)
	}
	return token, nil
}

// claimsKey is the context key of the claims Middleware admitted.
type claimsKey struct{}

// refuse answers a request that Middleware refused with err.
func (v *Verifier) refuse(w http.ResponseWriter, r *http.Request, err error) {
	challenge := v.challengeInvalid
	level, status, limit := slog.LevelWarn, http.StatusUnauthorized, &v.refused
	switch {
	case errors.Is(err, ErrNoToken):
		challenge, level, limit = v.challenge, slog.LevelDebug, nil
	case errors.Is(err, ErrKeySetStale):
		status, limit = http.StatusServiceUnavailable, &v.stale
	}
	if l := v.cfg.logger; l.Enabled(r.Context(), level) && (limit == nil || limit.Allow(v.now(), time.Second)) {
		l.LogAttrs(r.Context(), level, "verify: request refused",
			slog.Int("status", status), slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterStale)
	} else {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	http.Error(w, http.StatusText(status), status)
}

// retryAfterStale is the Retry-After, in seconds, of Middleware's 503 for a
// key set it cannot get: about a KeySet's backoff between refresh attempts.
const retryAfterStale = "5"

// challenges returns the WWW-Authenticate values of Middleware's
// refusals without a token and with a bad one.
func challenges(realm string, named bool) (none, invalid string) {
	if !named {
		return "Bearer", `Bearer error="invalid_token"`
	}
	return `Bearer realm="` + realm + `"`, `Bearer realm="` + realm + `", error="invalid_token"`
}

// validRealm reports whether realm can go in a quoted-string as it is.
func validRealm(realm string) bool {
	for i := range len(realm) {
		if ch := realm[i]; ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			return false
		}
	}
	return true
}

// b64Token holds the characters of a b64token but "=".
var b64Token = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/" {
		t[c] = true
	}
	return t
}()
