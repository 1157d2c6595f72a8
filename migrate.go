package jwtcache

import (
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
// Infof and Debugf); [Logger] takes an *slog.Logger instead, and a MapLogger
// could not take the old type honestly, so it has no twin: such a call needs
// [Logger] and an *slog.Logger in any case.

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

// ErrNotImplemented is [ErrNoTokenFunction], under the name jwtcache-go gave
// the error of a cache built without a token function. It is the same value,
// and returned unwrapped, so both == and [errors.Is] match it.
//
// Deprecated: use [ErrNoTokenFunction].
var ErrNotImplemented = ErrNoTokenFunction
