package manager

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// triggerConcurrently fires n TriggerSync calls at once and returns the runs
// created and the errors.
func triggerConcurrently(e *env, sourceID string, n int) ([]*state.Run, []error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		runs  []*state.Run
		errs  []error
		start = make(chan struct{})
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			run, err := e.m.TriggerSync(e.ctx, sourceID, "", TriggerManual)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else {
				runs = append(runs, run)
			}
		}()
	}
	close(start)
	wg.Wait()
	return runs, errs
}

func checkOneWinner(t *testing.T, e *env, sourceID string, runs []*state.Run, errs []error, n int) *state.Run {
	t.Helper()
	if len(runs) != 1 {
		t.Fatalf("%d of %d concurrent triggers created a run (errors: %v)", len(runs), n, errs)
	}
	winner := runs[0]
	for _, err := range errs {
		var ce *ConflictError
		if !errors.As(err, &ce) || ce.Code != CodeRunActive {
			t.Fatalf("losing trigger got %v (%T), want a ConflictError %q", err, err, CodeRunActive)
		}
		if ce.RunID != "" && ce.RunID != winner.ID {
			t.Fatalf("conflict names run %s, the winner is %s", ce.RunID, winner.ID)
		}
	}
	// Exactly one queued run is stored; losers cleaned up after themselves.
	queued, err := e.m.ListRuns(e.ctx, RunFilter{SourceID: sourceID, Status: state.RunQueued})
	if err != nil {
		t.Fatal(err)
	}
	if len(queued) != 1 || queued[0].ID != winner.ID {
		t.Fatalf("queued runs of the source: %d, want only %s", len(queued), winner.ID)
	}
	if run, err := e.m.activeRun(e.ctx, sourceID); err != nil || run == nil || run.ID != winner.ID {
		t.Fatalf("active run %v, %v; want %s", run, err, winner.ID)
	}
	src, err := e.m.GetSource(e.ctx, sourceID)
	if err != nil || src.LastRunID != winner.ID {
		t.Fatalf("source last run %q, %v; want %s", src.LastRunID, err, winner.ID)
	}
	if !winner.Dispatched || e.run(winner.ID).Dispatched != true {
		t.Fatal("winning run not recorded as dispatched")
	}
	return winner
}

func TestTriggerSyncConcurrentCreatesOneRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	const n = 16

	runs, errs := triggerConcurrently(e, src.ID, n)
	winner := checkOneWinner(t, e, src.ID, runs, errs, n)
	all, err := e.m.ListRuns(e.ctx, RunFilter{SourceID: src.ID})
	if err != nil || len(all) != 1 {
		t.Fatalf("runs of the source: %d, %v", len(all), err)
	}
	if got := e.syncRequests(); got != 1 {
		t.Fatalf("%d sync requests in the work queue, want 1", got)
	}

	// A stale claim (its run ended but the claim was not released, as after
	// a manager crash) is taken over by exactly one of many triggers.
	p := e.attempt(winner, 1)
	p.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	p.pub(&events.RunCompleted{Scanned: 0})
	e.waitRun(winner.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	eventually(t, waitTimeout, func() bool {
		_, _, err := e.m.Store().Active.Get(e.ctx, src.ID)
		return errors.Is(err, state.ErrNotFound)
	}, "the applier to release the source")
	if _, err := e.m.Store().Active.Put(e.ctx, src.ID, &state.Active{RunID: winner.ID, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	runs, errs = triggerConcurrently(e, src.ID, n)
	second := checkOneWinner(t, e, src.ID, runs, errs, n)
	if second.ID == winner.ID {
		t.Fatal("the stale run was returned as the new one")
	}
	if got := e.syncRequests(); got != 2 {
		t.Fatalf("%d sync requests in the work queue, want 2", got)
	}
}

func TestTriggerSyncErrorsAndModes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	fullOnly := connector.Manifest{Name: "fullonly", Version: "1.0.0"}
	e.register(fullOnly)
	src := e.createSource("s")
	fsrc, err := e.m.CreateSource(e.ctx, CreateSource{Name: "f", Connector: "fullonly", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}

	_, err = e.m.TriggerSync(e.ctx, "01NOSUCHSOURCE0000000000000", "", TriggerManual)
	asNotFound(t, err, "source")
	_, err = e.m.TriggerSync(e.ctx, src.ID, "sideways", TriggerManual)
	wantDetails(t, asValidation(t, err), "body.mode|enum")
	_, err = e.m.TriggerSync(e.ctx, fsrc.ID, events.ModeIncremental, TriggerManual)
	wantDetails(t, asValidation(t, err), "body.mode|unsupported_mode")
	if runs, _ := e.m.ListRuns(e.ctx, RunFilter{}); len(runs) != 0 {
		t.Fatalf("rejected triggers stored %d runs", len(runs))
	}

	// No checkpoint yet: full. With one: incremental where supported.
	run := e.trigger(src.ID)
	if run.Mode != events.ModeFull || run.Status != state.RunQueued || run.Trigger != TriggerManual {
		t.Fatalf("first run %+v", run)
	}
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	p.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":3}`), Scanned: 3})
	e.waitRun(run.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	if next := e.waitTrigger(src.ID); next.Mode != events.ModeIncremental {
		t.Fatalf("run after a checkpoint is %s, want incremental", next.Mode)
	}

	frun := e.trigger(fsrc.ID)
	fp := e.attempt(frun, 1)
	fp.pub(&events.RunStarted{WorkerID: "w", Connector: "fullonly", Mode: events.ModeFull})
	fp.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":1}`)})
	e.waitRun(frun.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	if next := e.waitTrigger(fsrc.ID); next.Mode != events.ModeFull {
		t.Fatalf("full-only connector got a %s run", next.Mode)
	}

	// The connector is no longer registered by any worker.
	if err := e.m.Store().Connectors.Delete(e.ctx, "fake", 0); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.TriggerSync(e.ctx, fsrc.ID, "", TriggerManual)
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("trigger with an active run: %v", err)
	}
	_, err = e.m.TriggerSync(e.ctx, src.ID, "", TriggerManual)
	wantDetails(t, asValidation(t, err), "body.connector|unknown_connector")
}

func TestCancelQueuedRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	run := e.trigger(src.ID)

	got, err := e.m.CancelRun(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != state.RunCancelled || !got.CancelRequested || got.FinishedAt == nil || got.StartedAt != nil {
		t.Fatalf("cancelled queued run: %+v", got)
	}
	stored := e.run(run.ID)
	if stored.Status != state.RunCancelled || !stored.CancelRequested {
		t.Fatalf("stored run: %+v", stored)
	}
	// The cancel request is on the bus for whichever worker takes the request.
	cst, err := e.js.Stream(e.ctx, events.StreamCancel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cst.GetLastMsgForSubject(e.ctx, events.CancelSubject(run.ID)); err != nil {
		t.Fatalf("no stored cancel request: %v", err)
	}

	// Cancelling again, or a source with nothing active, is a conflict.
	var ce *ConflictError
	if _, err := e.m.CancelRun(e.ctx, run.ID); !errors.As(err, &ce) || ce.Code != CodeRunNotActive || ce.RunID != run.ID {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := e.m.CancelSource(e.ctx, src.ID); !errors.As(err, &ce) || ce.Code != CodeRunNotActive {
		t.Fatalf("cancel source without an active run: %v", err)
	}
	_, err = e.m.CancelRun(e.ctx, "01NOSUCHRUN000000000000000")
	asNotFound(t, err, "run")
	_, err = e.m.CancelSource(e.ctx, "01NOSUCHSOURCE0000000000000")
	asNotFound(t, err, "source")

	// The source is free at once.
	next := e.trigger(src.ID)

	// A worker that took the cancelled run's request anyway (it raced the
	// cancel) cannot bring it back: its events do not start, count or
	// checkpoint the run.
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "late", Connector: "fake", Mode: events.ModeFull})
	p.pub(&events.DocumentUpserted{Document: doc("a")})
	p.pub(&events.Checkpoint{Checkpoint: json.RawMessage(`{"pos":1}`)})
	p.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":1}`), Scanned: 1})
	e.waitApplied(e.m)
	after := e.run(run.ID)
	if after.Status != state.RunCancelled || after.StartedAt != nil || after.DocumentsEmitted != 0 ||
		after.DocumentsScanned != 0 || after.WorkerID != "" || after.Attempt != 0 {
		t.Fatalf("late events changed the cancelled run: %+v", after)
	}
	if cp, _ := e.checkpoint(src.ID); cp != nil {
		t.Fatalf("late events stored a checkpoint: %+v", cp)
	}
	// ... and do not release the source's new active run.
	if a, err := e.m.activeRun(e.ctx, src.ID); err != nil || a == nil || a.ID != next.ID {
		t.Fatalf("active run after late events: %v, %v; want %s", a, err, next.ID)
	}
}

func TestCancelRunningRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	run := e.trigger(src.ID)
	p := e.attempt(run, 1)
	// A worker executing the run holds the source's lease.
	if _, err := e.m.store.Leases.Create(e.ctx, src.ID, &state.Lease{RunID: run.ID, WorkerID: "w", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	p.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	e.waitRun(run.ID, "running", func(r *state.Run) bool { return r.Status == state.RunRunning })

	got, err := e.m.CancelSource(e.ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A running run stays running until its worker reports it stopped.
	if got.Status != state.RunRunning || !got.CancelRequested {
		t.Fatalf("after cancel: %+v", got)
	}
	var ce *ConflictError
	if _, err := e.m.TriggerSync(e.ctx, src.ID, "", TriggerManual); !errors.As(err, &ce) || ce.Code != CodeRunActive {
		t.Fatalf("trigger while cancelling: %v", err)
	}
	p.pub(&events.RunCancelled{Reason: "cancelled by request"})
	r := e.waitRun(run.ID, "cancelled", func(r *state.Run) bool { return r.Status == state.RunCancelled })
	if r.Error != "cancelled by request" || r.FinishedAt == nil || !r.CancelRequested {
		t.Fatalf("cancelled run: %+v", r)
	}
	e.waitTrigger(src.ID)
}

// A running run that no worker executes (no lease: its worker died) is
// cancelled at once instead of waiting for a worker that may never come.
func TestCancelRunningRunWithoutWorker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	run := e.trigger(src.ID)
	e.attempt(run, 1).pub(&events.RunStarted{WorkerID: "gone", Connector: "fake", Mode: events.ModeFull})
	e.waitRun(run.ID, "running", func(r *state.Run) bool { return r.Status == state.RunRunning })

	got, err := e.m.CancelRun(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != state.RunCancelled || !got.CancelRequested || got.FinishedAt == nil {
		t.Fatalf("after cancel: %+v", got)
	}
	if a, err := e.m.activeRun(e.ctx, src.ID); err != nil || a != nil {
		t.Fatalf("source still busy: %v %v", a, err)
	}
}
