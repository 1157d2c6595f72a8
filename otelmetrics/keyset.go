package otelmetrics

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/seed7aeb0c6e/jwtcache/verify"
)

// keySetCounters names the exported counters of a key set and reads each
// from its stats.
var keySetCounters = []struct {
	name, desc string
	read       func(verify.KeySetStats) uint64
}{
	{"jwtcache.keyset.requests", "Key lookups (estimated by sampling with the real clock).", func(s verify.KeySetStats) uint64 { return s.Requests }},
	{"jwtcache.keyset.hits", "Key lookups served from the cached set (estimated by sampling with the real clock).", func(s verify.KeySetStats) uint64 { return s.Hits }},
	{"jwtcache.keyset.misses", "Key lookups for a kid the set lacked.", func(s verify.KeySetStats) uint64 { return s.Misses }},
	{"jwtcache.keyset.refreshes", "Fetches of the key set begun.", func(s verify.KeySetStats) uint64 { return s.Refreshes }},
	{"jwtcache.keyset.refresh_errors", "Failed fetches of the key set.", func(s verify.KeySetStats) uint64 { return s.RefreshErrors }},
	{"jwtcache.keyset.refused", "Key sets refused (private or symmetric keys, duplicate kids, ...), the old set kept.", func(s verify.KeySetStats) uint64 { return s.Refused }},
	{"jwtcache.keyset.stale_serves", "Key lookups served from an expired set while the provider failed.", func(s verify.KeySetStats) uint64 { return s.StaleServes }},
	{"jwtcache.keyset.not_modified", "Fetches answered 304 Not Modified.", func(s verify.KeySetStats) uint64 { return s.NotModified }},
	{"jwtcache.keyset.snapshot_loads", "Key sets started from a snapshot in the shared store instead of a fetch.", func(s verify.KeySetStats) uint64 { return s.SnapshotLoads }},
	{"jwtcache.keyset.snapshot_rejects", "Snapshots in the shared store ignored: bad MAC, unparsable, refused or too old.", func(s verify.KeySetStats) uint64 { return s.SnapshotRejects }},
	{"jwtcache.keyset.store_errors", "Failed calls of the shared snapshot store.", func(s verify.KeySetStats) uint64 { return s.StoreErrors }},
}

// RegisterKeySet creates the instruments of a [verify.KeySet] on meter, and
// registers the callback that reads its statistics at each collection: the
// counters of [verify.KeySetStats] as observable counters
// ("jwtcache.keyset.requests", "jwtcache.keyset.refresh_errors", ...),
// "jwtcache.keyset.keys" (the keys in the set) and
// "jwtcache.keyset.snapshot_age" (seconds since the set was fetched whole, by
// this replica or, for a set started from a [verify.Snapshots] snapshot, by
// the one that saved it) as gauges, each with the attribute "jwtcache.keyset" (name). Unregister the
// returned registration when ks is retired.
func RegisterKeySet(meter metric.Meter, name string, ks *verify.KeySet) (metric.Registration, error) {
	if meter == nil || ks == nil {
		return nil, errors.New("otelmetrics: nil meter or key set")
	}
	var insts []metric.Observable
	ctrs := make([]metric.Int64ObservableCounter, len(keySetCounters))
	for i, c := range keySetCounters {
		ctr, err := meter.Int64ObservableCounter(c.name, metric.WithDescription(c.desc), metric.WithUnit("{call}"))
		if err != nil {
			return nil, err
		}
		ctrs[i] = ctr
		insts = append(insts, ctr)
	}
	keys, err := meter.Int64ObservableGauge("jwtcache.keyset.keys", metric.WithDescription("Keys in the cached key set."), metric.WithUnit("{key}"))
	if err != nil {
		return nil, err
	}
	age, err := meter.Float64ObservableGauge("jwtcache.keyset.snapshot_age",
		metric.WithDescription("Seconds since the key set was fetched whole (a 304 renews it, not its age)."), metric.WithUnit("s"))
	if err != nil {
		return nil, err
	}
	insts = append(insts, keys, age)
	attrs := metric.WithAttributes(attribute.String("jwtcache.keyset", name))
	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := ks.Stats()
		for i, c := range keySetCounters {
			o.ObserveInt64(ctrs[i], int64(c.read(s)), attrs)
		}
		o.ObserveInt64(keys, int64(s.Keys), attrs)
		if !s.LastRefresh.IsZero() {
			o.ObserveFloat64(age, s.SnapshotAge.Seconds(), attrs)
		}
		return nil
	}, insts...)
}
