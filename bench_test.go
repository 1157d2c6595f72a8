package jwtcache_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
)

// floorEntry stands in for the cache's snapshot in BenchmarkFloor.
type floorEntry struct {
	token    string
	deadline time.Time
}

// BenchmarkFloor is the least a lock-free hit can cost: one atomic.Pointer
// load and one monotonic-only clock read. BenchmarkEnsureTokenHit is measured
// against it.
func BenchmarkFloor(b *testing.B) {
	var p atomic.Pointer[floorEntry]
	p.Store(&floorEntry{token: "t", deadline: time.Now().Add(time.Hour)})
	b.ReportAllocs()
	for b.Loop() {
		if e := p.Load(); time.Until(e.deadline) <= 0 {
			b.Fatal("deadline passed")
		}
	}
}

// BenchmarkFloorParallel is BenchmarkFloor from GOMAXPROCS goroutines, the
// floor of BenchmarkEnsureTokenHitParallel.
func BenchmarkFloorParallel(b *testing.B) {
	var p atomic.Pointer[floorEntry]
	p.Store(&floorEntry{token: "t", deadline: time.Now().Add(time.Hour)})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if e := p.Load(); time.Until(e.deadline) <= 0 {
				b.Fatal("deadline passed")
			}
		}
	})
}

// BenchmarkEnsureTokenHit measures a hit on a warm cache from one goroutine.
func BenchmarkEnsureTokenHit(b *testing.B) {
	c := warmCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.EnsureToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnsureTokenHitParallel measures hits on a warm cache from
// GOMAXPROCS goroutines (run it with -cpu 1,2,8).
func BenchmarkEnsureTokenHitParallel(b *testing.B) {
	c := warmCache(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.EnsureToken(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// warmCache returns a cache holding a token that lives for an hour.
func warmCache(b *testing.B) *jwtcache.Cache {
	b.Helper()
	tok := minter.Mint(time.Now(), time.Hour, nil)
	c := jwtcache.NewCache(jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
	if _, err := c.EnsureToken(context.Background()); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkTimeNow is what a hit would cost if it read the wall clock:
// time.Now reads both the wall and the monotonic clock.
func BenchmarkTimeNow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = time.Now()
	}
}

// staticBase is a base transport that answers every request with ok, or
// alternately with refused and ok when refused is set, without a network: so
// that the transport benchmarks measure the transport.
type staticBase struct {
	ok, refused *http.Response
	n           atomic.Int64
}

func (b *staticBase) RoundTrip(*http.Request) (*http.Response, error) {
	if b.refused != nil && b.n.Add(1)%2 == 1 {
		return b.refused, nil
	}
	return b.ok, nil
}

func newStaticBase() *staticBase {
	return &staticBase{ok: &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}}
}

// benchRoundTrips sends requests through rt, with tenant in their X-Tenant
// header, for as long as b needs.
func benchRoundTrips(b *testing.B, rt http.RoundTripper, tenant string) {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://api.example/orders", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("X-Tenant", tenant)
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := rt.RoundTrip(req); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("RoundTrip() = %v, %v; want 200", resp, err)
		}
	}
}

// BenchmarkTransport measures what a Transport adds to a request: a hit on
// a warm cache, the clone, the Authorization header, the response's verdict.
func BenchmarkTransport(b *testing.B) {
	benchRoundTrips(b, jwtcache.NewTransport(warmCache(b), newStaticBase()), "")
}

// BenchmarkTransport_Map is BenchmarkTransport through NewMapTransport,
// whose key function reads a header.
func BenchmarkTransport_Map(b *testing.B) {
	tok := minter.Mint(time.Now(), time.Hour, nil)
	m := jwtcache.NewCacheMap(jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return tok, nil }))
	key := func(r *http.Request) (string, error) { return r.Header.Get("X-Tenant"), nil }
	benchRoundTrips(b, jwtcache.NewMapTransport(m, key, newStaticBase()), "acme")
}

// BenchmarkTransport_Resend measures a request that a Scheme has sent
// again with the same token (a DPoP nonce challenge): two sends, the 401's
// verdict, no fetch.
func BenchmarkTransport_Resend(b *testing.B) {
	base := newStaticBase()
	base.refused = &http.Response{StatusCode: http.StatusUnauthorized, Body: http.NoBody, Header: http.Header{
		"Www-Authenticate": {`DPoP error="use_dpop_nonce"`},
	}}
	benchRoundTrips(b, jwtcache.NewTransport(warmCache(b), base, jwtcache.AuthScheme(resendScheme{})), "")
}

// resendScheme is the Bearer scheme, but asks to send again every 401.
type resendScheme struct{}

func (resendScheme) Authorize(req *http.Request, token string) error {
	req.Header.Set("Authorization", "Bearer "+token)
	return nil
}

func (resendScheme) Observe(_ *http.Request, resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized
}
