package notes_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/examples/notes-connector/notes"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

const token = "s3cret"

// source serves a list of notes, to the token only; tests change the list
// between syncs.
type source struct {
	*httptest.Server
	mu    sync.Mutex
	notes []notes.Note
}

func newSource(t *testing.T, list ...notes.Note) *source {
	s := &source{notes: list}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"notes": s.notes})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *source) set(list ...notes.Note) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = list
}

// hanging answers nothing until the request is cancelled: a sync of it
// runs until it is cancelled.
func hanging(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(s.Close)
	return s
}

var day = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func note(id string, hours int, body string) notes.Note {
	return notes.Note{ID: id, Title: strings.ToUpper(id[:1]) + id[1:], Body: body, Author: "Ada", UpdatedAt: day.Add(time.Duration(hours) * time.Hour)}
}

func TestConformance(t *testing.T) {
	src := newSource(t, note("welcome", 0, "# Hello"), note("second", 1, "Two"))
	connectortest.Conformance(t, notes.New(), connectortest.ConformanceConfig{
		Config:      notes.Config{URL: src.URL},
		Credentials: notes.Credentials{Token: token},
		InvalidConfigs: []any{
			map[string]any{"url": "ftp://example.com/notes.json"},
			map[string]any{"url": src.URL, "checkpoint_every": 0},
			map[string]any{"url": src.URL, "colour": "red"},
		},
		SlowConfig: notes.Config{URL: hanging(t).URL},
	})
}

