package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
)

func ids(docs []Document) []string {
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ExternalID
	}
	return out
}

func mustRun(t *testing.T, h *Harness, s Sync) *Result {
	t.Helper()
	res, err := h.RunSync(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunSyncFullThenIncremental(t *testing.T) {
	h := New(t, notes{})
	ctx := t.Context()
	first := mustRun(t, h, Sync{Config: notesConfig{Count: 3, Errors: 1}, Credentials: map[string]string{"token": "t0ken"}})
	if first.Status != StatusCompleted || first.Error != "" {
		t.Fatalf("status %s (%s), want completed", first.Status, first.Error)
	}
	if first.Mode != connector.Full || first.Attempts != 1 {
		t.Errorf("mode %s, attempts %d; want full, 1", first.Mode, first.Attempts)
	}
	if got := ids(first.Emitted); !slices.Equal(got, []string{"note-0", "note-1", "note-2"}) {
		t.Errorf("emitted %v", got)
	}
	if len(first.DocumentErrors) != 1 || first.DocumentErrors[0] != (DocumentError{ExternalID: "broken-0", Error: "unreadable"}) {
		t.Errorf("document errors %v", first.DocumentErrors)
	}
	want := Counters{Scanned: 3, Emitted: 3, Errors: 1, New: 3}
	if first.Counters != want {
		t.Errorf("counters %+v, want %+v", first.Counters, want)
	}
	if !jsonEqual(first.Checkpoint, json.RawMessage(`{"generation":0}`)) {
		t.Errorf("checkpoint %s", first.Checkpoint)
	}
	if first.Request == nil || !jsonEqual(first.Request.Credentials, json.RawMessage(`{"token":"t0ken"}`)) || first.Request.Checkpoint != nil {
		t.Errorf("request %+v", first.Request)
	}
	doc, ok := first.Document("note-1")
	if !ok {
		t.Fatal("no note-1")
	}
	if text, err := doc.Text(ctx); err != nil || text != "note 1, generation 0" {
		t.Errorf("text %q, %v", text, err)
	}
	if raw, err := doc.Raw(ctx); err != nil || string(raw) != "note 1, generation 0" {
		t.Errorf("raw %q, %v", raw, err)
	}

	// The same harness: the same source, from the first run's checkpoint;
	// no mode lets the manager choose incremental.
	second := mustRun(t, h, Sync{})
	if second.Status != StatusCompleted || second.Mode != connector.Incremental {
		t.Fatalf("second run %s %s (%s)", second.Status, second.Mode, second.Error)
	}
	if !jsonEqual(second.Request.Checkpoint, first.Checkpoint) {
		t.Errorf("second run received %s, want %s", second.Request.Checkpoint, first.Checkpoint)
	}
	if got := ids(second.Updated); !slices.Equal(got, []string{"note-0"}) || !slices.Equal(second.Deleted, []string{"note-2"}) {
		t.Errorf("updated %v, deleted %v", got, second.Deleted)
	}
	want = Counters{Scanned: 1, Updated: 1, Deleted: 1, Changed: 1}
	if second.Counters != want {
		t.Errorf("counters %+v, want %+v", second.Counters, want)
	}
	cat, err := h.Documents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(cat); !slices.Equal(got, []string{"note-0", "note-1"}) {
		t.Fatalf("catalog %v", got)
	}
	if text, err := cat[0].Text(ctx); err != nil || text != "note 0, generation 1" {
		t.Errorf("catalog note-0 text %q, %v", text, err)
	}
}

func TestSyncOptions(t *testing.T) {
	h := New(t, notes{})
	if docs, err := h.Documents(t.Context()); err != nil || docs != nil {
		t.Fatalf("documents before any sync: %v, %v", docs, err)
	}
	mustRun(t, h, Sync{Config: json.RawMessage(`{"count": 1}`)})

	// A new config updates the source; a checkpoint replaces the source's.
	res := mustRun(t, h, Sync{Config: []byte(`{"count": 2, "label": "!"}`), Checkpoint: notesCheckpoint{Generation: 7}, Mode: connector.Full})
	if res.Status != StatusCompleted {
		t.Fatalf("%s: %s", res.Status, res.Error)
	}
	if !jsonEqual(res.Request.Config, json.RawMessage(`{"count":2,"label":"!"}`)) || !jsonEqual(res.Request.Checkpoint, json.RawMessage(`{"generation":7}`)) {
		t.Errorf("config %s, checkpoint %s", res.Request.Config, res.Request.Checkpoint)
	}
	if doc, _ := res.Document("note-1"); doc.ContentID == "" {
		t.Error("no note-1")
	} else if text, _ := doc.Text(t.Context()); text != "note 1, generation 7!" {
		t.Errorf("text %q", text)
	}
	// A second full sync of a smaller source: the catalog drops what it
	// did not see.
	res = mustRun(t, h, Sync{Config: notesConfig{Count: 1}, Mode: connector.Full})
	if res.Counters.Deleted != 1 || res.Counters.Unchanged != 0 || res.Counters.Changed != 1 {
		t.Errorf("counters %+v", res.Counters)
	}
}

func TestRefusedConfig(t *testing.T) {
	h := New(t, notes{})
	ctx := t.Context()
	if err := h.ValidateConfig(ctx, notesConfig{Count: 1}); err != nil {
		t.Errorf("valid config: %v", err)
	}
	err := h.ValidateConfig(ctx, map[string]any{"count": -1, "colour": "red"})
	if err == nil || !strings.Contains(err.Error(), "count") || !strings.Contains(err.Error(), "colour") {
		t.Errorf("invalid config: %v", err)
	}
	if _, err := h.RunSync(ctx, Sync{Config: map[string]any{}}); err == nil || !strings.Contains(err.Error(), "count") {
		t.Errorf("sync of a config without count: %v", err)
	}
	if _, err := h.RunSync(ctx, Sync{Config: json.RawMessage(`{`)}); err == nil {
		t.Error("sync of a broken JSON config: no error")
	}
	// The refusals left no source behind.
	if docs, err := h.Documents(ctx); err != nil || docs != nil {
		t.Errorf("documents: %v, %v", docs, err)
	}
}

func TestFailedRun(t *testing.T) {
	h := New(t, notes{failFull: true})
	res := mustRun(t, h, Sync{Config: notesConfig{Count: 1}})
	if res.Status != StatusFailed || res.Error != "full syncs are broken" {
		t.Errorf("%s: %q", res.Status, res.Error)
	}
}

func TestCancel(t *testing.T) {
	h := New(t, notes{})
	ctx := t.Context()
	run, err := h.StartSync(ctx, Sync{Config: notesConfig{Count: 1000, Pace: "20ms"}})
	if err != nil {
		t.Fatal(err)
	}
	if run.ID() == "" {
		t.Error("no run id")
	}
	if err := run.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	if err := run.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := run.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusCancelled || res.Error == "" {
		t.Errorf("%s: %q", res.Status, res.Error)
	}
	// The source is free again.
	if res := mustRun(t, h, Sync{Config: notesConfig{Count: 1}, Mode: connector.Full}); res.Status != StatusCompleted {
		t.Errorf("next run %s: %s", res.Status, res.Error)
	}
	if err := run.Cancel(ctx); err == nil {
		t.Error("cancelling an ended run: no error")
	}
}

func TestWaitTimesOut(t *testing.T) {
	h := New(t, notes{}, WithTimeout(300*time.Millisecond))
	// A context with a deadline of its own is not bound by the timeout.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	run, err := h.StartSync(ctx, Sync{Config: notesConfig{Count: 100, Pace: "1s"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = run.Wait(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "did not end") {
		t.Errorf("wait: %v", err)
	}
	if err := run.Cancel(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// extracting stores a document's text extracted from HTML and names the
// original bytes in extra["raw_content_id"], as the filesystem connector
// does; and a document without content.
type extracting struct{}

func (extracting) Manifest() connector.Manifest {
	return connector.Manifest{Name: "extracting", Version: "1.0.0", ConfigSchema: json.RawMessage(`{"type":"object","additionalProperties":false}`)}
}

func (extracting) Sync(ctx context.Context, _ *connector.SyncRequest, sc connector.SyncContext) error {
	html := []byte("<html><body><h1>Hello</h1><script>x()</script></body></html>")
	textID, _, err := sc.Content().ExtractAndStore(ctx, html, "text/html", "page.html")
	if err != nil {
		return err
	}
	rawID, err := sc.Content().SaveBinary(ctx, html, "text/html")
	if err != nil {
		return err
	}
	if err := sc.Emit(ctx, connector.Document{ExternalID: "page", ContentID: textID,
		Metadata: connector.Metadata{Extra: map[string]any{"raw_content_id": rawID}}}); err != nil {
		return err
	}
	return sc.Emit(ctx, connector.Document{ExternalID: "empty", Title: "no content"})
}

func TestContent(t *testing.T) {
	h := New(t, extracting{})
	ctx := t.Context()
	res := mustRun(t, h, Sync{})
	page, _ := res.Document("page")
	if text, err := page.Text(ctx); err != nil || strings.TrimSpace(text) != "Hello" {
		t.Errorf("text %q, %v", text, err)
	}
	if raw, err := page.Raw(ctx); err != nil || !strings.Contains(string(raw), "<script>") {
		t.Errorf("raw %q, %v", raw, err)
	}
	empty, _ := res.Document("empty")
	if _, err := empty.Text(ctx); !errors.Is(err, ErrNoContent) {
		t.Errorf("text of a document without content: %v", err)
	}
	if _, err := (Document{Document: connector.Document{ContentID: "x"}}).Raw(ctx); err == nil {
		t.Error("a document made by hand read content")
	}
	if _, ok := res.Document("nope"); ok {
		t.Error("found a document never emitted")
	}
}

// Optional abilities, for observe.
type (
	docSyncer struct{}
	tester    struct{}
	executor  struct{}
)

func (docSyncer) SyncDocument(context.Context, *connector.SyncRequest, connector.SyncContext) error {
	return nil
}
func (tester) TestConnection(context.Context, *connector.ActionRequest) error { return nil }
func (executor) ExecuteAction(context.Context, *connector.ActionRequest) (any, error) {
	return nil, nil
}

// The worker learns what a connector can do by type assertion: the
// observed connector must offer exactly what the connector does.
func TestObservePreservesInterfaces(t *testing.T) {
	type (
		d = docSyncer
		c = tester
		e = executor
		n = notes
	)
	for _, conn := range []connector.Connector{
		n{}, struct {
			n
			d
		}{}, struct {
			n
			c
		}{}, struct {
			n
			e
		}{},
		struct {
			n
			d
			c
		}{}, struct {
			n
			d
			e
		}{}, struct {
			n
			c
			e
		}{}, struct {
			n
			d
			c
			e
		}{},
	} {
		o := observe(conn, &env{})
		for name, is := range map[string]func(any) bool{
			"DocumentSyncer":   func(v any) bool { _, ok := v.(connector.DocumentSyncer); return ok },
			"ConnectionTester": func(v any) bool { _, ok := v.(connector.ConnectionTester); return ok },
			"ActionExecutor":   func(v any) bool { _, ok := v.(connector.ActionExecutor); return ok },
		} {
			if is(o) != is(conn) {
				t.Errorf("%T: observed is %s: %v, connector: %v", conn, name, is(o), is(conn))
			}
		}
		if o.Manifest().Name != "notes" {
			t.Errorf("%T: manifest %v", conn, o.Manifest())
		}
	}
}

func TestStartRefusesInvalidManifest(t *testing.T) {
	if _, err := Start(t.Context(), notes{noVersion: true}); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("start: %v", err)
	}
	if _, err := Start(t.Context(), nil); err == nil {
		t.Error("start without a connector: no error")
	}
}
