package jwtcache

import (
	"log/slog"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"
)

// This file keeps the names of jwtcache-go v1.7.0 that have an exact
// equivalent here, so that code written for it compiles once its import is
// changed. jwtcache-go twinned each cache option with a map option; here
// every [Option] is a [MapOption] that configures each key's Cache, so each
// twin is the cache option itself.
//
// jwtcache-go's Logger and MapLogger took its LoggerContract (logrus's
// Infof and Debugf); [Logger] and the MapLogger twin take an *slog.Logger
// instead, so such a call needs a new argument in any case.

// MapHeadroom sets the headroom of each key's Cache, as [Headroom] does. The
// default is 10 seconds.
//
// Deprecated: use [Headroom]; every Option is a MapOption.
func MapHeadroom(d time.Duration) MapOption {
	return Headroom(d)
}

// MapParseOptions sets how each key's Cache checks fetched tokens, as
// [ParseOptions] does: the options are jwx v2's, as there. The default is
// none.
//
// Deprecated: use [ParseOptions]; every Option is a MapOption.
func MapParseOptions(opts ...jwt.ParseOption) MapOption {
	return ParseOptions(opts...)
}

// MapRejectUnparsable makes a token that cannot be parsed an error for each
// key's Cache, as [RejectUnparsable] does. The default is false.
//
// Deprecated: use [RejectUnparsable]; every Option is a MapOption.
func MapRejectUnparsable(reject bool) MapOption {
	return RejectUnparsable(reject)
}

// MapLogger sets the logger of each key's Cache, as [Logger] does: an
// *slog.Logger, where jwtcache-go took its own logger interface. The default
// is [slog.Default].
//
// Deprecated: use [Logger]; every Option is a MapOption.
func MapLogger(l *slog.Logger) MapOption {
	return Logger(l)
}
