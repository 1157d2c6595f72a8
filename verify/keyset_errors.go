package verify

import "errors"

// ErrKeySetUnknownKID is returned by [KeySet.Key] when the key set has no key
// with the kid asked for, even after the refresh that the kid triggered (or
// when the refresh was not due: see [MinRefreshInterval]). It may also wrap
// the error of that refresh.
var ErrKeySetUnknownKID = errors.New("verify: no key with that kid in the key set")

// ErrKeySetStale is returned, wrapping the last refresh error, by [KeySet.Key]
// when no key set may be used: none has been fetched yet, or the last one
// fetched expired more than the [StaleWindow] ago. A KeySet fails closed: it
// never serves a set past that window.
var ErrKeySetStale = errors.New("verify: no usable key set")

// ErrKeySetRefused is wrapped by the errors of what a [KeySet] refuses on
// safety grounds: a URL or redirect that is not HTTPS (outside loopback) or
// not on the [AllowedHosts], a certificate that fails [PinSPKI], a response
// that is too large ([MaxResponseSize]) or not JSON, and a key set that does
// not parse, has no keys, or has a private key, a symmetric key, a key without
// kid, or two keys with one kid. A refused set is never used: the set held
// before it is kept.
var ErrKeySetRefused = errors.New("verify: key set refused")

// ErrRegistryFull is returned by [Registry.Register] when the registry already
// holds its maximum number of key sets.
var ErrRegistryFull = errors.New("verify: registry full")
