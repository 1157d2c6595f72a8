package testkit

import (
	"sync"
	"time"
)

// Clock is a clock that moves only when a test moves it: pass its Now method
// where a clock is injected.
//
// The zero Clock reads the zero [time.Time] until it is moved; most tests
// start from [NewClock].
type Clock struct {
	mu sync.Mutex
	// guards now
	now time.Time
}

// NewClock returns a clock that reads start until it is moved. Any monotonic
// clock reading in start is dropped: a Clock is a wall clock that only the
// test steps.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start.Round(0)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d. A negative d steps it back, as a wall clock
// corrected by NTP may be.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t, forward or back. Any monotonic clock reading in t
// is dropped.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t.Round(0)
}
