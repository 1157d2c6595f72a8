package seal_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
	"github.com/seed7aeb0c6e/jwtcache/internal/seal"
)

var errCorrupt = errors.New("test: value cannot be read back")

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 32)
)

// ring returns a ready ring with the keys given as id, key pairs.
func ring(t *testing.T, pairs ...any) *seal.Ring {
	t.Helper()
	r := seal.NewRing("test", errCorrupt)
	for i := 0; i < len(pairs); i += 2 {
		if err := r.Add(pairs[i].(string), pairs[i+1].([]byte)); err != nil {
			t.Fatalf("Add(%q) error = %v", pairs[i], err)
		}
	}
	if err := r.Ready(); err != nil {
		t.Fatalf("Ready() error = %v", err)
	}
	return r
}

func TestRing_RoundTrip(t *testing.T) {
	r := ring(t, "k1", key1)
	payload := []byte("secret refresh token")
	b, err := r.Seal(payload, []byte("billing"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, payload) || bytes.Contains(b, payload[:8]) {
		t.Errorf("Seal() = %q; it holds the payload", b)
	}
	got, err := r.Open(b, []byte("billing"))
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("Open() = %q, %v; want %q", got, err, payload)
	}
	again, _ := r.Seal(payload, []byte("billing"))
	if bytes.Equal(again, b) {
		t.Error("two Seals of one payload are equal; want a fresh nonce each")
	}
}

