package verify_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// BenchmarkKeySet_Key measures a hit: a kid found in a fresh set, with the
// real clock.
func BenchmarkKeySet_Key(b *testing.B) {
	tr := &ksTransport{body: ksDoc(b, "k1", "k2", "k3", "2025-01-rotation")}
	s, err := verify.NewKeySet("http://127.0.0.1/jwks", verify.HTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Key(ctx, "2025-01-rotation"); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Key(ctx, "2025-01-rotation"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Key(ctx, "2025-01-rotation"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
