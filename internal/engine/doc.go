// Package engine is the refresh engine of this module: what a jwtcache.Cache
// and a verify.KeySet share, so that each keeps only what is its own (a
// token's parse rules, a key set's HTTP caching). It holds the mechanism, and
// no policy of either user but the one they share:
//
//   - [Clock]: the injectable clock and the epoch that hits measure from;
//   - [Flight]: one fetch at a time (singleflight), joined by every caller,
//     on a context none of them can cancel ([Detach]), bounded, with panics
//     and token functions that ignore their context contained ([Protect],
//     [Call]);
//   - [Schedule] and [RetryDelay]: when a value is refreshed, with jitter,
//     and how long a failing source is left alone, by state;
//   - [Failure]: the backoff state that outlives the value it was recorded
//     beside, and [Plan], the one rule for serving while a value is valid;
//   - [Every]: the rate limit of a repeated warning;
//   - [Hits]: the sampled hit counter, which writes no shared memory on most
//     hits.
//
// Every type is safe for concurrent use unless its doc says otherwise.
package engine
