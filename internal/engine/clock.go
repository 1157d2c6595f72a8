package engine

import "time"

// Clock is an instance's clock: the real one, or a test's. Hits measure time
// as a Duration since its epoch, so that the hit test is one subtraction and,
// with the real clock, one monotonic clock read with no indirect call.
//
// A Clock is a value written once, before the instance that holds it is
// shared, and only read after.
type Clock struct {
	now   func() time.Time // nil: the real clock
	epoch time.Time        // from the real clock, with a monotonic reading
}

// NewClock returns a clock reading now (nil: the real clock) whose epoch is
// epoch, or the clock's present if epoch is zero. Instances that compare
// their Durations (a CacheMap's keys) share one epoch.
func NewClock(now func() time.Time, epoch time.Time) Clock {
	c := Clock{now: now, epoch: epoch}
	if c.epoch.IsZero() {
		c.epoch = c.Now()
	}
	return c
}

// Now reads the clock.
func (c *Clock) Now() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Elapsed returns the time since the epoch. With the real clock it reads only
// the monotonic clock (the epoch carries a monotonic reading, so time.Since
// needs no wall clock read).
func (c *Clock) Elapsed() time.Duration {
	if c.now == nil {
		return time.Since(c.epoch)
	}
	return c.now().Sub(c.epoch)
}

// Epoch returns the clock's epoch.
func (c *Clock) Epoch() time.Time { return c.epoch }

// At returns the instant d after the epoch.
func (c *Clock) At(d time.Duration) time.Time { return c.epoch.Add(d) }

// Since returns t as a Duration since the epoch.
func (c *Clock) Since(t time.Time) time.Duration { return t.Sub(c.epoch) }

// Test reports whether the clock is a test's, on which counters count
// exactly (see [Hits]).
func (c *Clock) Test() bool { return c.now != nil }
