package manager

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// changes reads the whole change feed of a source, in order.
func (e *env) changes(sourceID string) []*events.Envelope {
	e.t.Helper()
	st, err := e.js.Stream(e.ctx, events.StreamChanges)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(e.ctx, jetstream.WithSubjectFilter(events.SourceChangeSubjects(sourceID)))
	if err != nil {
		e.t.Fatal(err)
	}
	want := 0
	for _, n := range info.State.Subjects {
		want += int(n)
	}
	var out []*events.Envelope
	if want == 0 {
		return out
	}
	cons, err := st.OrderedConsumer(e.ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SourceChangeSubjects(sourceID)}})
	if err != nil {
		e.t.Fatal(err)
	}
	for len(out) < want {
		b, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range b.Messages() {
			n++
			env, err := events.Decode(m.Data())
			if err != nil {
				e.t.Fatalf("change does not decode: %v", err)
			}
			out = append(out, env)
		}
		if n == 0 {
			e.t.Fatalf("read %d of %d changes", len(out), want)
		}
	}
	return out
}

func changeList(envs []*events.Envelope) []string {
	var out []string
	for _, env := range envs {
		var id string
		switch p := env.Payload().(type) {
		case *events.ChangeCreated:
			id = p.ExternalID
		case *events.ChangeUpdated:
			id = p.ExternalID
		case *events.ChangeDeleted:
			id = p.ExternalID + " (" + p.Reason + ")"
		}
		out = append(out, string(env.Type)+" "+id)
	}
	return out
}

// fullRun publishes a whole full-sync attempt emitting docs, ended by
// outcome, and waits until the run ended.
func (e *env) fullRun(src *state.Source, outcome any, docs ...events.Document) *state.Run {
	e.t.Helper()
	run, err := e.m.TriggerSync(e.ctx, src.ID, events.ModeFull, TriggerManual)
	if err != nil {
		e.t.Fatal(err)
	}
	a := e.attempt(run, 1)
	a.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	for _, d := range docs {
		a.pub(&events.DocumentUpserted{Document: d})
	}
	a.pub(outcome)
	return e.waitRun(run.ID, "ended", func(r *state.Run) bool { return r.Status.Terminal() })
}

// eq compares change lists as multisets: changes of different documents
// are judged concurrently, so only each document's own changes are ordered.
func eq(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCatalogChangesAndSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	done := &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}

	r := e.fullRun(src, done, doc("a"), doc("b"), doc("c"))
	if r.DocumentsNew != 3 || r.DocumentsChanged+r.DocumentsUnchanged+r.DocumentsDeleted != 0 {
		t.Fatalf("first sync counters: %+v", r.Counters)
	}
	want := []string{"change.created a", "change.created b", "change.created c"}
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}

	// The same documents again: seen, no change.
	r = e.fullRun(src, done, doc("a"), doc("b"), doc("c"))
	if r.DocumentsUnchanged != 3 || r.DocumentsNew+r.DocumentsChanged+r.DocumentsDeleted != 0 {
		t.Fatalf("unchanged re-sync counters: %+v", r.Counters)
	}
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("unchanged re-sync published changes: %q", got)
	}

	// b changes (its title), c is gone: one update, one deletion.
	b2 := doc("b")
	b2.Title = "b, edited"
	r = e.fullRun(src, done, doc("a"), b2)
	if r.DocumentsUnchanged != 1 || r.DocumentsChanged != 1 || r.DocumentsDeleted != 1 || r.DocumentsNew != 0 {
		t.Fatalf("third sync counters: %+v", r.Counters)
	}
	want = append(want, "change.updated b", "change.deleted c (not_seen_in_full_sync)")
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}

	// A full sync that is cancelled or fails deletes nothing, whatever it saw.
	e.fullRun(src, &events.RunCancelled{Reason: "test"})
	e.fullRun(src, &events.RunFailed{Error: "test"}, doc("a"))
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("cancelled and failed syncs changed the feed: %q", got)
	}
	for _, id := range []string{"a", "b"} {
		if _, _, err := e.m.store.Catalog.Get(e.ctx, state.CatalogKey(src.ID, id)); err != nil {
			t.Fatalf("%s left the catalog: %v", id, err)
		}
	}
}

