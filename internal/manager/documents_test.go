package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

func ptr[T any](v T) *T { return &v }

func (e *env) list(sourceID string, f DocumentFilter) ([]string, int) {
	e.t.Helper()
	if f.Page == 0 {
		f.Page = 1
	}
	if f.Size == 0 {
		f.Size = 100
	}
	p, err := e.m.ListDocuments(e.ctx, sourceID, f)
	if err != nil {
		e.t.Fatalf("list documents: %v", err)
	}
	ids := make([]string, len(p.Items))
	for i, d := range p.Items {
		ids[i] = d.ExternalID
	}
	return ids, p.Total
}

func TestListDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	var docs []events.Document
	for i := range 25 {
		d := doc(fmt.Sprintf("doc-%02d", i))
		d.Metadata.Path = fmt.Sprintf("Folder/%s.TXT", d.ExternalID)
		if i%5 == 0 {
			d.Title = "Quarterly Report " + d.ExternalID
		}
		docs = append(docs, d)
	}
	e.fullRun(src, &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}, docs...)

	ids, total := e.list(src.ID, DocumentFilter{Page: 2, Size: 10})
	if total != 25 || len(ids) != 10 || ids[0] != "doc-10" || ids[9] != "doc-19" {
		t.Fatalf("page 2: total %d, %q", total, ids)
	}
	if ids, total = e.list(src.ID, DocumentFilter{Page: 3, Size: 10}); total != 25 || len(ids) != 5 {
		t.Fatalf("page 3: total %d, %q", total, ids)
	}
	if ids, total = e.list(src.ID, DocumentFilter{Page: 4, Size: 10}); total != 25 || len(ids) != 0 {
		t.Fatalf("page 4: total %d, %q", total, ids)
	}
	// Search matches title or path, whatever the case.
	if ids, total = e.list(src.ID, DocumentFilter{Search: "quarterly"}); total != 5 || ids[1] != "doc-05" {
		t.Fatalf("search title: total %d, %q", total, ids)
	}
	if _, total = e.list(src.ID, DocumentFilter{Search: "folder/doc-1"}); total != 10 {
		t.Fatalf("search path: total %d", total)
	}

	// The index follows later writes: a status report, a new document, a
	// deletion.
	if _, err := e.m.SetDocumentStatus(e.ctx, src.ID, state.DocID("doc-03"), DocumentStatus{Status: state.DocFailed, Error: "parse error"}); err != nil {
		t.Fatal(err)
	}
	if ids, total = e.list(src.ID, DocumentFilter{Status: state.DocFailed}); total != 1 || ids[0] != "doc-03" {
		t.Fatalf("failed: total %d, %q", total, ids)
	}
	if _, total = e.list(src.ID, DocumentFilter{Status: state.DocPending}); total != 24 {
		t.Fatalf("pending: total %d", total)
	}
	if _, err := e.m.CreateDocument(e.ctx, src.ID, DocumentInput{ExternalID: "aaa", Title: ptr("Quarterly by hand")}); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeleteDocument(e.ctx, src.ID, state.DocID("doc-00")); err != nil {
		t.Fatal(err)
	}
	if ids, total = e.list(src.ID, DocumentFilter{Search: "QUARTERLY"}); total != 5 || ids[0] != "aaa" {
		t.Fatalf("after writes: total %d, %q", total, ids)
	}

	// Bad filters and unknown sources change nothing and say why.
	var ve *ValidationError
	if _, err := e.m.ListDocuments(e.ctx, src.ID, DocumentFilter{Status: "done", Page: 1, Size: 1}); !errors.As(err, &ve) {
		t.Fatalf("bad status: %v", err)
	}
	var nf *NotFoundError
	if _, err := e.m.ListDocuments(e.ctx, "01NOSUCHSOURCE", DocumentFilter{Page: 1, Size: 1}); !errors.As(err, &nf) {
		t.Fatalf("unknown source: %v", err)
	}
	if _, err := e.m.GetDocument(e.ctx, src.ID, "not-a-doc-id"); !errors.As(err, &nf) {
		t.Fatalf("bad doc id: %v", err)
	}
}

