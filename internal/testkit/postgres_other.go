//go:build !unix

package testkit

import (
	"syscall"
	"testing"
)

// runAs is for root, which only unix systems have.
func runAs(t testing.TB) (*syscall.SysProcAttr, int, int) {
	t.Helper()
	return nil, -1, -1
}
