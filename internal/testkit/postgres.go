package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// PostgresServer is a real PostgreSQL server for a test, started by
// [Postgres] on 127.0.0.1, with its data in a temporary directory. It is not
// for concurrent Stop and Start.
type PostgresServer struct {
	bin  string // the directory of initdb and postgres
	dir  string // the socket directory; the data directory is dir/data
	port int
	attr *syscall.SysProcAttr // the user the server runs as, when the test runs as root
	proc *Process
}

// Postgres starts a PostgreSQL server for the test: a new cluster in a
// temporary directory (initdb, trust authentication, fsync off), on a free
// port of 127.0.0.1, stopped when the test ends. Its superuser is postgres,
// with the database postgres ([PostgresServer.DSN]). PostgreSQL refuses to
// run as root: a test that runs as root runs it as the user postgres (or, if
// there is none, nobody). initdb and postgres are found on PATH or in
// /usr/lib/postgresql/*/bin, where Debian's postgresql package puts them;
// without them, the test ends as [Unavailable].
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	bin := postgresBin(t)
	// Not t.TempDir: its parent is private to root, and the server's user
	// must reach the directory.
	dir, err := os.MkdirTemp("", "testkit-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &PostgresServer{bin: bin, dir: dir, port: FreePorts(t, 1)[0]}
	if os.Geteuid() == 0 {
		var uid, gid int
		s.attr, uid, gid = runAs(t)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("testkit: chown the PostgreSQL directory: %v", err)
		}
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = s.attr
	initdb.Dir = dir // the test's own may be closed to the server's user
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testkit: initdb: %v\n%s", err, out)
	}
	s.Start(t)
	return s
}

// postgresBin returns the directory of initdb and postgres, from PATH or
// else the newest /usr/lib/postgresql/<major>/bin.
func postgresBin(t testing.TB) string {
	t.Helper()
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(initdb)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	Unavailable(t, "PostgreSQL's initdb and postgres not found on PATH or in /usr/lib/postgresql/*/bin (make test installs them: apt-get install -y postgresql)")
	return ""
}

// major returns the major version in a /usr/lib/postgresql/<major>/bin path.
func major(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func (s *PostgresServer) data() string { return filepath.Join(s.dir, "data") }

// Start starts the server, again after [PostgresServer.Stop], on the same
// data and port, and waits until it accepts connections. The test fails if
// it cannot.
func (s *PostgresServer) Start(t testing.TB) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(s.port)
	s.proc = Start(t, Command{
		Name: "postgres-" + strconv.Itoa(s.port),
		Path: filepath.Join(s.bin, "postgres"),
		Dir:  s.dir,
		Args: []string{"-D", s.data(), "-p", strconv.Itoa(s.port), "-k", s.dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
			"-c", "full_page_writes=off", "-c", "max_connections=100"},
		Env:         []string{"LC_ALL=C"},
		ReadyAddr:   addr,
		StopSignal:  os.Interrupt, // the fast shutdown: a restart needs no recovery
		SysProcAttr: s.attr,
	})
	// The port opens before the server can take a session ("the database
	// system is starting up"): wait for its word.
	Eventually(t, "PostgreSQL ready to accept connections", func() bool {
		return s.proc.Output().Contains("ready to accept connections")
	})
}

// Stop stops the server (a fast shutdown) and waits until it has exited. Its
// data stays, for [PostgresServer.Start].
func (s *PostgresServer) Stop() { s.proc.Stop() }

// DSN returns the server's URL, for pgx or lib/pq: the superuser postgres,
// on the database postgres, without TLS.
func (s *PostgresServer) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// String returns the server's address, for messages.
func (s *PostgresServer) String() string {
	return "PostgreSQL on 127.0.0.1:" + strconv.Itoa(s.port) + " (" + strings.TrimPrefix(s.bin, "/usr/lib/") + ")"
}
