package testkit

import (
	"fmt"
	"strconv"
	"testing"
)

// RedisServer is a real redis-server on 127.0.0.1, without persistence,
// started by [Redis] or [StartRedis]. The test's cleanup kills it, and shows
// the end of its log if the test failed; the test may stop it and start it
// again on the same port.
type RedisServer struct {
	name string
	port int
	args []string
	proc *Process
}

// RedisInstall says how to install redis-server, for a test without it.
const RedisInstall = "make test installs it: apt-get install -y redis-server redis-tools"

// Redis starts a lone redis-server on a free port.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	port := FreePorts(t, 1)[0]
	return StartRedis(t, fmt.Sprintf("redis-server-%d", port), t.TempDir(), port)
}

// StartRedis starts redis-server on 127.0.0.1:port, named name, in dir, with
// args added (a replica's, a Sentinel's, a Cluster node's), and waits until
// it accepts connections. Without redis-server (`make test` installs it),
// the test is skipped, unless CI=true: there it must run.
func StartRedis(t testing.TB, name, dir string, port int, args ...string) *RedisServer {
	t.Helper()
	s := &RedisServer{name: name, port: port, args: append(args,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--save", "", "--appendonly", "no", "--dir", dir,
		// A replica's first sync waits five seconds by default, for others
		// to share it.
		"--repl-diskless-sync-delay", "0")}
	s.Start(t)
	return s
}

// Start starts the server, again after Stop, with the same arguments.
func (s *RedisServer) Start(t testing.TB) {
	t.Helper()
	s.proc = Start(t, Command{Name: s.name, Path: LookPath(t, "redis-server", RedisInstall), Args: s.args, ReadyAddr: s.Addr()})
}

// Stop kills the server and waits until it has exited.
func (s *RedisServer) Stop() { s.proc.Stop() }

// Addr returns the server's address, 127.0.0.1:port.
func (s *RedisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Name returns the server's name in messages.
func (s *RedisServer) Name() string { return s.name }
