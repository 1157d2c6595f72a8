package otelmetrics_test

import (
	"context"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/otelmetrics"
)

// A cache's counters as OpenTelemetry instruments, read here by a manual
// reader; in a service, the MeterProvider's reader is an exporter's
// (Prometheus, OTLP).
func ExampleRegister() {
	reader := sdkmetric.NewManualReader()
	meterProvider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cache := jwtcache.NewCache(jwtcache.Name("billing"), jwtcache.TokenFunction(func(context.Context) (string, error) {
		return unsignedJWT(time.Hour), nil // the identity provider's token
	}))

	reg, err := otelmetrics.Register(meterProvider.Meter("billing"), "billing", cache)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Unregister() // when the cache is retired

	for range 3 {
		if _, err := cache.EnsureToken(context.Background()); err != nil {
			fmt.Println(err)
			return
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		fmt.Println(err)
		return
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "jwtcache.fetches" {
				v, _ := sum.DataPoints[0].Attributes.Value("jwtcache.cache")
				fmt.Println(m.Name, v.AsString(), sum.DataPoints[0].Value)
			}
		}
	}
	// Output: jwtcache.fetches billing 1
}
