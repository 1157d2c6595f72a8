package grantstoretest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/grantstoretest"
	"github.com/seed7aeb0c6e/jwtcache/provider"
)

// memStore is the reference GrantStore: a map under a mutex. Its mutant
// field, if set, names one way to break the contract (see mutants).
type memStore struct {
	mutant string

	mu     sync.Mutex // guards grants
	grants map[string]grant
}

type grant struct {
	token   string
	version int64
}

func newMem(mutant string) *memStore { return &memStore{mutant: mutant, grants: map[string]grant{}} }

func (m *memStore) check(ctx context.Context, key string) error {
	if key == "" && m.mutant != "empty key accepted" {
		return fmt.Errorf("mem: empty key: %w", jwtcache.ErrInvalid)
	}
	if m.mutant == "context ignored" {
		return nil
	}
	return ctx.Err()
}

func (m *memStore) norm(key string) string {
	if m.mutant == "keys folded" {
		return strings.ToLower(key)
	}
	return key
}

func (m *memStore) Load(ctx context.Context, key string) (string, int64, error) {
	if err := m.check(ctx, key); err != nil {
		return "", 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.grants[m.norm(key)]
	if g.token == "" {
		if m.mutant == "missing is empty" {
			return "", g.version, nil
		}
		return "", g.version, fmt.Errorf("mem: %w", jwtcache.ErrNotFound)
	}
	return g.token, g.version, nil
}

func (m *memStore) Swap(ctx context.Context, key string, version int64, token string) (int64, error) {
	if err := m.check(ctx, key); err != nil {
		return 0, err
	}
	if (token == "" || version < 0) && m.mutant != "empty key accepted" {
		return 0, fmt.Errorf("mem: %w", jwtcache.ErrInvalid)
	}
	m.mu.Lock()
	g := m.grants[m.norm(key)]
	if m.mutant == "check then set" {
		m.mu.Unlock()
		time.Sleep(time.Millisecond) // the window a non-atomic store leaves open
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	if g.version != version && m.mutant != "no compare" {
		return 0, fmt.Errorf("mem: %w", provider.ErrGrantConflict)
	}
	if m.mutant == "tokens truncated" && len(token) > 4096 {
		token = token[:4096]
	}
	next := version + 1
	if m.mutant == "version kept" {
		next = version
	}
	m.grants[m.norm(key)] = grant{token, next}
	return next, nil
}

func (m *memStore) Delete(ctx context.Context, key string, version int64) (bool, error) {
	if err := m.check(ctx, key); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.grants[m.norm(key)]
	if g.token == "" || g.version != version && m.mutant != "delete any version" {
		return false, nil
	}
	if m.mutant == "delete forgets the version" {
		delete(m.grants, m.norm(key))
		return true, nil
	}
	m.grants[m.norm(key)] = grant{version: g.version + 1}
	return true, nil
}

var _ provider.GrantStore = (*memStore)(nil)

func TestRun_Reference(t *testing.T) {
	mem := newMem("")
	grantstoretest.Run(t, func(*testing.T) provider.GrantStore { return mem })
}

// mutants are stores that break the contract, each with the subtests that
// must catch it.
var mutants = map[string][]string{
	"missing is empty":           {"LoadMissing", "Delete", "SwapMissing"},
	"version kept":               {"SwapCreates", "VersionsIncrease"},
	"no compare":                 {"StaleSwap", "CreateExisting", "SwapMissing", "ConcurrentSwaps", "ConcurrentCreates"},
	"delete any version":         {"StaleDelete"},
	"delete forgets the version": {"Delete"},
	"keys folded":                {"Keys"},
	"check then set":             {"ConcurrentSwaps", "ConcurrentCreates"},
	"context ignored":            {"ContextEnded"},
	"empty key accepted":         {"Invalid"},
	"tokens truncated":           {"Tokens"},
}

// TestRun_Mutant runs the suite on the mutant GRANTSTORETEST_MUTANT names,
// for TestRun_CatchesMutants; without it, it skips.
func TestRun_Mutant(t *testing.T) {
	name := os.Getenv("GRANTSTORETEST_MUTANT")
	if name == "" {
		t.Skip("run by TestRun_CatchesMutants")
	}
	mem := newMem(name)
	grantstoretest.Run(t, func(*testing.T) provider.GrantStore { return mem })
}

// TestRun_CatchesMutants checks that each check of the suite can fail: the
// suite, run on a store broken one way, fails the subtests that look at that
// way.
func TestRun_CatchesMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the suite in a subprocess per mutant")
	}
	caught := map[string]bool{}
	for name, want := range mutants {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRun_Mutant$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "GRANTSTORETEST_MUTANT="+name)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("mutant %q: the suite passed", name)
			continue
		}
		for _, sub := range want {
			if !strings.Contains(string(out), "--- FAIL: TestRun_Mutant/"+sub+" ") {
				t.Errorf("mutant %q: subtest %s did not fail; output:\n%s", name, sub, out)
			}
			caught[sub] = true
		}
	}
	for _, sub := range []string{"LoadMissing", "SwapCreates", "VersionsIncrease", "StaleSwap", "CreateExisting", "SwapMissing",
		"StaleDelete", "Delete", "Keys", "Tokens", "ConcurrentSwaps", "ConcurrentCreates", "ContextEnded", "Invalid"} {
		if !caught[sub] {
			t.Errorf("no mutant is caught by %s", sub)
		}
	}
}
