package verify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// A KeySet with [Snapshots] saves its set in a [jwtcache.Store] after every
// successful fetch, and while it has no set, looks for one there before it
// fetches: a replica that restarts starts from the set its fleet last saw,
// so that a fleet restart does not ask the provider once per replica, and a
// restart while the provider is down still verifies tokens.
//
// A snapshot is a string: "jwks1.", the base64url of its JSON payload (the
// set's document as fetched, its fetch and confirmation times, its lifetime
// and validators), ".", and the base64url of its HMAC-SHA256. The MAC's key
// is derived from the user's secret, and it covers the KeySet's URL and the
// snapshot name beside the payload, so that a snapshot saved for one issuer
// is refused by the key set of another. Public keys are no secret, but
// whoever can write the store could otherwise put a key of theirs in the
// set.

// snapshotMinSecret is the shortest secret Snapshots takes.
const snapshotMinSecret = 32

// snapshotPrefix begins every snapshot; its version is part of the MAC.
const snapshotPrefix = "jwks1."

// snapshotSkew is how far in the future a snapshot's times may be: replicas'
// clocks differ a little, and a snapshot from further ahead is refused.
const snapshotSkew = time.Minute

// storeShare bounds each store call to this fraction of the fetch timeout,
// as the root package's caches do, so that a store that hangs costs a fetch a
// tenth of its time.
const storeShare = 10

// keySetSnapshots is a KeySet's snapshot store. It is written once by the
// Snapshots option and only read after.
type keySetSnapshots struct {
	store jwtcache.Store
	name  string
	mac   []byte // the MAC key, derived from the user's secret
}

// snapshotWire is a snapshot's payload.
type snapshotWire struct {
	Set          json.RawMessage `json:"set"`       // the JWK Set document as fetched
	Fetched      int64           `json:"fetched"`   // Unix ms: when the set was last fetched whole
	Confirmed    int64           `json:"confirmed"` // Unix ms: when it was last fetched or revalidated
	TTL          int64           `json:"ttl"`       // ms: its lifetime from Confirmed
	ETag         string          `json:"etag,omitempty"`
	LastModified string          `json:"last_modified,omitempty"`
}

// errSnapshot is wrapped by the reasons a snapshot is ignored; it is never
// returned to a caller, only logged.
var errSnapshot = errors.New("verify: key set snapshot ignored")

// newKeySetSnapshots returns the snapshot store of the Snapshots option.
func newKeySetSnapshots(store jwtcache.Store, name string, secret []byte) (*keySetSnapshots, error) {
	switch {
	case store == nil:
		return nil, errors.New("verify: Snapshots: nil store")
	case name == "":
		return nil, errors.New("verify: Snapshots: empty name")
	case len(secret) < snapshotMinSecret:
		return nil, fmt.Errorf("verify: Snapshots: the secret has %d bytes; at least %d are needed", len(secret), snapshotMinSecret)
	}
	// A key of its own, derived from the secret, so that the secret may also
	// be the store's encryption key without the two uses meeting.
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("jwtcache verify: key set snapshot MAC key"))
	return &keySetSnapshots{store: store, name: name, mac: h.Sum(nil)}, nil
}

// key is the store key of the snapshot of the key set at url: the name,
// escaped as the root package escapes a cache's, ':' and the URL.
func (k *keySetSnapshots) key(url string) string {
	return snapshotNameEscaper.Replace(k.name) + ":" + url
}