// TestRing_WireFormat pins the layout redisstore's values have always had:
// format 1, mode 0, the key ID's length, the key ID, a 12-byte nonce, then
// AES-256-GCM over the payload with the additional data.
func TestRing_WireFormat(t *testing.T) {
	r := ring(t, "k1", key1)
	b, err := r.Seal([]byte("payload"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 5 || b[0] != 1 || b[1] != 0 || b[2] != 2 || string(b[3:5]) != "k1" {
		t.Fatalf("Seal() header = %v; want 1, 0, 2, \"k1\"", b[:min(len(b), 5)])
	}
	block, _ := aes.NewCipher(key1)
	aead, _ := cipher.NewGCM(block)
	rest := b[5:]
	got, err := aead.Open(nil, rest[:12], rest[12:], []byte("aad"))
	if err != nil || string(got) != "payload" {
		t.Errorf("AES-GCM Open of the sealed part = %q, %v; want \"payload\"", got, err)
	}

	p := seal.NewRing("test", errCorrupt)
	p.Plaintext()
	b, _ = p.Seal([]byte("payload"), nil)
	if want := append([]byte{1, 1}, "payload"...); !bytes.Equal(b, want) {
		t.Errorf("plaintext Seal() = %v; want %v", b, want)
	}
}

func TestRing_OpenRefuses(t *testing.T) {
	r := ring(t, "k1", key1)
	aad := []byte("billing")
	b, err := r.Seal([]byte("payload"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(b)
	flipped[len(flipped)-1] ^= 1
	plain := seal.NewRing("test", errCorrupt)
	plain.Plaintext()
	plainValue, _ := plain.Seal([]byte("payload"), aad)
	tests := []struct {
		name string
		ring *seal.Ring
		b    []byte
		aad  []byte
		want string
	}{
		{"tampered", r, flipped, aad, "does not authenticate"},
		{"truncated", r, b[:len(b)/2], aad, "does not authenticate"},
		{"truncated in the nonce", r, b[:8], aad, "truncated"},
		{"truncated in the ID", r, b[:4], aad, "truncated"},
		{"empty", r, nil, aad, "unknown format"},
		{"garbage", r, []byte("not a value at all"), aad, "unknown format"},
		{"unknown mode", r, []byte{1, 7, 0}, aad, "unknown mode"},
		{"other additional data", r, b, []byte("payroll"), "does not authenticate"},
		{"unknown key ID", ring(t, "k2", key2), b, aad, `key ID "k1"`},
		{"plaintext into a sealing ring", r, plainValue, aad, "unencrypted"},
		{"sealed into a plaintext ring", plain, b, aad, `key ID "k1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.b, tt.aad)
			if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open() = %q, %v; want an error wrapping the corrupt sentinel, naming %q", got, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "payload") {
				t.Errorf("Open() error = %v; it holds the payload", err)
			}
		})
	}
}

func TestRing_Rotation(t *testing.T) {
	old := ring(t, "k1", key1)
	b, _ := old.Seal([]byte("payload"), nil)
	rotated := ring(t, "k2", key2, "k1", key1)
	if got, err := rotated.Open(b, nil); err != nil || string(got) != "payload" {
		t.Errorf("rotated Open() of the old key's value = %q, %v; want \"payload\"", got, err)
	}
	nb, _ := rotated.Seal([]byte("payload"), nil)
	if string(nb[3:5]) != "k2" {
		t.Errorf("rotated Seal() key ID = %q; want the first key added, k2", nb[3:5])
	}
	if _, err := old.Open(nb, nil); !errors.Is(err, errCorrupt) {
		t.Errorf("old Open() of the new key's value: error = %v; want corrupt", err)
	}
}

func TestRing_Config(t *testing.T) {
	tests := []struct {
		name   string
		config func(r *seal.Ring) error
		want   string // "" for no error
	}{
		{"key", func(r *seal.Ring) error { return r.Add("k", key1) }, ""},
		{"plaintext", func(r *seal.Ring) error { r.Plaintext(); return nil }, ""},
		{"nothing", func(r *seal.Ring) error { return nil }, "test: no encryption key: give test.Key"},
		{"short key", func(r *seal.Ring) error { return r.Add("k", []byte("short")) }, `test: Key("k"): the key has 5 bytes; want 32`},
		{"empty ID", func(r *seal.Ring) error { return r.Add("", key1) }, `test: Key(""): want an ID of 1 to 255 bytes`},
		{"long ID", func(r *seal.Ring) error { return r.Add(strings.Repeat("x", 256), key1) }, "want an ID of 1 to 255 bytes"},
		{"duplicate ID", func(r *seal.Ring) error { r.Add("k", key1); return r.Add("k", key2) }, `test: Key("k"): the ID is given twice`},
		{"key and plaintext", func(r *seal.Ring) error { r.Plaintext(); return r.Add("k", key1) }, "test: both a Key and InsecurePlaintextTokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := seal.NewRing("test", errCorrupt)
			err := tt.config(r)
			if err == nil {
				err = r.Ready()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("error = %v; want none", err)
			case tt.want != "" && (!errors.Is(err, bounds.ErrInvalid) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v; want ErrInvalid naming %q", err, tt.want)
			}
		})
	}
}

func TestBinding(t *testing.T) {
	r := ring(t, "k1", key1)
	b, _ := r.Seal([]byte("payload"), seal.Binding("alice", 3))
	if _, err := r.Open(b, seal.Binding("alice", 3)); err != nil {
		t.Errorf("Open() with the same binding: error = %v", err)
	}
	for _, other := range [][]byte{seal.Binding("alice", 4), seal.Binding("bob", 3), seal.Binding("alice", 0), seal.Binding("", 3)} {
		if _, err := r.Open(b, other); !errors.Is(err, errCorrupt) {
			t.Errorf("Open() with binding %q: error = %v; want corrupt", other, err)
		}
	}
}

func TestRing_Concurrent(t *testing.T) {
	r := ring(t, "k1", key1)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := []byte{byte(i)}
			b, err := r.Seal(payload, nil)
			if err != nil {
				t.Error(err)
				return
			}
			if got, err := r.Open(b, nil); err != nil || !bytes.Equal(got, payload) {
				t.Errorf("Open() = %v, %v; want %v", got, err, payload)
			}
		}()
	}
	wg.Wait()
}
