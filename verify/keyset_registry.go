package verify

import (
	"fmt"
	"sync"
	"sync/atomic"
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

	// max and opts are written once by NewRegistry and only read after.
	max  int
	opts []KeySetOption
}

// NewRegistry returns an empty registry of at most limit key sets, each built
// with opts. A limit below 1 is taken as 1.
func NewRegistry(limit int, opts ...KeySetOption) *Registry {
	r := &Registry{max: max(limit, 1), opts: append([]KeySetOption(nil), opts...)}
	r.sets.Store(&map[string]*KeySet{})
	return r
}

// Register adds a key set named name, fetched from url. It fails with
// [ErrRegistryFull] when the registry holds its maximum, with an error when
// name is empty or already registered, and with [NewKeySet]'s error for a
// URL it refuses. It fetches nothing.
func (r *Registry) Register(name, url string) error {
	if name == "" {
		return fmt.Errorf("verify: register: empty name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.sets.Load()
	if _, ok := cur[name]; ok {
		return fmt.Errorf("verify: register %q: already registered", name)
	}
	if len(cur) >= r.max {
		return fmt.Errorf("verify: register %q: %w (%d key sets)", name, ErrRegistryFull, r.max)
	}
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