// snapshotNameEscaper escapes a snapshot name for its store key.
var snapshotNameEscaper = strings.NewReplacer(`\`, `\\`, `:`, `\:`)

// sum returns the MAC of payload, saved for the key set at url.
func (k *keySetSnapshots) sum(url string, payload []byte) []byte {
	h := hmac.New(sha256.New, k.mac)
	var n [binary.MaxVarintLen64]byte
	for _, part := range [][]byte{[]byte(snapshotPrefix), []byte(k.name), []byte(url), payload} {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(part)))])
		h.Write(part)
	}
	return h.Sum(nil)
}

// seal returns the snapshot of p, the set of the key set at url.
func (k *keySetSnapshots) seal(url string, p *keySetSnapshot) (string, error) {
	payload, err := json.Marshal(snapshotWire{
		Set:          p.doc,
		Fetched:      p.fetched.UnixMilli(),
		Confirmed:    p.confirmed.UnixMilli(),
		TTL:          p.ttl.Milliseconds(),
		ETag:         p.etag,
		LastModified: p.lastModified,
	})
	if err != nil {
		return "", fmt.Errorf("verify: key set snapshot: %w", err)
	}
	enc := base64.RawURLEncoding
	return snapshotPrefix + enc.EncodeToString(payload) + "." + enc.EncodeToString(k.sum(url, payload)), nil
}

// open checks the snapshot value, saved for the key set at url, and returns
// its payload. Its errors wrap errSnapshot, and never quote the value.
func (k *keySetSnapshots) open(url, value string) (snapshotWire, error) {
	var w snapshotWire
	rest, ok := strings.CutPrefix(value, snapshotPrefix)
	if !ok {
		return w, fmt.Errorf("%w: not a snapshot of this version", errSnapshot)
	}
	p64, m64, ok := strings.Cut(rest, ".")
	if !ok {
		return w, fmt.Errorf("%w: no MAC", errSnapshot)
	}
	// Strict: one value per payload and MAC, however its last character's
	// spare bits are set.
	enc := base64.RawURLEncoding.Strict()
	payload, err := enc.DecodeString(p64)
	if err != nil {
		return w, fmt.Errorf("%w: payload is not base64url", errSnapshot)
	}
	mac, err := enc.DecodeString(m64)
	if err != nil {
		return w, fmt.Errorf("%w: MAC is not base64url", errSnapshot)
	}
	// Checked before the payload is parsed: nothing unauthenticated is read.
	if !hmac.Equal(mac, k.sum(url, payload)) {
		return w, fmt.Errorf("%w: bad MAC (another secret, another key set, or tampered with)", errSnapshot)
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	if err := d.Decode(&w); err != nil {
		return w, fmt.Errorf("%w: payload: %w", errSnapshot, jsonError(err))
	}
	return w, nil
}

// adopt turns the payload w, loaded at now, into the snapshot a KeySet
// configured by c publishes, or explains why it may not be used: its set
// fails the checks of a fetched one, or is past its stale window, or its
// times are from the future. Its lifetime is clamped to c's [MinTTL] and
// [MaxTTL], and its refresh time jittered afresh; u in [0, 1) draws the
// jitter.
func (c *keySetConfig) adopt(w snapshotWire, now time.Time, u float64) (*keySetSnapshot, error) {
	if int64(len(w.Set)) > c.maxResponseSize {
		return nil, fmt.Errorf("%w: set larger than %d bytes", errSnapshot, c.maxResponseSize)
	}
	keys, err := parseKeySet(w.Set)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSnapshot, err)
	}
	fetched, confirmed := time.UnixMilli(w.Fetched), time.UnixMilli(w.Confirmed)
	switch {
	case confirmed.After(now.Add(snapshotSkew)):
		return nil, fmt.Errorf("%w: confirmed at %s, after now", errSnapshot, confirmed.Format(time.RFC3339))
	case fetched.After(confirmed):
		return nil, fmt.Errorf("%w: fetched after it was confirmed", errSnapshot)
	}
	ttl := min(max(time.Duration(w.TTL)*time.Millisecond, c.minTTL), c.maxTTL)
	n := &keySetSnapshot{
		keys:         keys,
		doc:          w.Set,
		etag:         w.ETag,
		lastModified: w.LastModified,
		ttl:          ttl,
		fetched:      fetched,
		confirmed:    confirmed,
		expiry:       confirmed.Add(ttl),
	}
	n.staleUntil = n.expiry.Add(c.staleWindow)
	if !now.Before(n.staleUntil) {
		return nil, fmt.Errorf("%w: expired at %s, past its stale window", errSnapshot, n.expiry.Format(time.RFC3339))
	}
	n.refreshAt = ksRefreshAt(confirmed, ttl, u)
	return n, nil
}

// warm looks, on the fetch's context ctx, for a snapshot to start from, and
// publishes it if one is usable at now: over cur, the state of a KeySet that
// has no set yet. It returns what it published, or nil. A store that fails
// or holds nothing, and a snapshot that is ignored, leave the fetch to go
// on as without a store.
func (s *KeySet) warm(ctx context.Context, cur *keySetSnapshot, now time.Time) *keySetSnapshot {
	snaps := s.cfg.snapshots
	value, err := s.storeLoad(ctx, snaps.key(s.url))
	switch {
	case errors.Is(err, jwtcache.ErrNotFound):
		return nil
	case err != nil:
		s.storeFailed("load", err)
		return nil
	}
	w, err := snaps.open(s.url, value)
	var n *keySetSnapshot
	if err == nil {
		n, err = s.cfg.adopt(w, now, rand.Float64())
	}
	if err != nil {
		s.stats.snapshotRejects.Add(1)
		s.log(slog.LevelWarn, "verify: key set snapshot ignored", "error", err)
		return nil
	}
	n.attemptAt, n.unknownAt, n.Failure = cur.attemptAt, cur.unknownAt, cur.Failure
	n.freshFor = s.clock.Since(n.refreshAt)
	s.snap.Store(n)
	s.stats.snapshotLoads.Add(1)
	s.log(slog.LevelInfo, "verify: key set started from a snapshot", "keys", len(n.keys),
		"age", now.Sub(n.fetched).Round(time.Second), "expiry", n.expiry.Format(time.RFC3339))
	return n
}

// save saves p, the set a fetch has just published, as the key set's
// snapshot, on the fetch's context ctx; it lives in the store until p's
// stale window ends. A failure is logged and counted, never returned.
func (s *KeySet) save(ctx context.Context, p *keySetSnapshot) {
	snaps := s.cfg.snapshots
	value, err := snaps.seal(s.url, p)
	if err == nil {
		err = s.storeCall(ctx, func(ctx context.Context) error {
			return snaps.store.Save(ctx, snaps.key(s.url), value, p.staleUntil)
		})
	}
	if err != nil {
		s.storeFailed("save", err)
	}
}

// storeLoad loads the value under key, in one bounded store call.
func (s *KeySet) storeLoad(ctx context.Context, key string) (value string, err error) {
	err = s.storeCall(ctx, func(ctx context.Context) error {
		var lerr error
		value, _, lerr = s.cfg.snapshots.store.Load(ctx, key)
		return lerr
	})
	return value, err
}

// storeCall runs call on a context bounded to a share of the fetch timeout,
// and turns a panic of the store into an error: a buggy store must not fail
// a fetch that succeeded.
func (s *KeySet) storeCall(ctx context.Context, call func(context.Context) error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.fetchTimeout/storeShare)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("verify: key set store: panic: %v", r)
		}
	}()
	return call(ctx)
}

// storeFailed counts and logs a failed store call, op.
func (s *KeySet) storeFailed(op string, err error) {
	s.stats.storeErrors.Add(1)
	s.log(slog.LevelWarn, "verify: key set store failed", "op", op, "error", err)
}
