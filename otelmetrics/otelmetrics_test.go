package otelmetrics_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/otelmetrics"
)

// unsignedJWT returns a token that the cache parses (it does not verify by
// default) with the given lifetime.
func unsignedJWT(life time.Duration) string {
	enc := base64.RawURLEncoding.EncodeToString
	now := time.Now()
	return enc([]byte(`{"alg":"none"}`)) + "." +
		enc(fmt.Appendf(nil, `{"iat":%d,"exp":%d}`, now.Unix(), now.Add(life).Unix())) + "."
}

// collect reads every data point of the instrument name, by the value of
// the attribute attr.
func collect(t *testing.T, r *sdkmetric.ManualReader, name, attr string) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(attribute.Key(attr))
					out[v.AsString()] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(attribute.Key(attr))
					out[v.AsString()] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(attribute.Key(attr))
					out[v.AsString()] = p.Value
				}
			}
		}
	}
	return out
}

func TestRegister_Cache(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	tok := unsignedJWT(time.Hour)
	c := jwtcache.NewCache(jwtcache.Logger(nil), jwtcache.Clock(time.Now),
		jwtcache.TokenFunction(func(context.Context) (string, error) { return tok, nil }))
	reg, err := otelmetrics.Register(meter, "billing", c)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()
	for range 5 {
		if _, err := c.EnsureToken(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := collect(t, reader, "jwtcache.fetches", "jwtcache.cache"); got["billing"] != 1 {
		t.Errorf("jwtcache.fetches = %v; want billing: 1", got)
	}
	if got := collect(t, reader, "jwtcache.hits", "jwtcache.cache"); got["billing"] != 4 {
		t.Errorf("jwtcache.hits = %v; want billing: 4", got)
	}
	if got := collect(t, reader, "jwtcache.token.expires_in", "jwtcache.cache")["billing"]; got < 3500 || got > 3600 {
		t.Errorf("jwtcache.token.expires_in = %v; want about 3600", got)
	}
}

func TestRegister_CacheMap(t *testing.T) {
	tok := unsignedJWT(time.Hour)
	newMap := func() *jwtcache.CacheMap {
		m := jwtcache.NewCacheMap(jwtcache.Logger(nil), jwtcache.Clock(time.Now),
			jwtcache.MapTokenFunction(func(context.Context, string) (string, error) { return tok, nil }))
		for _, key := range []string{"acme", "globex", "acme"} {
			if _, err := m.EnsureToken(context.Background(), key); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}

	// By default, sums only: no key attribute.
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	if _, err := otelmetrics.Register(meter, "tenants", newMap()); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader, "jwtcache.fetches", "jwtcache.key"); len(got) != 1 || got[""] != 2 {
		t.Errorf("jwtcache.fetches by key = %v; want one series without a key, 2", got)
	}
	if got := collect(t, reader, "jwtcache.keys", "jwtcache.cache"); got["tenants"] != 2 {
		t.Errorf("jwtcache.keys = %v; want tenants: 2", got)
	}

	// With Keys, a series per key.
	reader = sdkmetric.NewManualReader()
	meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	if _, err := otelmetrics.Register(meter, "tenants", newMap(), otelmetrics.Keys()); err != nil {
		t.Fatal(err)
	}
	if got := collect(t, reader, "jwtcache.hits", "jwtcache.key"); got["acme"] != 1 || got["globex"] != 0 || len(got) != 2 {
		t.Errorf("jwtcache.hits by key = %v; want acme: 1, globex: 0", got)
	}
}

func TestRegister_BadArguments(t *testing.T) {
	if _, err := otelmetrics.Register(nil, "x", jwtcache.NewCache()); err == nil {
		t.Error("Register(nil meter) = nil error")
	}
}