func TestFullThenIncremental(t *testing.T) {
	ctx := t.Context()
	page := note("page", 1, "<html><body><h1>Title</h1><p>Some <b>bold</b> text.</p><script>x()</script></body></html>")
	page.Format = "html"
	broken := note("broken", 2, "%PDF-1.7")
	broken.Format = "pdf"
	src := newSource(t, note("welcome", 0, "# Hello"), page, broken)
	h := connectortest.New(t, notes.New())

	// The first sync is full: every note that can be read is a document.
	res, err := h.RunSync(ctx, connectortest.Sync{
		Config:      notes.Config{URL: src.URL, CheckpointEvery: 1},
		Credentials: notes.Credentials{Token: token},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != connectortest.StatusCompleted || res.Mode != connector.Full {
		t.Fatalf("first sync %s %s: %s", res.Mode, res.Status, res.Error)
	}
	if got := ids(res.Emitted); !slices.Equal(got, []string{"welcome", "page"}) {
		t.Errorf("emitted %v", got)
	}
	if len(res.DocumentErrors) != 1 || res.DocumentErrors[0].ExternalID != "broken" {
		t.Errorf("document errors %v, want one for broken", res.DocumentErrors)
	}
	doc, _ := res.Document("page")
	if text, err := doc.Text(ctx); err != nil || !strings.Contains(text, "Some bold text.") || strings.Contains(text, "<") || strings.Contains(text, "x()") {
		t.Errorf("text of the HTML note: %q, %v", text, err)
	}
	var cp notes.Checkpoint
	if err := json.Unmarshal(res.Checkpoint, &cp); err != nil || cp.ID != "broken" || !cp.UpdatedAt.Equal(broken.UpdatedAt) {
		t.Errorf("checkpoint %s, want the last note read", res.Checkpoint)
	}

	// The source changes: welcome is edited, page deleted, a note added.
	edited := note("welcome", 5, "# Hello again")
	gone := notes.Note{ID: "page", Deleted: true, UpdatedAt: day.Add(6 * time.Hour)}
	src.set(edited, broken, gone, note("news", 7, "Fresh"))

	// The next sync is incremental: only what changed since the checkpoint.
	res, err = h.RunSync(ctx, connectortest.Sync{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != connectortest.StatusCompleted || res.Mode != connector.Incremental {
		t.Fatalf("second sync %s %s: %s", res.Mode, res.Status, res.Error)
	}
	if got := ids(res.Emitted); !slices.Equal(got, []string{"welcome", "news"}) {
		t.Errorf("emitted %v, want welcome and news", got)
	}
	if !slices.Equal(res.Deleted, []string{"page"}) {
		t.Errorf("deleted %v, want page", res.Deleted)
	}
	if res.Counters.New != 1 || res.Counters.Changed != 1 {
		t.Errorf("the catalog saw %d new, %d changed; want 1 and 1", res.Counters.New, res.Counters.Changed)
	}
	catalog, err := h.Documents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(catalog); !slices.Equal(got, []string{"news", "welcome"}) {
		t.Errorf("catalog %v, want news and welcome", got)
	}
}

// A full sync need not report deletions: the manager deletes the documents
// it did not see.
func TestFullSyncDeletesWhatItDidNotSee(t *testing.T) {
	ctx := t.Context()
	src := newSource(t, note("a", 0, "A"), note("b", 1, "B"))
	h := connectortest.New(t, notes.New())
	full := connectortest.Sync{Config: notes.Config{URL: src.URL}, Credentials: notes.Credentials{Token: token}, Mode: connector.Full}
	if res, err := h.RunSync(ctx, full); err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	src.set(note("b", 1, "B"))
	res, err := h.RunSync(ctx, full)
	if err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	if res.Counters.Deleted != 1 || res.Counters.Unchanged != 1 {
		t.Errorf("counters %+v, want 1 deleted (a) and 1 unchanged (b)", res.Counters)
	}
	catalog, err := h.Documents(ctx)
	if err != nil || !slices.Equal(ids(catalog), []string{"b"}) {
		t.Errorf("catalog %v, %v; want b", ids(catalog), err)
	}
}

// A document error in a full sync does not keep the document: the sweep
// after the sync deletes it, as one the sync did not see.
func TestFullSyncDeletesANoteItCouldNotRead(t *testing.T) {
	ctx := t.Context()
	src := newSource(t, note("a", 0, "A"))
	h := connectortest.New(t, notes.New())
	full := connectortest.Sync{Config: notes.Config{URL: src.URL}, Credentials: notes.Credentials{Token: token}, Mode: connector.Full}
	if res, err := h.RunSync(ctx, full); err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	unreadable := note("a", 1, "A")
	unreadable.Format = "pdf"
	src.set(unreadable)
	res, err := h.RunSync(ctx, full)
	if err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	if res.Counters.Errors != 1 || res.Counters.Deleted != 1 {
		t.Errorf("counters %+v, want 1 error and 1 deleted", res.Counters)
	}
}

// A source that cannot be read fails the run, with a message for the
// operator that does not show the token.
func TestWrongTokenFailsTheRun(t *testing.T) {
	src := newSource(t, note("a", 0, "A"))
	h := connectortest.New(t, notes.New())
	res, err := h.RunSync(t.Context(), connectortest.Sync{Config: notes.Config{URL: src.URL}, Credentials: notes.Credentials{Token: "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != connectortest.StatusFailed || !strings.Contains(res.Error, "401") || strings.Contains(res.Error, "wrong") {
		t.Fatalf("run %s: %q; want failed with the status, without the token", res.Status, res.Error)
	}
}

// An operator can set the checkpoint: the next incremental sync starts
// after it.
func TestIncrementalFromACheckpoint(t *testing.T) {
	src := newSource(t, note("a", 0, "A"), note("b", 1, "B"), note("c", 2, "C"))
	h := connectortest.New(t, notes.New())
	res, err := h.RunSync(t.Context(), connectortest.Sync{
		Config: notes.Config{URL: src.URL}, Credentials: notes.Credentials{Token: token},
		Checkpoint: notes.Checkpoint{UpdatedAt: day.Add(time.Hour), ID: "b"}, Mode: connector.Incremental,
	})
	if err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	if got := ids(res.Emitted); !slices.Equal(got, []string{"c"}) {
		t.Errorf("emitted %v, want c", got)
	}
}

func TestOptionalAbilities(t *testing.T) {
	ctx := t.Context()
	other := note("b", 1, "B")
	other.Author = "Grace"
	src := newSource(t, note("a", 0, "A"), other)
	h := connectortest.New(t, notes.New())
	s := connectortest.Sync{Config: notes.Config{URL: src.URL}, Credentials: notes.Credentials{Token: token}}

	if err := h.TestConnection(ctx, s); err != nil {
		t.Errorf("connection test: %v", err)
	}
	bad := connectortest.Sync{Credentials: notes.Credentials{Token: "wrong"}}
	if err := h.TestConnection(ctx, bad); !errors.Is(err, connectortest.ErrConnectionTest) || !strings.Contains(err.Error(), "401") {
		t.Errorf("connection test with a wrong token: %v", err)
	}

	out, err := h.ExecuteAction(ctx, s, "count", map[string]any{"author": "Grace"})
	if err != nil || string(out) != `{"notes":1}` {
		t.Errorf("count: %s, %v", out, err)
	}
	if _, err := h.ExecuteAction(ctx, s, "count", map[string]any{"author": 7}); err == nil {
		t.Error("the manager accepted a number for a string parameter")
	}

	if res, err := h.RunSync(ctx, s); err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	edited := note("a", 3, "A, edited")
	src.set(edited, other)
	res, err := h.SyncDocument(ctx, "a")
	if err != nil || res.Status != connectortest.StatusCompleted {
		t.Fatalf("%v %+v", err, res)
	}
	doc, ok := res.Document("a")
	if text, _ := doc.Text(ctx); !ok || text != "A, edited" || res.Request.Document != "a" {
		t.Errorf("re-fetched %v %q (request %+v)", ok, text, res.Request)
	}
	src.set(edited)
	res, err = h.SyncDocument(ctx, "b")
	if err != nil || res.Status != connectortest.StatusCompleted || !slices.Equal(res.Deleted, []string{"b"}) {
		t.Fatalf("re-fetching a note the source no longer lists: %v %+v", err, res)
	}
}

func ids(docs []connectortest.Document) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ExternalID
	}
	return out
}
