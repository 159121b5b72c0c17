package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// msgLeaseHeld is what a worker logs when it finds a source's lease held.
const msgLeaseHeld = "source lease held elsewhere; retrying when it can have expired"

func TestSyncCompletesWithCounters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := newPager("pager")
	w, _ := h.startWorker(Config{Connectors: []connector.Connector{p}})
	src := h.source("pager", `{"n":25,"k":10,"deleted":2,"errors":1}`)
	run := h.trigger(src.ID)

	r := h.waitStatus(run.ID, state.RunCompleted)
	want := state.Counters{DocumentsScanned: 25, DocumentsEmitted: 25, DocumentsDeleted: 2, DocumentsErrors: 1, DocumentsNew: 25}
	if r.Counters != want {
		t.Fatalf("counters %+v, want %+v", r.Counters, want)
	}
	if r.Attempt != 1 || r.WorkerID != w.ID() || r.StartedAt == nil || r.FinishedAt == nil || r.Error != "" {
		t.Fatalf("run %+v", r)
	}
	cp := h.checkpoint(src.ID)
	if cp == nil || string(cp.Checkpoint) != `{"pos":25}` || !cp.Final || cp.RunID != run.ID || cp.Attempt != 1 {
		t.Fatalf("checkpoint %+v", cp)
	}
	reqs := p.requests()
	if len(reqs) != 1 || reqs[0].Attempt != 1 || reqs[0].Resumed || reqs[0].Checkpoint != nil ||
		reqs[0].Mode != events.ModeFull || reqs[0].RunID != run.ID || string(reqs[0].Config) != string(src.Config) {
		t.Fatalf("sync requests %+v", reqs)
	}
	// The request left the work queue and the lease was released.
	eventually(t, waitTimeout, func() bool { return h.syncRequests() == 0 && !h.leaseHeld(src.ID) },
		"the request to be acked and the lease released")

	evs := h.runEvents(src.ID, run.ID)
	if n := len(ofType(evs, events.TypeDocumentUpserted)); n != 25 {
		t.Fatalf("%d documents in the stream, want 25", n)
	}
	if cps := ofType(evs, events.TypeCheckpoint); len(cps) != 2 {
		t.Fatalf("%d checkpoints in the stream, want 2", len(cps))
	}
	if last := evs[len(evs)-1].env; last.Type != events.TypeRunCompleted {
		t.Fatalf("last event %s", last.Type)
	}

	// The next sync is incremental and gets the previous run's checkpoint,
	// not as a resume.
	next := h.waitTrigger(src.ID)
	h.waitStatus(next.ID, state.RunCompleted)
	reqs = p.requests()
	if len(reqs) != 2 || reqs[1].Mode != events.ModeIncremental || reqs[1].Resumed || string(reqs[1].Checkpoint) != `{"pos":25}` || reqs[1].Attempt != 1 {
		t.Fatalf("second request %+v", reqs[1])
	}
}

// TestCheckpointsPublishedAfterTheirDocuments checks in the stream itself
// that every checkpoint is stored after every document it covers, with a
// pending window small enough that the publisher settles often.
func TestCheckpointsPublishedAfterTheirDocuments(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := newPager("pager")
	h.startWorker(Config{Connectors: []connector.Connector{p}, MaxPendingEvents: 8})
	src := h.source("pager", `{"n":300,"k":40}`)
	run := h.trigger(src.ID)
	r := h.waitStatus(run.ID, state.RunCompleted)
	if r.DocumentsEmitted != 300 {
		t.Fatalf("emitted %d", r.DocumentsEmitted)
	}

	evs := h.runEvents(src.ID, run.ID)
	seen := map[string]bool{}
	checkpoints := 0
	seqs := map[uint64]bool{}
	for _, e := range evs {
		if seqs[e.env.Seq] || e.env.Attempt != 1 {
			t.Fatalf("event seq %d attempt %d repeated or wrong", e.env.Seq, e.env.Attempt)
		}
		seqs[e.env.Seq] = true
		var pos int
		switch pl := e.env.Payload().(type) {
		case *events.DocumentUpserted:
			seen[pl.Document.ExternalID] = true
			continue
		case *events.Checkpoint:
			var cp position
			if err := json.Unmarshal(pl.Checkpoint, &cp); err != nil {
				t.Fatal(err)
			}
			pos = cp.Pos
			checkpoints++
		case *events.RunCompleted:
			pos = 300
		default:
			continue
		}
		for i := 0; i < pos; i++ {
			if !seen[fmt.Sprintf("doc-%d", i)] {
				t.Fatalf("checkpoint at pos %d (stream seq %d) stored before doc-%d", pos, e.seq, i)
			}
		}
	}
	if checkpoints != 7 || len(seen) != 300 {
		t.Fatalf("%d checkpoints, %d documents", checkpoints, len(seen))
	}
	for i := uint64(1); i <= uint64(len(evs)); i++ {
		if !seqs[i] {
			t.Fatalf("event seq %d missing from 1..%d", i, len(evs))
		}
	}
}

