package testkit

import (
	"testing"
	"time"
)

// EventuallyWithin is how long [Eventually] waits before it fails the test.
const EventuallyWithin = 30 * time.Second

// Eventually polls cond until it holds, and fails the test if it does not
// within [EventuallyWithin]. It waits for work in the background (a fetch, a
// process, a failover) to land; it asserts nothing about timing. It polls
// every millisecond at first, then, while cond does not hold, less often, up
// to every 50ms, so that a cond that asks a server is not a flood.
func Eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(EventuallyWithin)
	for poll := time.Millisecond; !cond(); poll = min(2*poll, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting (%v): %s", EventuallyWithin, what)
		}
		time.Sleep(poll)
	}
}
