package verify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/seed7aeb0c6e/jwtcache/internal/discovery"
)

// Registry holds the key sets of many issuers (or tenants), by name, up to a
// maximum. Each is a [KeySet] built by [NewKeySet] with the registry's
// options; the registry only names them. Lookups ([Registry.Get],
// [Registry.Status]) take no lock: the name map is copied on every
// registration, which suits a set of names that changes rarely.
type Registry struct {
	// sets is the current name map; it is never modified after it is
	// published: Register and Unregister publish a copy, under mu.
	sets atomic.Pointer[map[string]*KeySet]

	mu sync.Mutex // serializes Register and Unregister

	// max, opts and cfg are written once by NewRegistry and only read
	// after; cfg is opts applied, for RegisterIssuer's discovery.
	max  int
	opts []KeySetOption
	cfg  keySetConfig
}

// NewRegistry returns an empty registry of at most limit key sets, each built
// with opts. A limit below 1 is taken as 1.
func NewRegistry(limit int, opts ...KeySetOption) *Registry {
	r := &Registry{max: max(limit, 1), opts: append([]KeySetOption(nil), opts...)}
	r.cfg = newKeySetConfig(r.opts)
	r.sets.Store(&map[string]*KeySet{})
	return r
}

// Register adds a key set named name, fetched from url. It fails with
// [ErrRegistryFull] when the registry holds its maximum, with an error when
// name is empty or already registered, and with [NewKeySet]'s error for a
// URL it refuses. It fetches nothing.
func (r *Registry) Register(name, url string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.check(name); err != nil {
		return err
	}
	cur := *r.sets.Load()
	s, err := NewKeySet(url, r.opts...)
	if err != nil {
		return fmt.Errorf("verify: register %q: %w", name, err)
	}
	next := make(map[string]*KeySet, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[name] = s
	r.sets.Store(&next)
	return nil
}

// RegisterIssuer adds a key set named name, fetched from the jwks_uri of the
// provider whose issuer identifier is issuer: it fetches the provider's
// metadata on ctx (OpenID Connect Discovery, or RFC 8414 where there is
// none, following no redirect, as
// [github.com/seed7aeb0c6e/jwtcache/provider.Discover] does), bounded by the
// [FetchTimeout], with the registry's [HTTPClient] (without the [PinSPKI]
// pins, which are the key set server's), and registers its jwks_uri as
// [Registry.Register] does. It does not fetch the key set.
//
// The issuer must be an https URL (http only to a loopback host), on the
// [AllowedHosts] if given (else the error wraps [ErrKeySetRefused]); the
// document's issuer must be issuer byte for byte (else the error wraps
// [github.com/seed7aeb0c6e/jwtcache/provider.ErrIssuerMismatch]), and its
// jwks_uri secure (else it wraps
// [github.com/seed7aeb0c6e/jwtcache/provider.ErrInsecureURL]).
// It fails as Register does for an empty or registered name and a full
// registry, before any request, and also if the document has no jwks_uri.
// The registry is not locked while the metadata is fetched: of two calls
// for one name, the second to finish fails.
func (r *Registry) RegisterIssuer(ctx context.Context, name, issuer string) error {
	if err := r.check(name); err != nil {
		return err
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("verify: register %q: issuer: %w", name, err)
	}
	if err := r.cfg.checkURL(u); err != nil {
		return fmt.Errorf("verify: register %q: issuer: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.fetchTimeout)
	defer cancel()
	m, err := discovery.Discover(ctx, r.cfg.client, issuer, nil)
	if err != nil {
		return fmt.Errorf("verify: register %q: %w", name, err)
	}
	if m.JWKSURI == "" {
		return fmt.Errorf("verify: register %q: %w", name, errNoJWKSURI)
	}
	return r.Register(name, m.JWKSURI)
}

// errNoJWKSURI is RegisterIssuer's error for metadata without a jwks_uri.
var errNoJWKSURI = errors.New("the provider's metadata has no jwks_uri")

// check returns the error of registering name, if any, before a key set is
// made: under mu, it is final; without, RegisterIssuer's early look.
func (r *Registry) check(name string) error {
	if name == "" {
		return fmt.Errorf("verify: register: empty name")
	}
	cur := *r.sets.Load()
	if _, ok := cur[name]; ok {
		return fmt.Errorf("verify: register %q: already registered", name)
	}
	if len(cur) >= r.max {
		return fmt.Errorf("verify: register %q: %w (%d key sets)", name, ErrRegistryFull, r.max)
	}
	return nil
}

// Unregister removes the key set named name, if there is one. A caller that
// got it from [Registry.Get] before may go on using it.
func (r *Registry) Unregister(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.sets.Load()
	if _, ok := cur[name]; !ok {
		return
	}
	next := make(map[string]*KeySet, len(cur))
	for k, v := range cur {
		if k != name {
			next[k] = v
		}
	}
	r.sets.Store(&next)
}

// Get returns the key set named name, and whether there is one.
func (r *Registry) Get(name string) (*KeySet, bool) {
	s, ok := (*r.sets.Load())[name]
	return s, ok
}

// Status returns the stats of the key set named name, and whether there is
// one.
func (r *Registry) Status(name string) (KeySetStats, bool) {
	s, ok := r.Get(name)
	if !ok {
		return KeySetStats{}, false
	}
	return s.Stats(), true
}

// Len returns the number of key sets registered.
func (r *Registry) Len() int { return len(*r.sets.Load()) }
