package jwtgrpc_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if the tests leave a goroutine running: a stream, a
// fetch or a connection that outlives the test that started it is a leak the
// package's users would have too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
