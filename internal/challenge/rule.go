package challenge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Source is what the rule acts on: a jwtcache.Cache, or one key of a
// jwtcache.CacheMap, resolved once per request. It must be safe for
// concurrent use.
type Source interface {
	// Token returns the token to send, as Cache.EnsureToken does.
	Token(ctx context.Context) (string, error)
	// Invalidate drops token if it is still the cached one, as
	// Cache.InvalidateToken does, so that a burst of refusals of one token
	// causes one fetch.
	Invalidate(token string) bool
	// Renew fetches a successor of token on ctx (whose values the fetch
	// keeps) while token stays cached, as the unexported Cache.renew does.
	Renew(ctx context.Context, token string) (string, error)
}

// RenewCache and RenewMap are package jwtcache's (*Cache).renew and
// (*CacheMap).renew, which it sets in an init, so that the packages under it
// (jwtgrpc) renew a token on a claims challenge as its Transport does,
// without jwtcache exporting renew. They are typed any because this package
// cannot name jwtcache's types (jwtcache imports it); their types are in the
// comments, and a user asserts them once, as it is initialized (after
// jwtcache, which it imports), so that a mismatch fails at once, in every
// test. grpc-go's internal package hands its internals to its subpackages
// the same way (google.golang.org/grpc/internal: GetServerCredentials and
// the rest).
var (
	RenewCache any // func(*jwtcache.Cache, context.Context, string) (jwtcache.Token, error)
	RenewMap   any // func(*jwtcache.CacheMap, context.Context, string, string) (jwtcache.Token, error)
)

// Status is what the rule reads of an answer's status.
type Status int

const (
	// Other is any status but the two below: the rule passes the answer
	// on.
	Other Status = iota
	// Unauthorized is HTTP's 401 and gRPC's Unauthenticated: the token was
	// refused, or does not suffice.
	Unauthorized
	// Forbidden is HTTP's 403 and gRPC's PermissionDenied: the token was
	// taken, but does not suffice.
	Forbidden
)

// Action is what a client does with an answer.
type Action int

const (
	Pass    Action = iota // hand the answer to the caller
	Refetch               // drop the token, send again with a fresh one
	Resend                // send again with the same token (the scheme took a nonce)
	Refuse                // no token of the cache can do better: the caller gets an error that says so
	Renew                 // fetch a successor with the claims asked for, send again with it
)

// Verdict is the rule's decision on an answer.
type Verdict struct {
	Action Action
	// Challenge is the challenge that decided it; the zero Challenge if
	// none did.
	Challenge Challenge
	// Claims are the claims that a Renew fetches with (see [WithClaims]).
	Claims string
}

// The error codes of the challenges that the rule acts on, beyond RFC 6750's
// invalid_token, which it treats as any other refusal.
const (
	CodeInsufficientScope    = "insufficient_scope"               // RFC 6750
	CodeInsufficientClaims   = "insufficient_claims"              // Microsoft's claims challenge (CAE)
	CodeInsufficientUserAuth = "insufficient_user_authentication" // RFC 9470
	CodeUseDPoPNonce         = "use_dpop_nonce"                   // RFC 9449
)

