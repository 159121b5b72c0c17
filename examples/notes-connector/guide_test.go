package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// guide is the walk-through this example is quoted in.
const guide = "../../docs/writing-a-connector.md"

// TestGuideQuotesTheseFiles checks that every Go block of the guide is
// quoted, verbatim, from the file its "<!-- from: path -->" line names,
// so the code the guide shows is the code these tests run.
func TestGuideQuotesTheseFiles(t *testing.T) {
	raw, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	blocks := 0
	for i := 0; i < len(lines); i++ {
		if lines[i] != "```go" {
			continue
		}
		blocks++
		start := i
		for i++; i < len(lines) && lines[i] != "```"; i++ {
		}
		block := strings.Join(lines[start+1:i], "\n")
		from, ok := strings.CutPrefix(lines[max(start-1, 0)], "<!-- from: ")
		from, ok2 := strings.CutSuffix(from, " -->")
		if !ok || !ok2 {
			t.Errorf("%s:%d: a Go block without a <!-- from: path --> line before it", guide, start+1)
			continue
		}
		src, err := os.ReadFile(filepath.Join("../..", filepath.FromSlash(from)))
		if err != nil {
			t.Errorf("%s:%d: %v", guide, start+1, err)
			continue
		}
		if !strings.Contains(string(src), block+"\n") {
			t.Errorf("%s:%d: the block is not in %s as it is now; quote the file again:\n%s", guide, start+1, from, block)
		}
	}
	if blocks < 10 {
		t.Errorf("found %d Go blocks in the guide; the checker may be reading it wrong", blocks)
	}
}

// TestGuideLinks checks that the guide's links to files of the repository
// lead somewhere.
func TestGuideLinks(t *testing.T) {
	raw, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`).FindAllStringSubmatch(string(raw), -1) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(guide), filepath.FromSlash(m[1]))); err != nil {
			t.Errorf("link %s: %v", m[1], err)
		}
	}
}
