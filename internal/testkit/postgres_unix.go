//go:build unix

package testkit

import (
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// runAs returns the process attributes that run a program as the user
// postgres, or nobody without it, and that user's IDs.
func runAs(t testing.TB) (*syscall.SysProcAttr, int, int) {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		u, err = user.Lookup("nobody")
	}
	if err != nil {
		Unavailable(t, "PostgreSQL refuses to run as root, and there is no user postgres or nobody to run it as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, uid, gid
}
