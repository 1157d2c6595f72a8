package jwtcache_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// snippetMarker names, in an HTML comment on the line before a fenced Go
// block of a Markdown file, the test file (relative to the repository's
// root) that holds that block as code which compiles and runs: an Example,
// or what one calls.
var snippetMarker = regexp.MustCompile(`^<!-- snippet: (\S+) -->$`)

// TestREADME_Snippets keeps the README's Go snippets, and those of docs/,
// in step with the Examples they come from: every fenced Go block must
// follow a snippet marker, and appear in the file it names line for line,
// indentation aside. The README must also show the two commands a newcomer
// runs from a fresh clone.
func TestREADME_Snippets(t *testing.T) {
	docs, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range append([]string{"README.md"}, docs...) {
		t.Run(doc, func(t *testing.T) {
			for _, s := range readSnippets(t, doc) {
				if s.source == "" {
					t.Errorf("%s:%d: a Go block without a snippet marker before it", doc, s.line)
					continue
				}
				src, err := os.ReadFile(s.source)
				if err != nil {
					t.Errorf("%s:%d: %v", doc, s.line, err)
					continue
				}
				if !containsLines(trimLines(string(src)), s.lines) {
					t.Errorf("%s:%d: the snippet is not in %s (indentation aside):\n%s",
						doc, s.line, s.source, strings.Join(s.lines, "\n"))
				}
			}
		})
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"go run ./examples/quickstart", "make test"} {
		if !strings.Contains(string(readme), cmd) {
			t.Errorf("README.md does not show %q", cmd)
		}
	}
}

// snippet is a fenced Go block of a Markdown file.
type snippet struct {
	line   int      // of the opening fence
	source string   // the file its marker names; empty without one
	lines  []string // trimmed of their indentation
}

// readSnippets returns the fenced Go blocks of the Markdown file path.
func readSnippets(t *testing.T, path string) []snippet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		snippets []snippet
		cur      *snippet // the Go block being read
		fenced   bool     // inside a fenced block of another language
		marker   string   // the marker of the last non-blank line
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case cur != nil && fence:
			snippets = append(snippets, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, strings.TrimSpace(line))
		case fenced:
			fenced = !fence
		case fence && strings.TrimSpace(line) == "```go":
			cur = &snippet{line: n, source: marker}
		case fence:
			fenced = true
		}
		if strings.TrimSpace(line) != "" {
			marker = ""
			if m := snippetMarker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				marker = m[1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: a Go block that never ends", path, cur.line)
	}
	return snippets
}

// trimLines returns the lines of s, trimmed of their indentation.
func trimLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return lines
}

// containsLines reports whether want appears in lines as consecutive lines.
func containsLines(lines, want []string) bool {
	if len(want) == 0 {
		return false
	}
	for i := 0; i+len(want) <= len(lines); i++ {
		match := true
		for j, w := range want {
			if lines[i+j] != w {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
