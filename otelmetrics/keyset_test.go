package otelmetrics_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/seed7aeb0c6e/jwtcache/otelmetrics"
	"github.com/seed7aeb0c6e/jwtcache/verify"
)

func TestRegisterKeySet(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.FromRaw(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub.Set(jwk.KeyIDKey, "k1")
	doc, err := json.Marshal(map[string]any{"keys": []any{pub}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	defer srv.Close()
	// The snapshot store is down: the key set fetches on its own, and counts
	// the load and the save that failed.
	ks, err := verify.NewKeySet(srv.URL+"/jwks", verify.Clock(time.Now),
		verify.Snapshots(downStore{}, "acme", make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	reg, err := otelmetrics.RegisterKeySet(meter, "acme", ks)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	for range 3 {
		if _, err := ks.Key(context.Background(), "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ks.Key(context.Background(), "nobody"); !errors.Is(err, verify.ErrKeySetUnknownKID) {
		t.Fatalf("Key(nobody) error = %v; want ErrKeySetUnknownKID", err)
	}
	for name, want := range map[string]float64{
		"jwtcache.keyset.requests":         4,
		"jwtcache.keyset.hits":             3,
		"jwtcache.keyset.misses":           1,
		"jwtcache.keyset.refreshes":        2, // the first, and one for the first unknown kid after it
		"jwtcache.keyset.keys":             1,
		"jwtcache.keyset.store_errors":     3, // the load, and each fetch's save
		"jwtcache.keyset.snapshot_loads":   0,
		"jwtcache.keyset.snapshot_rejects": 0,
	} {
		if got := collect(t, reader, name, "jwtcache.keyset"); got["acme"] != want {
			t.Errorf("%s = %v; want acme: %v", name, got, want)
		}
	}
	if got := collect(t, reader, "jwtcache.keyset.snapshot_age", "jwtcache.keyset")["acme"]; got < 0 || got > 60 {
		t.Errorf("jwtcache.keyset.snapshot_age = %v; want a few seconds at most", got)
	}
	if _, err := otelmetrics.RegisterKeySet(meter, "x", nil); err == nil {
		t.Errorf("RegisterKeySet(nil) = nil error")
	}
}

// downStore is a jwtcache.Store that is down.
type downStore struct{}

var errDown = errors.New("store down")

func (downStore) Load(context.Context, string) (string, time.Time, error) {
	return "", time.Time{}, errDown
}
func (downStore) Save(context.Context, string, string, time.Time) error { return errDown }
func (downStore) CompareAndDelete(context.Context, string, string) (bool, error) {
	return false, errDown
}
func (downStore) Lease(context.Context, string, time.Duration) (func(context.Context, time.Duration) error, bool, error) {
	return nil, false, errDown
}
