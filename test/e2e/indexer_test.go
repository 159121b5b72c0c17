package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

// TestIndexerFollowsFolder runs a small indexer process on the change feed
// (test/indexer) and shows that after a series of edits its view of the
// documents equals the folder: text files as they are, HTML as its visible
// text, deleted files gone.
func TestIndexerFollowsFolder(t *testing.T) {
	s := startManager(t)
	out := filepath.Join(t.TempDir(), "view.json")
	idx := harness.Start(t, "indexer", bins["indexer"], "--nats-url", s.nats, "--out", out)
	idx.WaitLog("indexer ready", time.Minute)

	root := t.TempDir()
	for i := range 10 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("note-%d.txt", i)), fmt.Sprintf("note %d", i))
	}
	writeFile(t, filepath.Join(root, "page.html"), `<html><head><script>x()</script></head><body><h1>Hello</h1><p>world</p></body></html>`)
	src := s.CreateSource("notes", "filesystem", map[string]any{"root": root})
	s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)

	// Edits: two changed, two deleted, one added; then an incremental sync
	// and an unchanged full sync.
	later := time.Now().Add(time.Minute)
	for _, i := range []int{1, 2} {
		p := filepath.Join(root, fmt.Sprintf("note-%d.txt", i))
		writeFile(t, p, fmt.Sprintf("note %d, edited", i))
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{3, 4} {
		if err := os.Remove(filepath.Join(root, fmt.Sprintf("note-%d.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "sub", "new.md"), "# New")
	s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	s.WaitStatus(s.Sync(src.ID, map[string]any{"mode": "full"}).ID, "completed", time.Minute)

	want := map[string]string{src.ID + "/page.html": "Hello\nworld", src.ID + "/sub/new.md": "# New"}
	for _, i := range []int{0, 1, 2, 5, 6, 7, 8, 9} {
		text := fmt.Sprintf("note %d", i)
		if i == 1 || i == 2 {
			text += ", edited"
		}
		want[fmt.Sprintf("%s/note-%d.txt", src.ID, i)] = text
	}
	var got map[string]string
	harness.Eventually(t, 30*time.Second, 50*time.Millisecond, "the indexer's view to equal the folder", func() bool {
		b, err := os.ReadFile(out)
		if err != nil {
			return false
		}
		got = nil
		return json.Unmarshal(b, &got) == nil && maps.Equal(got, want)
	})
}