// A crashed attempt's resume emits documents again: each change is on the
// feed once, and the re-emitted documents count as unchanged.
func TestCatalogResumeChangesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	run := e.trigger(src.ID)
	a1 := e.attempt(run, 1)
	a1.pub(&events.RunStarted{WorkerID: "w1", Connector: "fake", Mode: events.ModeFull})
	a1.pub(&events.DocumentUpserted{Document: doc("1")})
	a1.pub(&events.Checkpoint{Checkpoint: json.RawMessage(`{"pos":1}`)})
	a1.pub(&events.DocumentUpserted{Document: doc("2")})
	// The worker dies; attempt 2 resumes after the checkpoint.
	a2 := e.attempt(run, 2)
	a2.pub(&events.RunStarted{WorkerID: "w2", Connector: "fake", Mode: events.ModeFull, Resumed: true})
	a2.pub(&events.DocumentUpserted{Document: doc("2")})
	a2.pub(&events.DocumentUpserted{Document: doc("3")})
	a2.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":3}`)})
	r := e.waitRun(run.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	if r.DocumentsNew != 3 || r.DocumentsUnchanged != 1 {
		t.Fatalf("counters %+v", r.Counters)
	}
	want := []string{"change.created 1", "change.created 2", "change.created 3"}
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}

	// The manager crashed after the catalog writes and before the run
	// record's: the run record is as it was, the catalog already changed.
	// Every event applied again changes nothing on the feed (same message
	// ids) and gives the same counters.
	e.waitApplied(e.m)
	if _, _, err := e.m.store.Runs.Mutate(e.ctx, run.ID, func(r *state.Run) error {
		r.LastEventSeq, r.Counters, r.Status, r.FinishedAt, r.Attempt, r.ScannedBase = 0, state.Counters{}, state.RunQueued, nil, 0, 0
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reapply(t, e, e.fetchAll(events.RunEventSubjects(src.ID, run.ID)), 2)
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("re-applied events changed the feed: %q", got)
	}
	if r2 := e.run(run.ID); r2.Counters != r.Counters {
		t.Fatalf("re-applied events changed counters: %+v, was %+v", r2.Counters, r.Counters)
	}
}

// An indexer built on events.ChangeFeed ends up with exactly the source's
// documents, and a restarted indexer continues where it stopped.
func TestChangeFeedIndexer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	done := &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}

	var mu sync.Mutex
	view := map[string]string{} // external id → title
	handled := 0
	index := func(env *events.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		handled++
		switch p := env.Payload().(type) {
		case *events.ChangeCreated:
			view[p.ExternalID] = p.Document.Title
		case *events.ChangeUpdated:
			view[p.ExternalID] = p.Document.Title
		case *events.ChangeDeleted:
			delete(view, p.ExternalID)
		}
		return nil
	}
	feed, err := events.NewChangeFeed(e.ctx, e.js, events.ChangeFeedConfig{Durable: "indexer", SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Consume(index); err != nil {
		t.Fatal(err)
	}
	e.fullRun(src, done, doc("a"), doc("b"), doc("c"))
	eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return handled == 3 }, "3 changes indexed")
	feed.Stop()

	// While the indexer is down: b changes, c goes.
	b2 := doc("b")
	b2.Title = "b, edited"
	e.fullRun(src, done, doc("a"), b2)
	feed, err = events.NewChangeFeed(e.ctx, e.js, events.ChangeFeedConfig{Durable: "indexer", SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Stop()
	if err := feed.Consume(index); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return handled == 5 }, "the 2 new changes indexed")
	mu.Lock()
	defer mu.Unlock()
	if len(view) != 2 || view["a"] != "title a" || view["b"] != "b, edited" {
		t.Fatalf("indexer view %v", view)
	}
}

// Deleting a source deletes its catalog and tells indexers of every
// document it drops.
func TestDeleteSourceDropsCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	other := e.createSource("other")
	done := &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}
	e.fullRun(src, done, doc("a"), doc("b"))
	e.fullRun(other, done, doc("a"))

	if err := e.m.DeleteSource(e.ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"change.created a", "change.created b", "change.deleted a (source_deleted)", "change.deleted b (source_deleted)"}
	if got := changeList(e.changes(src.ID)); !eq(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}
	for _, id := range []string{"a", "b"} {
		if _, _, err := e.m.store.Catalog.Get(e.ctx, state.CatalogKey(src.ID, id)); err == nil {
			t.Fatalf("%s is still in the catalog", id)
		}
	}
	if _, _, err := e.m.store.Catalog.Get(e.ctx, state.CatalogKey(other.ID, "a")); err != nil {
		t.Fatalf("another source's document went too: %v", err)
	}
	if _, _, err := e.m.store.Active.Get(e.ctx, src.ID); err == nil {
		t.Fatal("the deletion's claim on the source was left behind")
	}
	// Its runs' events are gone; the other source's stay.
	st, err := e.js.Stream(e.ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{src.ID: false, other.ID: true} {
		info, err := st.Info(e.ctx, jetstream.WithSubjectFilter(events.SourceEventSubjects(id)))
		if err != nil {
			t.Fatal(err)
		}
		if has := len(info.State.Subjects) > 0; has != want {
			t.Errorf("source %s has events: %v, want %v", id, has, want)
		}
	}
}

