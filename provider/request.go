package provider

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Request is what a token request asks for, beyond the grant itself. The
// zero Request asks for the provider's defaults for the client.
//
// Values are sets: order and repetition do not matter, and empty strings are
// ignored. A Scopes entry with spaces in it is several scopes, as it would be
// on the wire.
type Request struct {
	// Audience names the APIs the token is for, each sent as an audience
	// parameter (Auth0, Okta, Zitadel and Keycloak's token exchange read it).
	Audience []string
	// Scopes are the scopes to ask for, sent space-separated in the scope
	// parameter (RFC 6749, section 3.3).
	Scopes []string
	// Resources are resource indicators (RFC 8707): absolute URIs of the
	// resources the token is for, each sent as a resource parameter.
	Resources []string
}

// Key returns r in one canonical form, as a [jwtcache.CacheMap] key for
// [Client.IssueKey]: two Requests have the same key if and only if they ask
// for the same sets of audiences, scopes and resources. The key is never
// empty (the zero Request's is "aud=;res=;scope="), is printable, and carries
// each value query-escaped, so that a value with a separator in it cannot
// pass for two. [ParseKey] inverts it.
func (r Request) Key() string {
	c := r.canonical()
	var b strings.Builder
	writeList(&b, "aud=", c.Audience)
	writeList(&b, ";res=", c.Resources)
	writeList(&b, ";scope=", c.Scopes)
	return b.String()
}

// Key sections, in their order in a key.
var keySections = [...]string{"aud=", "res=", "scope="}

// ParseKey returns the Request whose [Request.Key] key is, in canonical form
// (each set sorted, without duplicates). It returns an error for a string
// that is not the key of any Request, including one in other than the
// canonical form.
func ParseKey(key string) (Request, error) {
	parts := strings.Split(key, ";")
	if len(parts) != len(keySections) {
		return Request{}, fmt.Errorf("provider: parse key %q: want %d sections, have %d", key, len(keySections), len(parts))
	}
	var lists [len(keySections)][]string
	for i, p := range parts {
		body, ok := strings.CutPrefix(p, keySections[i])
		if !ok {
			return Request{}, fmt.Errorf("provider: parse key %q: section %d does not start with %q", key, i+1, keySections[i])
		}
		if body == "" {
			continue
		}
		for _, v := range strings.Split(body, ",") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return Request{}, fmt.Errorf("provider: parse key %q: %w", key, err)
			}
			if u == "" {
				return Request{}, fmt.Errorf("provider: parse key %q: empty value in section %q", key, keySections[i])
			}
			lists[i] = append(lists[i], u)
		}
	}
	r := Request{Audience: lists[0], Resources: lists[1], Scopes: lists[2]}
	if r.Key() != key {
		return Request{}, fmt.Errorf("provider: parse key %q: %w", key, errNotCanonical)
	}
	return r, nil
}

// errNotCanonical is why ParseKey refuses a key that the Key of its Request
// would write otherwise: a key has one form, so that a map has one entry per
// Request.
var errNotCanonical = errors.New("not in canonical form (sorted, without duplicates, escaped as Key does)")

// canonical returns r with each set sorted and without duplicates or empty
// strings, and its scopes split at spaces. It does not modify r's slices.
func (r Request) canonical() Request {
	var scopes []string
	for _, s := range r.Scopes {
		scopes = append(scopes, strings.Fields(s)...)
	}
	return Request{Audience: set(r.Audience), Scopes: set(scopes), Resources: set(r.Resources)}
}

// set returns a sorted copy of vs without duplicates or empty strings; nil if
// none is left.
func set(vs []string) []string {
	var out []string
	for _, v := range vs {
		if v != "" {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// writeList writes prefix, then vs query-escaped and comma-separated: an
// escaped value contains none of ",;=" (url.QueryEscape escapes them all), so
// the key splits back into the values it was made of.
func writeList(b *strings.Builder, prefix string, vs []string) {
	b.WriteString(prefix)
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(url.QueryEscape(v))
	}
}
