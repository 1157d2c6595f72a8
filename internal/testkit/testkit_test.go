package testkit_test

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
)

var start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// TestClock moves the clock from many goroutines at once. (jwtcachetest's
// tests, which run on this clock, check each move, the zero Clock and the
// monotonic reading.)
func TestClock(t *testing.T) {
	c := testkit.NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(800*time.Second); !got.Equal(want) {
		t.Errorf("Now() after 800 concurrent Advance(1s) = %v; want %v", got, want)
	}
}

func TestBuffer(t *testing.T) {
	var b testkit.Buffer
	if got := b.Lines(); got != nil {
		t.Errorf("Lines() of an empty Buffer = %q; want none", got)
	}
	fmt.Fprint(&b, "level=INFO msg=one\nlevel=WARN msg=tw")
	fmt.Fprint(&b, "o\nlevel=INFO msg=three")
	if got, want := b.Lines(), []string{"level=INFO msg=one", "level=WARN msg=two", "level=INFO msg=three"}; !slices.Equal(got, want) {
		t.Errorf("Lines() = %q; want %q", got, want)
	}
	if !b.Contains("msg=two") || b.Contains("msg=four") {
		t.Errorf("Contains(msg=two), Contains(msg=four) = %v, %v; want true, false", b.Contains("msg=two"), b.Contains("msg=four"))
	}
	if got := b.Count("level=INFO"); got != 2 {
		t.Errorf("Count(level=INFO) = %d; want 2", got)
	}
	if got, want := b.Tail(5), "…three"; got != want {
		t.Errorf("Tail(5) = %q; want %q", got, want)
	}
}

func TestBuffer_Logger(t *testing.T) {
	logger, logs := testkit.NewLogger()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { logger.Debug("record", "n", i) })
	}
	wg.Wait()
	if got := logs.Count("level=DEBUG msg=record"); got != 8 {
		t.Errorf("debug records = %d; want 8\n%s", got, logs)
	}
}

// TestStart runs a shell script as a process with a line protocol: the
// handshake, a line after it, a command on its standard input, and its exit
// when that closes.
func TestStart(t *testing.T) {
	sh := testkit.LookPath(t, "sh", "a POSIX shell")
	lines := make(chan string, 4)
	p := testkit.Start(t, testkit.Command{
		Path:      sh,
		Args:      []string{"-c", `echo starting; echo >&2 warming up; echo READY 127.0.0.1:1; while read -r cmd; do echo "GOT $cmd"; done`},
		ReadyLine: "READY",
		OnLine:    func(line string) { lines <- line },
		Stdin:     true,
	})
	if got := p.Ready(); got != "127.0.0.1:1" {
		t.Errorf("Ready() = %q; want the rest of the ready line", got)
	}
	if err := p.Send("ping"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"starting", "GOT ping"} {
		select {
		case got := <-lines:
			if got != want {
				t.Errorf("OnLine got %q; want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line %q within 10s", want)
		}
	}
	p.Stop() // closes stdin: the loop ends
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop() returned before the process exited")
	}
	out := p.Output().String()
	if !strings.Contains(out, "warming up") || !strings.Contains(out, "READY 127.0.0.1:1") {
		t.Errorf("Output() = %q; want its standard output and error", out)
	}
}

// TestStart_StopSignal stops a process that traps the signal it is given,
// and says so before it exits.
func TestStart_StopSignal(t *testing.T) {
	sh := testkit.LookPath(t, "sh", "a POSIX shell")
	p := testkit.Start(t, testkit.Command{
		Path:       sh,
		Args:       []string{"-c", `trap 'echo INTERRUPTED; exit 0' INT; echo READY; while :; do sleep 0.01; done`},
		ReadyLine:  "READY",
		StopSignal: os.Interrupt,
	})
	p.Stop()
	if !p.Output().Contains("INTERRUPTED") {
		t.Errorf("Output() = %q; want the trap's line: the process stopped by the signal, not killed", p.Output())
	}
}

// TestPostgres starts a server, stops it and starts it again on its port.
func TestPostgres(t *testing.T) {
	s := testkit.Postgres(t)
	addr := strings.TrimPrefix(strings.Split(s.DSN(), "/")[2], "postgres@")
	if !strings.HasPrefix(s.DSN(), "postgres://postgres@127.0.0.1:") {
		t.Errorf("DSN() = %q; want the superuser on 127.0.0.1", s.DSN())
	}
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	s.Stop()
	if err := dial(); err == nil {
		t.Fatalf("dial %s after Stop(): no error", addr)
	}
	s.Start(t)
	if err := dial(); err != nil {
		t.Fatalf("dial %s after Start(): %v", addr, err)
	}
}