func TestCancelReachesBlockingConnector(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := newBlocker("blocker")
	h.startWorker(Config{Connectors: []connector.Connector{b}})
	src := h.source("blocker", `{}`)
	run := h.trigger(src.ID)
	receive(t, b.started, "the connector to start")
	h.waitStatus(run.ID, state.RunRunning)

	if _, err := h.m.CancelRun(h.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	cause := receive(t, b.ended, "the connector to see the cancel")
	if !errors.Is(cause, errCancelRequested) {
		t.Fatalf("connector's context ended with %v, want the cancel", cause)
	}
	r := h.waitStatus(run.ID, state.RunCancelled)
	// (r.CancelRequested is not checked: see the report, runs.go CancelRun
	// can find the run already cancelled by its worker and leave it false.)
	if r.DocumentsEmitted != 1 || r.FinishedAt == nil || r.Error != "cancelled by request" {
		t.Fatalf("cancelled run %+v", r)
	}
	eventually(t, waitTimeout, func() bool { return h.syncRequests() == 0 && !h.leaseHeld(src.ID) },
		"the request to be acked and the lease released")
	if n := len(ofType(h.runEvents(src.ID, run.ID), events.TypeRunCancelled)); n != 1 {
		t.Fatalf("%d run.cancelled events", n)
	}
	// The source is free and the worker goes on serving it.
	next := h.waitTrigger(src.ID)
	receive(t, b.started, "the next run to start")
	if _, err := h.m.CancelSource(h.ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(next.ID, state.RunCancelled)
}

func TestCancelledQueuedRunNeverStarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := newBlocker("blocker")
	h.register(b) // no worker yet: the run stays queued
	src := h.source("blocker", `{}`)
	run := h.trigger(src.ID)
	if _, err := h.m.CancelRun(h.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if h.syncRequests() != 1 {
		t.Fatal("the request should still wait in the work queue")
	}

	_, logs := h.startWorker(Config{Connectors: []connector.Connector{b}})
	eventually(t, waitTimeout, func() bool { return h.syncRequests() == 0 }, "the worker to take and drop the request")
	if logs.FilterMessage("dropping request of finished run").Len() != 1 {
		t.Fatalf("worker did not drop the request as a finished run's: %v", logs.All())
	}
	select {
	case <-b.started:
		t.Fatal("the connector ran a cancelled run")
	default:
	}
	if evs := h.runEvents(src.ID, run.ID); len(evs) != 0 {
		t.Fatalf("%d events published for the cancelled run", len(evs))
	}
	if r, _ := h.m.GetRun(h.ctx, run.ID); r.Status != state.RunCancelled || r.StartedAt != nil {
		t.Fatalf("run %+v", r)
	}
	if h.leaseHeld(src.ID) {
		t.Fatal("lease taken for a cancelled run")
	}
}

// TestLeaseHeldElsewhereBlocksRun: a source whose lease another worker holds
// (one that may still be running it) is not run until the lease is gone.
func TestLeaseHeldElsewhereBlocksRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := newPager("pager")
	_, logs := h.startWorker(Config{Connectors: []connector.Connector{p}})
	src := h.source("pager", `{"n":3,"k":2}`)

	// Refreshed long ago (so the worker retries soon), but its record lives
	// on in the bucket: the lease is held.
	old := time.Now().Add(-time.Minute).UTC()
	if _, err := h.m.Store().Leases.Put(h.ctx, src.ID, &state.Lease{
		RunID: "01OTHERRUN0000000000000000", WorkerID: "other-worker", Attempt: 1, AcquiredAt: old, RefreshedAt: old,
	}); err != nil {
		t.Fatal(err)
	}
	run := h.trigger(src.ID)
	eventually(t, waitTimeout, func() bool { return logs.FilterMessage(msgLeaseHeld).Len() >= 2 },
		"the worker to find the lease held twice")
	if n := len(p.requests()); n != 0 {
		t.Fatalf("connector ran %d times while the lease was held", n)
	}
	if r, _ := h.m.GetRun(h.ctx, run.ID); r.Status != state.RunQueued || r.Attempt != 0 {
		t.Fatalf("run while the lease is held: %+v", r)
	}
	if len(h.runEvents(src.ID, run.ID)) != 0 {
		t.Fatal("events published while the lease was held")
	}
	l, _, err := h.m.Store().Leases.Get(h.ctx, src.ID)
	if err != nil || l.WorkerID != "other-worker" {
		t.Fatalf("lease %+v, %v: the worker touched another's lease", l, err)
	}

	// The holder goes away: the run goes ahead on the next delivery.
	if err := h.m.Store().Leases.Delete(h.ctx, src.ID, 0); err != nil {
		t.Fatal(err)
	}
	r := h.waitStatus(run.ID, state.RunCompleted)
	if r.Attempt != 1 || r.DocumentsEmitted != 3 || len(p.requests()) != 1 {
		t.Fatalf("run %+v after %d syncs", r, len(p.requests()))
	}
}

// TestSecondWorkerDoesNotRunLeasedSource delivers a running run's request a
// second time (as JetStream does when an ack deadline passes); the other
// worker finds the lease held and does not start a second execution.
func TestSecondWorkerDoesNotRunLeasedSource(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b1, b2 := newBlocker("blocker"), newBlocker("blocker")
	w1, _ := h.startWorker(Config{ID: "w1", Connectors: []connector.Connector{b1}, Concurrency: 1})
	src := h.source("blocker", `{}`)
	run := h.trigger(src.ID)
	receive(t, b1.started, "worker 1 to start the run")
	if l, _, err := h.m.Store().Leases.Get(h.ctx, src.ID); err != nil || l.WorkerID != w1.ID() || l.RunID != run.ID || l.Attempt != 1 {
		t.Fatalf("lease %+v, %v", l, err)
	}
	_, logs2 := h.startWorker(Config{ID: "w2", Connectors: []connector.Connector{b2}, Concurrency: 1})

	// A second delivery of the same request.
	st, err := h.m.JetStream().Stream(h.ctx, events.StreamSync)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := st.GetLastMsgForSubject(h.ctx, events.SyncSubject("blocker"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.JetStream().Publish(h.ctx, orig.Subject, orig.Data); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, func() bool { return logs2.FilterMessage(msgLeaseHeld).Len() >= 1 },
		"worker 2 to find the lease held")
	select {
	case <-b2.started:
		t.Fatal("worker 2 ran a source whose lease worker 1 holds")
	default:
	}
	if r, _ := h.m.GetRun(h.ctx, run.ID); r.Attempt != 1 || r.WorkerID != w1.ID() {
		t.Fatalf("run %+v", r)
	}

	// Once the run ends, the duplicate is dropped, never run.
	if _, err := h.m.CancelRun(h.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(run.ID, state.RunCancelled)
	eventually(t, waitTimeout, func() bool { return h.syncRequests() == 0 }, "the duplicate request to be dropped")
	select {
	case <-b2.started:
		t.Fatal("worker 2 ran the duplicate")
	default:
	}
	if n := len(ofType(h.runEvents(src.ID, run.ID), events.TypeRunStarted)); n != 1 {
		t.Fatalf("%d run.started events, want 1", n)
	}
}

// TestStopHandsOffAndAnotherWorkerResumes stops a worker in the middle of a
// sync: the connector's next SaveCheckpoint stores the checkpoint and tells
// it to return; another worker resumes from that checkpoint.
func TestStopHandsOffAndAnotherWorkerResumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p1 := newPager("pager")
	p1.pauseAt = 5
	w1, _ := h.startWorker(Config{ID: "w1", Connectors: []connector.Connector{p1}})
	src := h.source("pager", `{"n":20,"k":5}`)
	run := h.trigger(src.ID)
	receive(t, p1.paused, "the first attempt to reach pos 5")

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		stopped <- w1.Stop(ctx)
	}()
	eventually(t, waitTimeout, func() bool {
		w1.mu.Lock()
		defer w1.mu.Unlock()
		for ar := range w1.active {
			if ar.runID == run.ID && ar.sc != nil && ar.sc.stopRequested.Load() {
				return true
			}
		}
		return false
	}, "the worker to ask the sync to stop")
	close(p1.resume) // the connector goes on to its next checkpoint (pos 10)
	if err := receive(t, stopped, "worker 1 to stop"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if h.leaseHeld(src.ID) {
		t.Fatal("stopped worker kept the lease")
	}
	// Start the next worker once the hand-off checkpoint is applied.
	eventually(t, waitTimeout, func() bool {
		cp := h.checkpoint(src.ID)
		return cp != nil && string(cp.Checkpoint) == `{"pos":10}`
	}, "the hand-off checkpoint")
	if r, _ := h.m.GetRun(h.ctx, run.ID); r.Status != state.RunRunning || r.Attempt != 1 {
		t.Fatalf("handed-off run %+v", r)
	}

	p2 := newPager("pager")
	w2, _ := h.startWorker(Config{ID: "w2", Connectors: []connector.Connector{p2}})
	r := h.waitStatus(run.ID, state.RunCompleted)

	reqs := p2.requests()
	if len(reqs) != 1 || !reqs[0].Resumed || reqs[0].Attempt != 2 || string(reqs[0].Checkpoint) != `{"pos":10}` {
		t.Fatalf("resumed request %+v", reqs)
	}
	if len(p1.requests()) != 1 {
		t.Fatalf("worker 1 ran %d times", len(p1.requests()))
	}
	if r.Attempt != 2 || r.WorkerID != w2.ID() || r.DocumentsEmitted != 20 {
		t.Fatalf("run %+v", r)
	}
	cp := h.checkpoint(src.ID)
	if cp == nil || string(cp.Checkpoint) != `{"pos":20}` || !cp.Final || cp.Attempt != 2 {
		t.Fatalf("final checkpoint %+v", cp)
	}
	var starts []*events.RunStarted
	for _, e := range ofType(h.runEvents(src.ID, run.ID), events.TypeRunStarted) {
		starts = append(starts, e.env.Payload().(*events.RunStarted))
	}
	if len(starts) != 2 || starts[0].Resumed || !starts[1].Resumed || starts[0].WorkerID != "w1" || starts[1].WorkerID != "w2" {
		t.Fatalf("run.started events %+v", starts)
	}
}

func TestConnectorFailuresFailTheRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := &failing{}
	h.startWorker(Config{Connectors: []connector.Connector{c}, Concurrency: 1})
	for _, tc := range []struct{ how, want string }{
		{"error", "source exploded"},
		{"fail", "reported failure"},
		{"panic", "connector panicked: kaboom"},
		{"ok", ""}, // the worker goes on after a panic
	} {
		src := h.source("failing", fmt.Sprintf(`{"how":%q}`, tc.how))
		run := h.trigger(src.ID)
		r := h.waitRun(run.ID, "the run to end", func(r *state.Run) bool { return r.Status.Terminal() })
		if tc.want == "" {
			if r.Status != state.RunCompleted {
				t.Errorf("%s: run %s (%s), want completed", tc.how, r.Status, r.Error)
			}
			continue
		}
		if r.Status != state.RunFailed || r.Error != tc.want {
			t.Errorf("%s: run %s with %q, want failed with %q", tc.how, r.Status, r.Error, tc.want)
		}
	}
}

// failing ends its sync as its config says.
type failing struct{}

func (failing) Manifest() connector.Manifest {
	return connector.Manifest{Name: "failing", Version: "1.0.0"}
}

func (failing) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg struct{ How string }
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	switch cfg.How {
	case "error":
		return errors.New("source exploded")
	case "fail":
		if err := sc.Fail(ctx, errors.New("reported failure")); err != nil {
			return err
		}
		if err := sc.Emit(ctx, connector.Document{ExternalID: "after"}); !errors.Is(err, connector.ErrRunFinished) {
			return fmt.Errorf("emit after Fail: %w", err)
		}
		return nil
	case "panic":
		panic("kaboom")
	}
	return nil
}

