package manager

import (
	"slices"
	"testing"
	"time"

	"github.com/google/btree"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Search matches title or path, case-insensitively, however the entry
// stores them; writes reported out of order keep the later revision.
func TestDocIndexQuery(t *testing.T) {
	si := &sourceIndex{tree: btree.NewG(4, lessEntry)}
	put := func(ext, title, path string, rev uint64) {
		si.applyLocked(indexOp{e: entryOf(&state.CatalogDoc{ExternalID: ext, Title: title, Metadata: events.Metadata{Path: path}, Status: state.DocPending}, rev)})
	}
	put("docs/report.pdf", "report.pdf", "docs/report.pdf", 1)                                 // a file: title in path, path is the id
	put("doc-1", "Synthetic document 1", "doc-1", 1)                                           // path is the id, title apart
	put("A/B.TXT", "B.TXT", "A/B.TXT", 1)                                                      // upper-case id
	put("faq/1", "Returns Policy", "", 1)                                                      // no path
	put("x", "", "Archive/Old", 1)                                                             // no title
	put("y", "Budget", "finance/2026", 1)                                                      // neither holds the other
	si.applyLocked(indexOp{e: entryOf(&state.CatalogDoc{ExternalID: "y", Title: "stale"}, 0)}) // older: ignored
	for q, want := range map[string][]string{
		"REPORT":    {"docs/report.pdf"},
		"docs/":     {"docs/report.pdf"},
		"synthetic": {"doc-1"},
		"doc-1":     {"doc-1"},
		"a/b.txt":   {"A/B.TXT"},
		"policy":    {"faq/1"},
		"archive":   {"x"},
		"budget":    {"y"},
		"finance":   {"y"},
		"stale":     nil,
		"nothing":   nil,
	} {
		total, ids := si.query("", q, 1, 10)
		if total != len(want) || !slices.Equal(ids, want) {
			t.Errorf("search %q: %d %q, want %q", q, total, ids, want)
		}
	}
	si.applyLocked(indexOp{del: true, e: docEntry{ext: "y", rev: 0}}) // a stale deletion: ignored
	if total, _ := si.query("", "budget", 1, 10); total != 1 {
		t.Error("a deletion older than the entry removed it")
	}
}

func TestDocIndexEvictsIdle(t *testing.T) {
	x := newDocIndex()
	load := func(fn func(*state.CatalogDoc, uint64)) error { return nil }
	if _, err := x.get(t.Context(), "s", load); err != nil {
		t.Fatal(err)
	}
	if n := x.evictIdle(time.Hour); n != 0 {
		t.Fatalf("evicted a fresh index: %d", n)
	}
	if n := x.evictIdle(0); n != 1 || len(x.sources) != 0 {
		t.Fatalf("evicted %d, left %d", n, len(x.sources))
	}
}
