package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Command is a program for [Start] to run, and the handshake that says it is
// ready.
type Command struct {
	// Name names the process in messages; the default is the program's
	// base name.
	Name string
	// Path is the program, Args its arguments, Dir its working directory
	// (the default is the test's). Env is added to the test's environment.
	Path string
	Args []string
	Dir  string
	Env  []string

	// ReadyLine, if set, is the start of the line of standard output by
	// which the program says it is ready ("READY", say); the rest of that
	// line, after a space, is [Process.Ready]. Otherwise ReadyAddr, if
	// set, is a TCP address that accepts a connection once it is ready.
	// With neither, the process is ready as it starts.
	ReadyLine string
	ReadyAddr string
	// Timeout bounds the wait for the handshake; the default is 30s.
	Timeout time.Duration

	// OnLine, if set, is called with each line of standard output but the
	// ready line, in order, from one goroutine of its own.
	OnLine func(line string)

	// Stdin gives the program a pipe on its standard input ([Process.Send]).
	// It is then stopped by closing that pipe, and killed only if it has
	// not exited within 10s; without Stdin, it is killed.
	Stdin bool
	// StopSignal, if set (and without Stdin), is the signal that stops the
	// program (os.Interrupt for PostgreSQL's fast shutdown, say); it is
	// killed only if it has not exited within 10s.
	StopSignal os.Signal

	// SysProcAttr, if set, is the program's exec.Cmd.SysProcAttr: the user
	// it runs as, say.
	SysProcAttr *syscall.SysProcAttr
}

// Process is a program started by [Start].
type Process struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser // nil without Command.Stdin
	stop   os.Signal      // Command.StopSignal
	output Buffer
	ready  string        // written before readyCh is closed; only read after
	exited chan struct{} // closed once the program has exited and its output is read

	stopOnce sync.Once
}

// Start starts cmd and waits for its handshake. Standard output and error go
// to the process's [Process.Output] (standard output line by line, also to
// OnLine); when the test fails, the end of it is logged. The process is
// stopped when the test ends, or by [Process.Stop]. If it cannot start,
// exits before it is ready or is not ready in time, the test fails.
func Start(t testing.TB, cmd Command) *Process {
	t.Helper()
	name := cmd.Name
	if name == "" {
		name = filepath.Base(cmd.Path)
	}
	p := &Process{name: name, stop: cmd.StopSignal, exited: make(chan struct{})}
	p.cmd = exec.Command(cmd.Path, cmd.Args...)
	p.cmd.Dir = cmd.Dir
	p.cmd.SysProcAttr = cmd.SysProcAttr
	if cmd.Env != nil {
		p.cmd.Env = append(os.Environ(), cmd.Env...)
	}
	p.cmd.Stderr = &p.output
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if cmd.Stdin {
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s, end of its output:\n%s", name, p.output.Tail(4000))
		}
	})

	readyCh := make(chan struct{})
	go p.read(stdout, cmd, readyCh)
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.After(timeout)
	if cmd.ReadyLine == "" {
		close(readyCh) // the reader does not look for a line
	}
	for {
		select {
		case <-readyCh:
			if cmd.ReadyAddr == "" || accepts(cmd.ReadyAddr) {
				return p
			}
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v)", name, p.cmd.ProcessState)
		case <-deadline:
			t.Fatalf("%s was not ready within %v", name, timeout)
		}
		// Waiting for the address to accept: look again shortly.
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v)", name, p.cmd.ProcessState)
		case <-deadline:
			t.Fatalf("%s did not accept connections on %s within %v", name, cmd.ReadyAddr, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// read copies the program's standard output to the output buffer line by
// line, closes readyCh at the ready line and hands the other lines to
// OnLine; once the output ends, it waits for the program to exit.
func (p *Process) read(stdout io.Reader, cmd Command, readyCh chan struct{}) {
	defer close(p.exited)
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	waiting := cmd.ReadyLine != ""
	for lines.Scan() {
		line := lines.Text()
		fmt.Fprintln(&p.output, line)
		if rest, ok := strings.CutPrefix(line, cmd.ReadyLine); waiting && ok && (rest == "" || rest[0] == ' ') {
			p.ready = strings.TrimPrefix(rest, " ")
			waiting = false
			close(readyCh)
			continue
		}
		if cmd.OnLine != nil {
			cmd.OnLine(line)
		}
	}
	io.Copy(&p.output, stdout) // a line too long for the scanner
	p.cmd.Wait()               // after the reads, as exec requires
}

// accepts reports whether addr accepts a TCP connection.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Ready returns the rest of the ready line (Command.ReadyLine), after its
// first word: an address the program chose, say.
func (p *Process) Ready() string { return p.ready }

// Output returns the buffer of the program's standard output and error.
func (p *Process) Output() *Buffer { return &p.output }

// Exited returns a channel closed once the program has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Send writes line and a newline to the program's standard input (see
// Command.Stdin).
func (p *Process) Send(line string) error {
	if p.stdin == nil {
		return errors.New("testkit: " + p.name + " has no standard input pipe (Command.Stdin)")
	}
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Stop stops the program, as the test's end would, and waits until it has
// exited: with Command.Stdin, by closing its standard input, with
// Command.StopSignal, by that signal, then, after 10s, by killing it;
// otherwise by killing it. Stop may be called more than once.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		if p.stdin != nil || p.stop != nil {
			if p.stdin != nil {
				p.stdin.Close() // the program exits when its stdin closes
			} else {
				p.cmd.Process.Signal(p.stop)
			}
			select {
			case <-p.exited:
				return
			case <-time.After(10 * time.Second):
			}
		}
		p.cmd.Process.Kill()
	})
	<-p.exited
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment
// ago. The listeners are held until all n are chosen, so that the ports
// differ.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Unavailable ends a test that lacks a program or a package it needs: it
// skips the test, unless CI=true, where every test must run and it fails.
// The message says what is missing and how to install it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// LookPath returns the path of the program name, or ends the test as
// [Unavailable] if it is not installed; install says how to install it.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s not found (%s)", name, install)
	}
	return path
}

// Node returns the path of node, once it has checked that dir holds the npm
// package pkg; without either, it ends the test as [Unavailable]. `npm ci`
// in dir installs the package (make test does it).
func Node(t testing.TB, dir, pkg string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", pkg))
	}
	if err != nil {
		Unavailable(t, "%s needs node and `npm ci` in %s (make test does it): %v", pkg, dir, err)
	}
	return node
}
