package verify

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/bounds"
)

// KeySetOption configures a [KeySet]; given to [NewRegistry], it configures
// every KeySet of the registry. Options are applied in order; a later option
// overrides an earlier one of the same kind.
//
// Every KeySetOption is also an [Option]: given to [NewFromIssuer], it
// configures the Verifier's key set; given to [New], whose key set is the
// caller's, it is an error.
type KeySetOption interface {
	Option
	applyKeySet(*keySetConfig)
}

// keySetOptionFunc adapts a function to [KeySetOption].
type keySetOptionFunc func(*keySetConfig)

func (f keySetOptionFunc) applyKeySet(c *keySetConfig) { f(c) }

func (f keySetOptionFunc) apply(c *config) {
	c.keySet = append(c.keySet, f)
	c.keySetOnly = true
}

// Defaults, documented on the options that set them.
const (
	defaultFetchTimeout       = 10 * time.Second
	defaultMinTTL             = 5 * time.Minute
	defaultMaxTTL             = 24 * time.Hour
	defaultMinRefreshInterval = 10 * time.Second
	defaultStaleWindow        = time.Hour
	defaultMaxResponseSize    = 1 << 20
	maxRedirects              = 3
	ksBackoffMin              = time.Second
	ksBackoffMax              = 5 * time.Minute
)

// keySetConfig is the validated configuration of a KeySet. It is written once
// by newKeySetConfig and only read afterwards.
type keySetConfig struct {
	client             *http.Client
	fetchTimeout       time.Duration
	minTTL, maxTTL     time.Duration
	minRefreshInterval time.Duration
	staleWindow        time.Duration
	maxResponseSize    int64
	allowedHosts       map[string]bool // nil: any host
	pins               [][sha256.Size]byte
	logger             *slog.Logger
	loggerSet          bool // Logger was given; a nil logger then discards
	clock              func() time.Time
	snapshots          *keySetSnapshots // nil: none
	err                error            // the first invalid option
}

// check records err, if it is the first invalid option of c.
func (c *keySetConfig) check(err error) {
	if c.err == nil {
		c.err = err
	}
}

// newKeySetConfig applies opts to the defaults, and clamps them as each
// option documents.
func newKeySetConfig(opts []KeySetOption) keySetConfig {
	c := keySetConfig{
		fetchTimeout:       defaultFetchTimeout,
		minTTL:             defaultMinTTL,
		maxTTL:             defaultMaxTTL,
		minRefreshInterval: defaultMinRefreshInterval,
		staleWindow:        defaultStaleWindow,
		maxResponseSize:    defaultMaxResponseSize,
	}
	for _, o := range opts {
		if o != nil {
			o.applyKeySet(&c)
		}
	}
	if c.maxTTL < c.minTTL {
		c.check(fmt.Errorf("verify: MaxTTL(%s): want no less than MinTTL (%s): %w", c.maxTTL, c.minTTL, jwtcache.ErrInvalid))
	}
	switch {
	case !c.loggerSet:
		c.logger = slog.Default()
	case c.logger == nil:
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// HTTPClient sets the client that fetches the key set; its Timeout, if any,
// applies beside the [FetchTimeout]. The key set uses a copy whose
// CheckRedirect enforces its own redirect policy (at most 3 redirects, each to
// a URL it would accept), and with [PinSPKI], a copy of its transport, which
// must then be an [*http.Transport]. The default is a client on
// [http.DefaultTransport].
func HTTPClient(c *http.Client) KeySetOption {
	return keySetOptionFunc(func(cfg *keySetConfig) { cfg.client = c })
}

// FetchTimeout bounds each fetch of the key set. A fetch runs on a context
// detached from the caller that started it, so that one caller giving up does
// not fail the others waiting for it; this timeout is what ends a fetch that
// hangs, and no caller waits longer. Zero is the default; a negative value
// is an error wrapping [jwtcache.ErrInvalid]. The default is 10 seconds.
func FetchTimeout(d time.Duration) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		bounds.Rule[time.Duration]{Pkg: "verify", Name: "FetchTimeout", Want: "a timeout of 0 (the default, 10s) or more"}.Apply(d, &c.fetchTimeout, c.check)
	})
}

// MinTTL sets the shortest time a fetched key set is used before it is
// fetched again (revalidated, if the server gave an ETag or Last-Modified),
// whatever its Cache-Control or Expires header says: a max-age below it, and
// no-store or no-cache, are taken as it; so is a response without either
// header. Zero is the default; a negative value is an error wrapping [jwtcache.ErrInvalid]. The default is 5 minutes.
func MinTTL(d time.Duration) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		bounds.Rule[time.Duration]{Pkg: "verify", Name: "MinTTL", Want: "a lifetime of 0 (the default, 5m) or more"}.Apply(d, &c.minTTL, c.check)
	})
}

// MaxTTL sets the longest time a fetched key set is used before it is
// fetched again, however long its Cache-Control max-age or Expires allows.
// Zero is the default; a negative value, or one less than the [MinTTL], is
// an error wrapping [jwtcache.ErrInvalid]. The default is 24 hours.
func MaxTTL(d time.Duration) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		bounds.Rule[time.Duration]{Pkg: "verify", Name: "MaxTTL", Want: "a lifetime of 0 (the default, 24h) or more, no less than MinTTL"}.Apply(d, &c.maxTTL, c.check)
	})
}

// MinRefreshInterval sets how often, at most, a kid the key set lacks makes
// it be fetched again: such a fetch starts only if the previous fetch started
// at least this long ago, so that tokens with made-up kids cannot make the
// key set's server be asked more often. Zero is the default; a negative value is an error wrapping [jwtcache.ErrInvalid].
// The default is 10 seconds.
func MinRefreshInterval(d time.Duration) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		bounds.Rule[time.Duration]{Pkg: "verify", Name: "MinRefreshInterval", Want: "an interval of 0 (the default, 10s) or more"}.Apply(d, &c.minRefreshInterval, c.check)
	})
}