// Manual documents go through the change feed like synced ones, and a
// full sync's sweep leaves them alone.
func TestManualDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	done := &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}
	e.fullRun(src, done, doc("synced"))

	rec, err := e.m.CreateDocument(e.ctx, src.ID, DocumentInput{ExternalID: "hand", Title: ptr("By hand"), Content: ptr("hello, world")})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Origin != state.OriginManual || rec.ContentID == "" || rec.Status != state.DocPending {
		t.Fatalf("created %+v", rec)
	}
	var ce *ConflictError
	if _, err := e.m.CreateDocument(e.ctx, src.ID, DocumentInput{ExternalID: "hand"}); !errors.As(err, &ce) || ce.Code != CodeDocumentExists {
		t.Fatalf("second create: %v", err)
	}
	id := state.DocID("hand")
	obj, err := e.m.OpenContent(e.ctx, src.ID, id, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj)
	_ = obj.Close()
	if string(b) != "hello, world" || obj.ContentType != "text/plain; charset=utf-8" {
		t.Fatalf("content %q (%s)", b, obj.ContentType)
	}

	// An update that changes nothing publishes nothing; a real one does.
	if _, err := e.m.UpdateDocument(e.ctx, src.ID, id, DocumentInput{Title: ptr("By hand")}); err != nil {
		t.Fatal(err)
	}
	up, err := e.m.UpdateDocument(e.ctx, src.ID, id, DocumentInput{Content: ptr("hello again")})
	if err != nil {
		t.Fatal(err)
	}
	if up.Title != "By hand" || up.ContentID == rec.ContentID {
		t.Fatalf("updated %+v", up)
	}

	// A full sync that does not see the manual document keeps it; one that
	// does not see the synced one deletes that.
	e.fullRun(src, done)
	if err := e.m.DeleteDocument(e.ctx, src.ID, id); err != nil {
		t.Fatal(err)
	}
	var nf *NotFoundError
	if err := e.m.DeleteDocument(e.ctx, src.ID, id); !errors.As(err, &nf) {
		t.Fatalf("second delete: %v", err)
	}
	want := []string{"change.created synced", "change.created hand", "change.updated hand",
		"change.deleted synced (not_seen_in_full_sync)", "change.deleted hand (deleted_by_operator)"}
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}

	// Bad input is refused and changes nothing.
	var ve *ValidationError
	if _, err := e.m.CreateDocument(e.ctx, src.ID, DocumentInput{Content: ptr("\xff\xfe")}); !errors.As(err, &ve) {
		t.Fatalf("non-UTF-8 content: %v", err)
	}
	if _, total := e.list(src.ID, DocumentFilter{}); total != 0 {
		t.Fatalf("%d documents left", total)
	}
}

// Indexers report statuses over NATS too; the manager stores each before
// it answers.
func TestStatusOverNATS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	e.fullRun(src, &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}, doc("a"), doc("b"))
	nc, _ := e.n.Connect(t)
	if err := events.ReportStatus(e.ctx, nc, src.ID, events.StatusReport{ExternalID: "a", Status: events.DocStatusIndexed}); err != nil {
		t.Fatal(err)
	}
	if err := events.ReportStatus(e.ctx, nc, src.ID, events.StatusReport{DocID: state.DocID("b"), Status: events.DocStatusFailed, Error: "too big"}); err != nil {
		t.Fatal(err)
	}
	a, _ := e.m.GetDocument(e.ctx, src.ID, state.DocID("a"))
	b, _ := e.m.GetDocument(e.ctx, src.ID, state.DocID("b"))
	if a.Status != state.DocIndexed || b.Status != state.DocFailed || b.Error != "too big" || b.StatusAt == nil {
		t.Fatalf("a %s, b %s %q", a.Status, b.Status, b.Error)
	}
	var se *events.StatusError
	err := events.ReportStatus(e.ctx, nc, src.ID, events.StatusReport{ExternalID: "zzz", Status: events.DocStatusIndexed})
	if !errors.As(err, &se) || se.Code != "not_found" {
		t.Fatalf("unknown document: %v", err)
	}
	err = events.ReportStatus(e.ctx, nc, src.ID, events.StatusReport{ExternalID: "a", Status: "done"})
	if !errors.As(err, &se) || se.Code != "invalid" {
		t.Fatalf("bad status: %v", err)
	}
	msg, err := nc.Request(events.StatusSubject(src.ID), []byte("{not json"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rep events.StatusReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error == nil || rep.Error.Code != "invalid" {
		t.Fatalf("garbage report: %s", msg.Data)
	}
	// A changed document is pending again, and a late report on its old
	// version is refused as stale.
	old := a.Hash
	a2 := doc("a")
	a2.Title = "new title"
	e.fullRun(src, &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}, a2, doc("b"))
	a, _ = e.m.GetDocument(e.ctx, src.ID, state.DocID("a"))
	b, _ = e.m.GetDocument(e.ctx, src.ID, state.DocID("b"))
	if a.Status != state.DocPending || b.Status != state.DocFailed {
		t.Fatalf("after a change: a %s, b %s", a.Status, b.Status)
	}
	err = events.ReportStatus(e.ctx, nc, src.ID, events.StatusReport{ExternalID: "a", Status: events.DocStatusIndexed, Fingerprint: old})
	if !errors.As(err, &se) || se.Code != CodeStale {
		t.Fatalf("stale report: %v", err)
	}
	var updated string
	for _, env := range e.changes(src.ID) {
		if p, ok := env.Payload().(*events.ChangeUpdated); ok && p.ExternalID == "a" {
			updated = p.Fingerprint
		}
	}
	if updated != a.Hash {
		t.Fatalf("the change's fingerprint %q is not the catalog's %q", updated, a.Hash)
	}
	if err := events.ReportStatus(e.ctx, nc, src.ID, events.StatusReport{ExternalID: "a", Status: events.DocStatusIndexed, Fingerprint: updated}); err != nil {
		t.Fatal(err)
	}
	if a, _ = e.m.GetDocument(e.ctx, src.ID, state.DocID("a")); a.Status != state.DocIndexed {
		t.Fatalf("after a current report: %s", a.Status)
	}
}
