package engine

import (
	"sync/atomic"
	"time"
)

// Every rate-limits a repeated log line: one per interval. The zero Every
// allows the first. Its state is one atomic word, so that a line logged on a
// hot path costs a load while it is held back.
type Every struct {
	last atomic.Int64 // UnixNano of the last allowed; 0: none yet
}

// Allow reports whether a line may be logged at now, at most one per d; the
// callers racing for one get it once.
func (e *Every) Allow(now time.Time, d time.Duration) bool {
	last := e.last.Load()
	if last != 0 && now.UnixNano()-last < int64(d) {
		return false
	}
	return e.last.CompareAndSwap(last, now.UnixNano())
}
