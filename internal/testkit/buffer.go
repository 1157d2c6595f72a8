package testkit

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
)

// Buffer collects what a logger or a process writes, for a test to read.
// The zero Buffer is empty and ready to use.
type Buffer struct {
	mu sync.Mutex
	// guards b
	b bytes.Buffer
}

// NewLogger returns a logger of every level, down to debug, that writes text
// records to a new Buffer, and the Buffer.
func NewLogger() (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// Write appends p to the buffer. It never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Lines returns what was written so far as lines, without their newlines;
// a last line not yet ended is included.
func (b *Buffer) Lines() []string {
	s := strings.TrimSuffix(b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Contains reports whether s was written (within one write or across
// several).
func (b *Buffer) Contains(s string) bool {
	return strings.Contains(b.String(), s)
}

// Count returns how many lines contain s: with a text logger, how many
// records.
func (b *Buffer) Count(s string) int {
	n := 0
	for _, line := range b.Lines() {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// Tail returns the last n bytes written, or all of them if there are fewer.
func (b *Buffer) Tail(n int) string {
	s := b.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
