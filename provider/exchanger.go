package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"sync"

	"github.com/seed7aeb0c6e/jwtcache"
)

// Exchanger exchanges the access tokens of the callers a service acts for
// (RFC 8693 impersonation: [Client.Exchange] of the caller's token as the
// subject), and caches what it gets: a token per subject token, in a
// [jwtcache.CacheMap] that refreshes, backs off and evicts as the root
// package's maps do. Most callers use [Exchanger.EnsureToken] with the token
// their own caller presented, once they have verified it: every distinct
// subject token is a key and an exchange, so an unverified one from an
// untrusted caller would let anyone spend the provider's rate and evict other
// subjects' tokens. The zero Exchanger is not usable; use [NewExchanger].
//
// A subject token is never a key, a log attribute or a stored value: the
// map's key is the SHA-256 of the subject token, in hex, with the Request's
// [Request.Key] ("sub=<hex>;aud=...;res=...;scope=..."), and the subject
// token reaches the exchange through the context of the call that starts it
// (a cache's fetch keeps its caller's context values; see
// [jwtcache.TokenFunc]). A cached token is never served past its subject's
// exp claim, as [Client.Exchange] caps its lifetime; an opaque subject's
// expiry is unknown, so its token lives as long as the provider said. Near
// the end of its subject's life, a token is exchanged again a handful of
// times, each capped to about a quarter of the last one's life (the refresh
// window opens at three quarters of it), if calls keep coming with that
// subject; a caller's client normally has a new token by then, which is a
// new key.
//
// An Exchanger is safe for concurrent use. Beside the map's lock-free
// lookup, a hit costs a SHA-256 of the subject token and three small
// allocations (the key, and the context that carries the subject): under a
// microsecond for a token of a kilobyte (BenchmarkExchanger_Hit).
type Exchanger struct {
	// client, req, suffix and m are written once by NewExchanger and only
	// read after.
	client *Client
	req    Request
	suffix string // ";" and req's key, after the subject's hash in a key
	m      *jwtcache.CacheMap
}

// NewExchanger returns an Exchanger that exchanges subject tokens with
// client for the audiences, resources and scopes of req. opts configure its
// map as they do [jwtcache.NewCacheMap], and each key's Cache; a token
// function among them is replaced by the exchange. Each subject is a key, so
// [jwtcache.MaxKeys] bounds how many subjects have a token (the default,
// 10,000, unless opts set it), and [jwtcache.IdleTimeout] drops a subject not
// seen for an hour unless opts say otherwise. The tokens of a client made
// with [DPoPProof] are bound to its key ([DPoP.Binding]). With a nil client,
// every exchange fails with an error.
func NewExchanger(client *Client, req Request, opts ...jwtcache.MapOption) *Exchanger {
	x := &Exchanger{client: client, req: req.canonical(), suffix: ";" + req.Key()}
	var all []jwtcache.MapOption
	if client != nil && client.cfg.dpop != nil {
		// Before opts, which may name another binding.
		all = append(all, client.cfg.dpop.Binding())
	}
	all = append(append(all, opts...), jwtcache.MapIssueFunction(x.issue))
	x.m = jwtcache.NewCacheMap(all...)
	return x
}

// EnsureToken returns a valid token exchanged for subjectToken, from the
// cache or from a new exchange, as [jwtcache.CacheMap.EnsureToken] does. An
// empty (or blank) subjectToken is [ErrNoSubjectToken], and nothing is
// exchanged; an expired one, or one within 2 seconds of its exp (too close to
// its end to be exchanged), once its token has gone, an error that
// errors.Is [ErrSubjectExpired] (wrapped in [jwtcache.ErrBackoff] while the
// map backs off).
// No error carries the subject token.
func (x *Exchanger) EnsureToken(ctx context.Context, subjectToken string) (string, error) {
	if err := x.check(subjectToken); err != nil {
		return "", err
	}
	return x.m.EnsureToken(context.WithValue(ctx, subjectKey{}, subjectToken), x.key(subjectToken))
}

// Token is [Exchanger.EnsureToken] for callers that also need the token's
// expiry, which is never after the subject token's exp.
func (x *Exchanger) Token(ctx context.Context, subjectToken string) (jwtcache.Token, error) {
	if err := x.check(subjectToken); err != nil {
		return jwtcache.Token{}, err
	}
	return x.m.Token(context.WithValue(ctx, subjectKey{}, subjectToken), x.key(subjectToken))
}

// Stats returns the counters of the Exchanger's map, as
// [jwtcache.CacheMap.Stats] does: Keys is the number of subjects it holds a
// token (or a backoff) for.
func (x *Exchanger) Stats() jwtcache.Stats {
	return x.m.Stats()
}

// check refuses a blank subject token. (One too close to its exp is
// refused by the exchange: checking its claims here would cost every hit a
// decode.)
func (x *Exchanger) check(subjectToken string) error {
	if strings.TrimSpace(subjectToken) == "" {
		return ErrNoSubjectToken
	}
	return nil
}

// subjectKey is the context key of the subject token of the call that
// starts an exchange.
type subjectKey struct{}

// key returns the map key of subject.
func (x *Exchanger) key(subject string) string {
	h := hashers.Get().(*hasher)
	defer hashers.Put(h)
	h.h.Reset()
	for s := subject; s != ""; {
		n := copy(h.buf[:], s)
		h.h.Write(h.buf[:n])
		s = s[n:]
	}
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h.h.Sum(h.sum[:0]))
	var b strings.Builder // one allocation, the key's
	b.Grow(len("sub=") + len(hx) + len(x.suffix))
	b.WriteString("sub=")
	b.Write(hx[:])
	b.WriteString(x.suffix)
	return b.String()
}

// hasher hashes a subject token for its key without copying it whole to the
// heap, as hashing a []byte(subject) would on every call: the token goes
// through buf, a chunk at a time.
type hasher struct {
	h   hash.Hash
	buf [512]byte
	sum [sha256.Size]byte
}

// hashers are the Exchangers' hashers, reused.
var hashers = sync.Pool{New: func() any { return &hasher{h: sha256.New()} }}

// issue is the map's token function: it exchanges the subject token that
// the fetch's context carries, which must be key's.
func (x *Exchanger) issue(ctx context.Context, key string) (jwtcache.Issued, error) {
	subject, _ := ctx.Value(subjectKey{}).(string)
	if subject == "" || x.key(subject) != key {
		return jwtcache.Issued{}, errNoSubjectInContext
	}
	if x.client == nil {
		return jwtcache.Issued{}, errors.New("provider: exchange: the Exchanger has no Client")
	}
	return x.client.Exchange(ctx, Exchange{SubjectToken: subject, Request: x.req})
}

// errNoSubjectInContext is the error of a fetch whose context does not carry
// its key's subject token, which no call of the Exchanger's methods makes.
var errNoSubjectInContext = errors.New("provider: exchanger: the fetch's context does not carry the subject token of its key")