// Handle is the rule: it decides what to do with an answer of status whose
// WWW-Authenticate challenges are values (again is the scheme's verdict,
// that it would send the request again with the same token: a DPoP nonce it
// took), to a request that was sent with token sent, and does it on src. It
// returns the verdict and, if the request is to be sent again, the token to
// send it with:
//   - invalid_token, or an Unauthorized that says nothing more (no challenge,
//     another scheme's): Refetch. It drops sent if src still holds it, and
//     takes another token, if one different from sent is to be had;
//   - insufficient_claims with a claims parameter (a claims challenge, see
//     [WithClaims]): Renew. It fetches a successor of sent on ctx with the
//     claims, while sent stays cached, if it arrives and differs from sent;
//   - insufficient_scope and insufficient_user_authentication: Refuse. No
//     token of the cache can do better; the caller turns the answer into an
//     error that says so;
//   - again: Resend, with sent;
//   - anything else (a Forbidden without those codes, a use_dpop_nonce the
//     scheme did not take, an insufficient_claims without usable claims):
//     Pass.
//
// replay reports whether the request can be sent again at all (a body that
// can be, a stream that nothing went either way on): without it, Refetch
// still drops sent, and nothing is fetched. A request is sent again only
// when Handle reports ok; otherwise the caller gets the answer as it came
// (or, on Refuse, the error). Handle is given a Source by type, not by
// interface, so that a key of a CacheMap is not boxed for each request.
func Handle[S Source](ctx context.Context, src S, status Status, again bool, values []string, sent string, replay bool) (v Verdict, next string, ok bool) {
	v = decide(status, again, values)
	var err error
	switch v.Action {
	case Refetch:
		src.Invalidate(sent)
		if !replay {
			return v, "", false
		}
		next, err = src.Token(ctx)
	case Renew:
		if !replay {
			return v, "", false
		}
		next, err = src.Renew(WithClaims(ctx, v.Claims), sent)
	case Resend:
		if !replay {
			return v, "", false
		}
		return v, sent, true
	default:
		return v, "", false
	}
	if err != nil || next == sent {
		return v, "", false
	}
	return v, next, true
}

// decide is Handle's decision: a pure function of the answer.
func decide(status Status, again bool, values []string) Verdict {
	if status != Unauthorized && status != Forbidden {
		return Verdict{}
	}
	if again {
		return Verdict{Action: Resend}
	}
	c := tokenChallenge(Parse(values))
	switch c.Params["error"] {
	case CodeInsufficientScope, CodeInsufficientUserAuth:
		return Verdict{Action: Refuse, Challenge: c}
	case CodeUseDPoPNonce:
		return Verdict{Challenge: c} // a nonce the scheme did not take: nothing to retry with
	case CodeInsufficientClaims:
		if claims, ok := claimsOf(c); ok {
			return Verdict{Action: Renew, Challenge: c, Claims: claims}
		}
		return Verdict{Challenge: c}
	}
	if status == Unauthorized {
		return Verdict{Action: Refetch, Challenge: c}
	}
	return Verdict{Challenge: c}
}

// tokenChallenge returns the first challenge of the schemes of access tokens
// (Bearer, DPoP) with an error code; the zero Challenge if there is none.
func tokenChallenge(cs []Challenge) Challenge {
	for _, c := range cs {
		if (c.Is("Bearer") || c.Is("DPoP")) && c.Params["error"] != "" {
			return c
		}
	}
	return Challenge{}
}

// claimsOf returns the claims of an insufficient_claims challenge c: its
// claims parameter, a JSON object, base64-encoded as Microsoft Entra ID sends
// it (or not), and reports whether it has one.
func claimsOf(c Challenge) (string, bool) {
	raw := strings.TrimSpace(c.Params["claims"])
	if raw == "" || len(raw) > maxClaims {
		return "", false
	}
	if raw[0] == '{' {
		return raw, json.Valid([]byte(raw))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(raw); err == nil {
			if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "{") && json.Valid(b) {
				return s, true
			}
			return "", false
		}
	}
	return "", false
}

// maxClaims bounds a claims challenge.
const maxClaims = 8 << 10

// claimsKey is the context key of a claims challenge.
type claimsKey struct{}

// WithClaims returns ctx with the claims of a claims challenge, which
// jwtcache.ClaimsChallenge reads (see there).
func WithClaims(ctx context.Context, claims string) context.Context {
	return context.WithValue(ctx, claimsKey{}, claims)
}

// Claims returns the claims that ctx carries, and reports whether it
// carries any.
func Claims(ctx context.Context) (claims string, ok bool) {
	claims, ok = ctx.Value(claimsKey{}).(string)
	return claims, ok
}
