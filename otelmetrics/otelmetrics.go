// Package otelmetrics exports the statistics of a jwtcache Cache or CacheMap,
// and of a verify.KeySet ([RegisterKeySet]), as OpenTelemetry instruments.
//
// Every counter of [jwtcache.Stats] becomes an observable counter named
// "jwtcache.<counter>" ("jwtcache.hits", "jwtcache.fetch_errors", ...), read
// when the meter's reader collects; "jwtcache.token.expires_in" is a gauge of
// the seconds the cached token has left, and "jwtcache.keys" a gauge of a
// CacheMap's keys. Each carries the attribute "jwtcache.cache" (the name
// given to [Register]); a CacheMap's keys are attributes only with [Keys],
// since tenant ids can be sensitive and every key is a time series.
package otelmetrics

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/seed7aeb0c6e/jwtcache"
)

// Source is what [Register] reads: a *jwtcache.Cache or a *jwtcache.CacheMap.
type Source interface {
	Stats() jwtcache.Stats
}

// Option configures [Register].
type Option interface {
	apply(*config)
}

type config struct {
	keys bool
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Keys makes the instruments of a CacheMap report each key apart, with the
// attribute "jwtcache.key". Key names can be sensitive (tenant ids), and each
// is a time series of its own. The default reports a map's sums.
func Keys() Option {
	return optionFunc(func(c *config) { c.keys = true })
}

// counters names the exported counters and reads each from Stats.
var counters = []struct {
	name, desc string
	read       func(jwtcache.Stats) uint64
}{
	{"jwtcache.hits", "Calls served a cached token without waiting (estimated by sampling with the real clock).", func(s jwtcache.Stats) uint64 { return s.Hits }},
	{"jwtcache.misses", "Calls that waited for a fetch, or failed without one.", func(s jwtcache.Stats) uint64 { return s.Misses }},
	{"jwtcache.fetches", "Token fetches (token function calls or adoptions from a shared store).", func(s jwtcache.Stats) uint64 { return s.Fetches }},
	{"jwtcache.fetch_errors", "Failed token fetches.", func(s jwtcache.Stats) uint64 { return s.FetchErrors }},
	{"jwtcache.refreshes_ahead", "Background refreshes started ahead of expiry.", func(s jwtcache.Stats) uint64 { return s.RefreshesAhead }},
	{"jwtcache.served_during_failure", "Calls served a still-valid token while the provider was failing.", func(s jwtcache.Stats) uint64 { return s.ServedDuringFailure }},
	{"jwtcache.store_errors", "Failed calls of the shared token store.", func(s jwtcache.Stats) uint64 { return s.StoreErrors }},
}

// Register creates the instruments on meter and registers the callback that
// reads src's statistics at each collection. Unregister the returned
// registration when src is retired.
func Register(meter metric.Meter, name string, src Source, opts ...Option) (metric.Registration, error) {
	if meter == nil || src == nil {
		return nil, errors.New("otelmetrics: nil meter or source")
	}
	var cfg config
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	var insts []metric.Observable
	ctrs := make([]metric.Int64ObservableCounter, len(counters))
	for i, c := range counters {
		ctr, err := meter.Int64ObservableCounter(c.name, metric.WithDescription(c.desc), metric.WithUnit("{call}"))
		if err != nil {
			return nil, err
		}
		ctrs[i] = ctr
		insts = append(insts, ctr)
	}
	expiresIn, err := meter.Float64ObservableGauge("jwtcache.token.expires_in",
		metric.WithDescription("Seconds until the cached token expires; for a map's sums, the soonest."), metric.WithUnit("s"))
	if err != nil {
		return nil, err
	}
	keys, err := meter.Int64ObservableGauge("jwtcache.keys", metric.WithDescription("Keys a CacheMap holds."), metric.WithUnit("{key}"))
	if err != nil {
		return nil, err
	}
	insts = append(insts, expiresIn, keys)

	cacheAttr := attribute.String("jwtcache.cache", name)
	m, isMap := src.(*jwtcache.CacheMap)
	observe := func(o metric.Observer, s jwtcache.Stats, attrs metric.MeasurementOption) {
		for i, c := range counters {
			o.ObserveInt64(ctrs[i], int64(c.read(s)), attrs)
		}
		if !s.Expiry.IsZero() {
			o.ObserveFloat64(expiresIn, max(time.Until(s.Expiry).Seconds(), 0), attrs)
		}
	}
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if isMap && cfg.keys {
			n := 0
			m.Range(func(key string, s jwtcache.Stats) bool {
				observe(o, s, metric.WithAttributes(cacheAttr, attribute.String("jwtcache.key", key)))
				n++
				return true
			})
			o.ObserveInt64(keys, int64(n), metric.WithAttributes(cacheAttr))
			return nil
		}
		s := src.Stats()
		observe(o, s, metric.WithAttributes(cacheAttr))
		if isMap {
			o.ObserveInt64(keys, int64(s.Keys), metric.WithAttributes(cacheAttr))
		}
		return nil
	}, insts...)
}
