// Package bench compares, in its benchmarks, the receiving side of jwtcache
// (package verify) with its peers: jwx v2's jwk.Cache with jwt.Parse, and
// keyfunc v3 with golang-jwt v5. It is a module of its own so that the users
// of jwtcache never download the peers; it exports nothing.
//
// Run it with:
//
//	cd bench && go test -run '^$' -bench . -benchmem ./...
package bench
