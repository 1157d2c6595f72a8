// Package testkit is the one test scaffolding of this repository's modules:
// a fake clock, a log buffer, a token minter and a process starter, so that
// no test file grows a copy of its own (issue 17). Package jwtcachetest is
// the public face of the clock and the minter, for the users' tests; the
// nested modules import this package, which their import paths allow.
//
// testkit never imports package jwtcache, so that the root's internal tests
// can use it too. Every type is safe for concurrent use.
package testkit
