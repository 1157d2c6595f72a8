package jwtcache_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/seed7aeb0c6e/jwtcache/jwtcachetest"
)

// testKey signs the tokens the tests mint.
var testKey = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

// jtiSeq makes every minted token distinct.
var jtiSeq atomic.Int64

// mint returns an ES256 token issued at iat that lives for life.
func mint(tb testing.TB, iat time.Time, life time.Duration) string {
	tb.Helper()
	return sign(tb, testKey, map[string]any{
		jwt.IssuedAtKey:   iat.Truncate(time.Second),
		jwt.ExpirationKey: iat.Truncate(time.Second).Add(life),
	})
}

// sign returns a token with the given claims (and a fresh jti) signed by key.
func sign(tb testing.TB, key *ecdsa.PrivateKey, claims map[string]any) string {
	tb.Helper()
	b := jwt.NewBuilder().Subject("svc").JwtID("t" + itoa(jtiSeq.Add(1)))
	for k, v := range claims {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
	if err != nil {
		tb.Fatal(err)
	}
	return string(raw)
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// expOf returns the exp claim of a token minted by these tests.
func expOf(tb testing.TB, raw string) time.Time {
	tb.Helper()
	tok, err := jwt.ParseString(raw, jwt.WithVerify(false), jwt.WithValidate(false))
	if err != nil {
		tb.Fatalf("parse %q: %v", raw, err)
	}
	return tok.Expiration()
}

// newClock returns the tests' clock, at a fixed start.
func newClock() *jwtcachetest.Clock {
	return jwtcachetest.NewClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
}

// logBuffer collects log records, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	// guards buf
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// count returns how many records contain s.
func (l *logBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// newLogger returns a debug-level logger writing to a fresh buffer.
func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// eventually polls cond until it holds, failing the test after 10 seconds.
// It waits for background work to land; it asserts nothing about timing.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