// TestHandOffKeepsScannedCount: a handed-off attempt's scanned count is not
// lost from the run's counters, even when it never reported progress.
func TestHandOffKeepsScannedCount(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p1 := newPager("pager")
	p1.pauseAt = 5
	w1, _ := h.startWorker(Config{ID: "w1", Connectors: []connector.Connector{p1}, ProgressInterval: time.Hour})
	src := h.source("pager", `{"n":20,"k":5}`)
	run := h.trigger(src.ID)
	receive(t, p1.paused, "the first attempt to pause")
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		stopped <- w1.Stop(ctx)
	}()
	eventually(t, waitTimeout, func() bool {
		w1.mu.Lock()
		defer w1.mu.Unlock()
		for ar := range w1.active {
			if ar.runID == run.ID && ar.sc != nil && ar.sc.stopRequested.Load() {
				return true
			}
		}
		return false
	}, "the stop request")
	close(p1.resume)
	if err := receive(t, stopped, "worker 1 to stop"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	h.startWorker(Config{ID: "w2", Connectors: []connector.Connector{newPager("pager")}})
	r := h.waitStatus(run.ID, state.RunCompleted)
	if r.DocumentsScanned != 20 {
		t.Fatalf("scanned %d, want 20 (emitted %d)", r.DocumentsScanned, r.DocumentsEmitted)
	}
}