// StaleWindow sets how long after its expiry the last good key set is still
// served while fetching a new one fails; past it, [KeySet.Key] fails with
// [ErrKeySetStale]. An expired set is served only when a fetch has just
// failed or the key set is backing off from failures: when the server
// answers, callers wait for the new set. [jwtcache.Off] means the set is
// never served past its expiry; another negative window is an error wrapping
// [jwtcache.ErrInvalid]. The default (0) is 1 hour.
func StaleWindow(d time.Duration) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		bounds.Rule[time.Duration]{Pkg: "verify", Name: "StaleWindow", Off: true, Want: "a window of 0 (the default, 1h) or more, or Off for none"}.Apply(d, &c.staleWindow, c.check)
	})
}

// MaxResponseSize sets the largest key set response body accepted, in bytes;
// a larger one is refused ([ErrKeySetRefused]). Zero is the default; a
// negative value is an error wrapping [jwtcache.ErrInvalid]. The default is 1
// MiB.
func MaxResponseSize(n int64) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		bounds.Rule[int64]{Pkg: "verify", Name: "MaxResponseSize", Want: "a size of 0 (the default, 1 MiB) or more"}.Apply(n, &c.maxResponseSize, c.check)
	})
}

// AllowedHosts restricts the hosts the key set is fetched from, the URL's and
// every redirect's, to hosts (host names or IP addresses, without port,
// compared without regard to case). An empty list allows any host. The
// default allows any host.
func AllowedHosts(hosts ...string) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		c.allowedHosts = nil
		for _, h := range hosts {
			if c.allowedHosts == nil {
				c.allowedHosts = map[string]bool{}
			}
			c.allowedHosts[strings.ToLower(strings.TrimSuffix(h, "."))] = true
		}
	})
}

// PinSPKI pins the key set server's certificate: a TLS handshake succeeds
// only if the SHA-256 hash of the server certificate's SubjectPublicKeyInfo,
// in standard base64 (as in HPKP, RFC 7469), is one of pins. The check is in
// addition to the usual verification of the certificate chain, and it needs
// an https URL. A pin that is not the base64 of 32 bytes makes [NewKeySet]
// fail. An empty list pins nothing. The default pins nothing.
func PinSPKI(pins ...string) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		c.pins = nil
		for _, p := range pins {
			b, err := base64.StdEncoding.DecodeString(p)
			if err != nil || len(b) != sha256.Size {
				if c.err == nil {
					c.err = fmt.Errorf("verify: PinSPKI: %q is not a base64 SHA-256 hash", p)
				}
				continue
			}
			c.pins = append(c.pins, [sha256.Size]byte(b))
		}
	})
}

// KeySetLogger sets the logger of a [KeySet], as [Logger] does.
//
// Deprecated: use [Logger], which sets the logger of a Verifier and of a
// KeySet alike.
func KeySetLogger(l *slog.Logger) KeySetOption { return Logger(l) }

// KeySetClock sets the clock of a [KeySet], as [Clock] does.
//
// Deprecated: use [Clock], which sets the clock of a Verifier and of a KeySet
// alike, so that a test moves one clock.
func KeySetClock(now func() time.Time) KeySetOption { return Clock(now) }

// Snapshots makes the key set share its set through store, the [jwtcache.Store]
// the token caches use (package redisstore's, say), so that a replica that
// restarts starts from the set its fleet last fetched instead of every
// replica fetching at once, and verifies tokens even if the provider is down
// then.
//
// After every successful fetch (a 304 included), the key set saves a
// snapshot of its set (the document as fetched, when it was fetched and
// confirmed, its lifetime and its ETag or Last-Modified) under the key
// "<name>:<URL>", with any ':' or '\' in name escaped by a '\', until the
// end of its [StaleWindow]; so give a name no token cache of the store has.
// While the key set has no set, each fetch first loads the snapshot: one
// that is usable becomes the set, and the fetch ends there if it has not
// expired; the set is then refreshed when its schedule says, conditionally
// with the saved validators. An expired one, within its stale window, is
// revalidated at once, and served if that fails.
//
// Public keys are no secret, but whoever can write the store could put a key
// of theirs in a snapshot: each is authenticated with HMAC-SHA256 under a key
// derived from secret (at least 32 bytes: the store's own encryption key, or
// a key of its own), and bound to the key set's URL and to name, so that a
// snapshot saved for one issuer is refused by the key set of another. A
// snapshot with a bad MAC, that does not parse, whose set fails the checks of
// a fetched one (see [ErrKeySetRefused]), whose stale window has ended, or
// whose times are more than a minute in the future is ignored, logged and
// counted (see [KeySetStats.SnapshotRejects]); its lifetime is clamped to the
// [MinTTL] and [MaxTTL]. Whoever can write the store can still put back an
// older authentic snapshot, until its own stale window ends.
//
// Each store call is bounded by a tenth of the [FetchTimeout], on the fetch's
// context; a store that fails (down, slow, panicking) never fails the key
// set, which fetches as it would without it. [NewKeySet] fails for a nil
// store, an empty name, or a secret shorter than 32 bytes. The default is no
// snapshots.
func Snapshots(store jwtcache.Store, name string, secret []byte) KeySetOption {
	return keySetOptionFunc(func(c *keySetConfig) {
		snaps, err := newKeySetSnapshots(store, name, secret)
		if err != nil {
			if c.err == nil {
				c.err = err
			}
			return
		}
		c.snapshots = snaps
	})
}