// While a source is being deleted, no run of it can start.
func TestDeletingClaimBlocksRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	if err := e.m.claimActive(e.ctx, src.ID, deletingPrefix+"x"); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	if _, err := e.m.TriggerSync(e.ctx, src.ID, events.ModeFull, TriggerManual); !errors.As(err, &ce) || ce.Code != CodeRunActive {
		t.Fatalf("trigger during deletion: %v", err)
	}
}

// A replay publishes every catalog document of the source again, marked as
// a replay, without reading the source.
func TestReplaySource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	e.fullRun(src, &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}, doc("a"), doc("b"))
	rp, err := e.m.ReplaySource(e.ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rp.Documents != 2 || rp.SourceID != src.ID {
		t.Fatalf("replay %+v", rp)
	}
	replayed := 0
	for _, env := range e.changes(src.ID) {
		if p, ok := env.Payload().(*events.ChangeCreated); ok && p.Reason == ReasonReplay {
			replayed++
			if env.RunID != rp.ReplayID || p.Document == nil || p.Document.Title != "title "+p.ExternalID {
				t.Fatalf("replayed change %+v %+v", env, p)
			}
		}
	}
	if replayed != 2 {
		t.Fatalf("%d replayed changes, want 2", replayed)
	}
	var nf *NotFoundError
	if _, err := e.m.ReplaySource(e.ctx, "nope"); !errors.As(err, &nf) {
		t.Fatalf("replay of an unknown source: %v", err)
	}
}

// TestCatalogBatchKeepsDocumentOrder applies one batch holding several
// events of the same documents: each document's events apply in stream
// order (created, then updated; created, deleted, created again), each
// judged against what the previous one wrote; applying the batch again
// (its ack lost in a crash) publishes and counts nothing twice.
func TestCatalogBatchKeepsDocumentOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	run := e.trigger(src.ID)
	// Stop the applier: the events below are applied by hand, as one batch.
	e.m.consume.Stop()
	e.m.stopApply()
	<-e.m.applyDone

	a := e.attempt(run, 1)
	a.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	a2 := doc("a")
	a2.Title = "second title"
	a.pub(&events.DocumentUpserted{Document: doc("a")})
	a.pub(&events.DocumentUpserted{Document: doc("b")})
	a.pub(&events.DocumentUpserted{Document: a2, Updated: true})
	a.pub(&events.DocumentDeleted{ExternalID: "b"})
	a.pub(&events.DocumentUpserted{Document: doc("b")})
	a.pub(&events.DocumentUpserted{Document: a2, Updated: true})
	msgs := e.fetchAll(events.RunEventSubjects(src.ID, run.ID))
	if len(msgs) != 7 {
		t.Fatalf("%d events, want 7", len(msgs))
	}
	if err := e.m.applyBatch(e.ctx, msgs); err != nil {
		t.Fatal(err)
	}
	want := []string{"change.created a", "change.created b", "change.updated a", "change.deleted b (deleted_in_source)", "change.created b"}
	if got := changeList(e.changes(src.ID)); !slices.Equal(got, want) {
		t.Fatalf("changes %q, want %q", got, want)
	}
	r, rev, err := e.m.Store().Runs.Get(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.DocumentsNew != 3 || r.DocumentsChanged != 1 || r.DocumentsUnchanged != 1 {
		t.Fatalf("counters %+v", r.Counters)
	}
	got, _, err := e.m.Store().Catalog.Get(e.ctx, state.CatalogKey(src.ID, "a"))
	if err != nil || got.Title != "second title" {
		t.Fatalf("catalog a: %+v, %v", got, err)
	}
	if _, _, err := e.m.Store().Catalog.Get(e.ctx, state.CatalogKey(src.ID, "b")); err != nil {
		t.Fatalf("catalog b: %v", err)
	}

	if err := e.m.applyBatch(e.ctx, msgs); err != nil {
		t.Fatal(err)
	}
	if got := changeList(e.changes(src.ID)); !slices.Equal(got, want) {
		t.Fatalf("changes after re-applying %q, want %q", got, want)
	}
	if _, rev2, _ := e.m.Store().Runs.Get(e.ctx, run.ID); rev2 != rev {
		t.Fatalf("re-applying rewrote the run")
	}
}
