// Package seal is the one sealing mechanism of the stores (redisstore's token
// store and grant store, sqlstore): a key ring of AES-256-GCM keys by ID that
// seals with the first key added and opens with any, each value naming its
// key's ID and bound to additional data the caller gives (where the value is
// stored), or, for development, a plaintext mode. It never sees the store's
// I/O, and its errors never hold a payload.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
)

// Value layout: format (1), mode (0 sealed, 1 plain), then for sealed values
// the key ID's length (1), the key ID, the nonce and the sealed payload; for
// plain values the payload. redisstore's values have had this layout since
// its first release: it must not change.
const (
	format    = 1
	modeSeal  = 0
	modePlain = 1
)

// Ring is a set of keys by ID, or the plaintext mode. It is configured by
// [Ring.Add] and [Ring.Plaintext], then checked once by [Ring.Ready], all
// before its first Seal or Open; after that it is never modified, and Seal
// and Open are safe for concurrent use.
type Ring struct {
	pkg       string // names the package in errors: "redisstore"
	corrupt   error  // the package's sentinel, which Open's errors wrap
	keys      map[string]cipher.AEAD
	current   string // the ID of the key new values are sealed with
	plaintext bool
}

// NewRing returns an empty ring whose errors start with pkg (the package
// that configures it, "redisstore") and whose Open errors wrap corrupt.
func NewRing(pkg string, corrupt error) *Ring {
	return &Ring{pkg: pkg, corrupt: corrupt, keys: map[string]cipher.AEAD{}}
}

// Add adds an AES-256 key (32 bytes) under id, 1 to 255 bytes, which is
// stored in clear with every value the key seals. The first key added seals
// new values; the others only open old ones. Its errors, for the package's
// Key option, wrap [bounds.ErrInvalid].
func (r *Ring) Add(id string, key []byte) error {
	if id == "" || len(id) > 255 {
		return fmt.Errorf("%s: Key(%q): want an ID of 1 to 255 bytes: %w", r.pkg, id, bounds.ErrInvalid)
	}
	if _, dup := r.keys[id]; dup {
		return fmt.Errorf("%s: Key(%q): the ID is given twice: %w", r.pkg, id, bounds.ErrInvalid)
	}
	if len(key) != 32 {
		return fmt.Errorf("%s: Key(%q): the key has %d bytes; want 32 (AES-256): %w", r.pkg, id, len(key), bounds.ErrInvalid)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("%s: Key(%q): %w", r.pkg, id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("%s: Key(%q): %w", r.pkg, id, err)
	}
	r.keys[id] = aead
	if r.current == "" {
		r.current = id
	}
	return nil
}

// Plaintext sets the plaintext mode: values are stored unencrypted (but
// still marked, so that a sealing ring refuses them).
func (r *Ring) Plaintext() { r.plaintext = true }

// Ready checks the configuration: a ring needs a key or the plaintext mode,
// not both. Its errors wrap [bounds.ErrInvalid].
func (r *Ring) Ready() error {
	switch {
	case r.current == "" && !r.plaintext:
		return fmt.Errorf("%s: no encryption key: give %[1]s.Key, or InsecurePlaintextTokens for development: %w", r.pkg, bounds.ErrInvalid)
	case r.current != "" && r.plaintext:
		return fmt.Errorf("%s: both a Key and InsecurePlaintextTokens given: %w", r.pkg, bounds.ErrInvalid)
	}
	return nil
}

// Seal returns the value that stores payload, bound to aad: only Open with
// the same aad returns payload.
func (r *Ring) Seal(payload, aad []byte) ([]byte, error) {
	if r.plaintext {
		return append([]byte{format, modePlain}, payload...), nil
	}
	aead := r.keys[r.current]
	out := make([]byte, 0, 3+len(r.current)+aead.NonceSize()+len(payload)+aead.Overhead())
	out = append(out, format, modeSeal, byte(len(r.current)))
	out = append(out, r.current...)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("%s: seal: %w", r.pkg, err)
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, payload, aad), nil
}

// Open returns the payload of the value b that [Ring.Seal] returned for aad.
// Its errors wrap the ring's corrupt sentinel: b is truncated, tampered with,
// bound to other data (copied from elsewhere), sealed with a key ID the ring
// does not have, or unencrypted while the ring seals.
func (r *Ring) Open(b, aad []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != format {
		return nil, fmt.Errorf("%w: unknown format", r.corrupt)
	}
	switch b[1] {
	case modePlain:
		if !r.plaintext {
			return nil, fmt.Errorf("%w: an unencrypted value, and this store encrypts", r.corrupt)
		}
		return b[2:], nil
	case modeSeal:
		if len(b) < 3 || len(b) < 3+int(b[2]) {
			return nil, fmt.Errorf("%w: truncated", r.corrupt)
		}
		id := string(b[3 : 3+int(b[2])])
		aead, ok := r.keys[id]
		if !ok {
			return nil, fmt.Errorf("%w: sealed with key ID %q, which this store does not have", r.corrupt, id)
		}
		rest := b[3+len(id):]
		if len(rest) < aead.NonceSize() {
			return nil, fmt.Errorf("%w: truncated", r.corrupt)
		}
		payload, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
		if err != nil {
			return nil, fmt.Errorf("%w: it does not authenticate under key %q (tampered, truncated or copied)", r.corrupt, id)
		}
		return payload, nil
	}
	return nil, fmt.Errorf("%w: unknown mode", r.corrupt)
}

// Binding returns the additional data that binds a grant store's value to
// its key and version, so that a value copied to another key, or set back to
// another version, does not open. It names the grant's key, not where a store
// keeps it (a Redis key's prefix, a table's name), so that a renamed table
// still opens.
func Binding(key string, version int64) []byte {
	b := make([]byte, 0, len("grant")+8+len(key))
	b = append(b, "grant"...)
	b = binary.BigEndian.AppendUint64(b, uint64(version))
	return append(b, key...)
}