// TestResumeDoesNotWaitForTheManager hands a run off while the manager's
// applier is down (it lags behind the stream): the next attempt still resumes
// from the hand-off checkpoint, with the next attempt number, because the
// worker reads them from the events stream rather than the KV records.
func TestResumeDoesNotWaitForTheManager(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p1 := newPager("pager")
	p1.pauseAt = 5
	w1, _ := h.startWorker(Config{ID: "w1", Connectors: []connector.Connector{p1}})
	src := h.source("pager", `{"n":20,"k":5}`)
	run := h.trigger(src.ID)
	receive(t, p1.paused, "the first attempt to pause")
	eventually(t, waitTimeout, func() bool {
		cp := h.checkpoint(src.ID)
		r, _ := h.m.GetRun(h.ctx, run.ID)
		return cp != nil && string(cp.Checkpoint) == `{"pos":5}` && r.Attempt == 1
	}, "pos 5 and attempt 1 to be applied")
	if err := h.m.Stop(h.ctx); err != nil { // the applier falls behind from here
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		stopped <- w1.Stop(ctx)
	}()
	eventually(t, waitTimeout, func() bool {
		w1.mu.Lock()
		defer w1.mu.Unlock()
		for ar := range w1.active {
			if ar.runID == run.ID && ar.sc != nil && ar.sc.stopRequested.Load() {
				return true
			}
		}
		return false
	}, "the stop request")
	close(p1.resume)
	if err := receive(t, stopped, "worker 1 to stop"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if cp := h.checkpoint(src.ID); string(cp.Checkpoint) != `{"pos":5}` {
		t.Fatalf("stopped manager applied %s", cp.Checkpoint)
	}

	p2 := newPager("pager")
	h.startWorker(Config{ID: "w2", Connectors: []connector.Connector{p2}})
	eventually(t, waitTimeout, func() bool { return len(p2.requests()) == 1 }, "worker 2 to resume")
	if req := p2.requests()[0]; string(req.Checkpoint) != `{"pos":10}` || !req.Resumed || req.Attempt != 2 {
		t.Fatalf("resumed from %s (resumed %v, attempt %d); the hand-off saved {\"pos\":10} in attempt 1", req.Checkpoint, req.Resumed, req.Attempt)
	}
	// Nothing the hand-off checkpoint covered was emitted again.
	eventually(t, waitTimeout, func() bool {
		return len(ofType(h.runEvents(src.ID, run.ID), events.TypeRunCompleted)) == 1
	}, "attempt 2 to complete")
	if n := len(ofType(h.runEvents(src.ID, run.ID), events.TypeDocumentUpserted)); n != 20 {
		t.Fatalf("%d documents emitted over both attempts, want 20", n)
	}
}

// actionless declares an action it cannot run.
type actionless struct{}

func (actionless) Sync(context.Context, *connector.SyncRequest, connector.SyncContext) error {
	return nil
}

func (actionless) Manifest() connector.Manifest {
	return connector.Manifest{Name: "actionless", Version: "1.0.0", Actions: []connector.ActionDefinition{{Name: "go"}}}
}

func TestDeclaredActionsNeedAnExecutor(t *testing.T) {
	if _, err := New(nil, Config{Connectors: []connector.Connector{actionless{}}}); err == nil || !strings.Contains(err.Error(), "ActionExecutor") {
		t.Fatalf("got %v", err)
	}
}
