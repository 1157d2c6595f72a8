// Package fleet holds the test of users' tokens across a fleet: replicas
// with caches of their own sharing one Redis (the access tokens and the
// refresh leases, package redisstore) and one PostgreSQL (the refresh
// tokens, package sqlstore), against the real oidc-provider with refresh
// token rotation and its reuse detection on. It is a module of its own, so
// that neither store's module needs the other's dependencies; it has no
// code but its tests.
package fleet
