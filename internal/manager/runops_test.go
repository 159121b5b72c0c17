package manager

import (
	"encoding/json"
	"errors"
	"sort"
	"testing"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

func TestCheckpointInspectSetReset(t *testing.T) {
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("cp")
	var nf *NotFoundError
	if _, err := e.m.GetCheckpoint(e.ctx, src.ID); !errors.As(err, &nf) {
		t.Fatalf("no checkpoint yet: %v", err)
	}

	// While a run is active: refused, nothing changes.
	run := e.trigger(src.ID)
	var ce *ConflictError
	if _, err := e.m.SetCheckpoint(e.ctx, src.ID, json.RawMessage(`{"pos":1}`)); !errors.As(err, &ce) || ce.Code != CodeRunActive {
		t.Fatalf("set while active: %v", err)
	}
	if err := e.m.ResetCheckpoint(e.ctx, src.ID); !errors.As(err, &ce) {
		t.Fatalf("reset while active: %v", err)
	}
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w"})
	p.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":10}`)})
	e.waitRun(run.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	e.waitApplied(e.m)

	var ve *ValidationError
	if _, err := e.m.SetCheckpoint(e.ctx, src.ID, json.RawMessage(`null`)); !errors.As(err, &ve) {
		t.Fatalf("null checkpoint: %v", err)
	}
	cp, err := e.m.SetCheckpoint(e.ctx, src.ID, json.RawMessage(`{ "pos": 3 }`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.m.GetCheckpoint(e.ctx, src.ID)
	if err != nil || string(got.Checkpoint) != `{"pos":3}` || got.RunID != CheckpointSetBy || string(cp.Checkpoint) != `{"pos":3}` {
		t.Fatalf("after set: %+v, %v", got, err)
	}

	// The next run stores its own checkpoint over the operator's.
	run2, err := e.m.TriggerSync(e.ctx, src.ID, "", TriggerManual)
	if err != nil || run2.Mode != events.ModeIncremental {
		t.Fatalf("after a set checkpoint: %v mode %v", err, run2)
	}
	p = e.attempt(run2, 1)
	p.pub(&events.RunStarted{WorkerID: "w"})
	p.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":4}`)})
	e.waitRun(run2.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	if got, _ := e.checkpoint(src.ID); got == nil || string(got.Checkpoint) != `{"pos":4}` {
		t.Fatalf("a run after an operator's checkpoint stored %+v", got)
	}

	if err := e.m.ResetCheckpoint(e.ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.GetCheckpoint(e.ctx, src.ID); !errors.As(err, &nf) {
		t.Fatalf("after reset: %v", err)
	}
	run3 := e.trigger(src.ID)
	if run3.Mode != events.ModeFull {
		t.Fatalf("after a reset the next sync is %s, want full", run3.Mode)
	}

	// Each change is an event: set {"pos":3} over {"pos":10}, reset {"pos":4}.
	msgs := e.fetchAll(events.SubjectEventsPrefix + src.ID + ".*." + string(events.TypeCheckpointChanged))
	if len(msgs) != 2 {
		t.Fatalf("%d checkpoint.changed events, want 2", len(msgs))
	}
	var changes []events.CheckpointChanged
	for _, m := range msgs {
		env, err := events.Decode(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, *env.Payload().(*events.CheckpointChanged))
	}
	if string(changes[0].Previous) != `{"pos":10}` || string(changes[0].Checkpoint) != `{"pos":3}` ||
		string(changes[1].Previous) != `{"pos":4}` || string(changes[1].Checkpoint) != `null` {
		t.Fatalf("events: %s->%s, %s->%s", changes[0].Previous, changes[0].Checkpoint, changes[1].Previous, changes[1].Checkpoint)
	}
}

func TestRetryContinuesFromTheFailedRunsCheckpoint(t *testing.T) {
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("retry")

	first := e.trigger(src.ID)
	p := e.attempt(first, 1)
	p.pub(&events.RunStarted{WorkerID: "w"})
	p.pub(&events.DocumentUpserted{Document: doc("d0")})
	p.pub(&events.RunCompleted{})
	e.waitRun(first.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })

	// A full run that reads d1 and d2, saves a checkpoint, loses its
	// worker, and fails on the second attempt.
	failed, err := e.m.TriggerSync(e.ctx, src.ID, events.ModeFull, TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	p = e.attempt(failed, 1)
	p.pub(&events.RunStarted{WorkerID: "w1"})
	p.pub(&events.DocumentUpserted{Document: doc("d1")})
	p.pub(&events.DocumentUpserted{Document: doc("d2")})
	p.pub(&events.Progress{Scanned: 2, Total: 4})
	p.pub(&events.Checkpoint{Checkpoint: json.RawMessage(`{"next":3}`)})
	p2 := e.attempt(failed, 2)
	p2.pub(&events.RunStarted{WorkerID: "w2", Resumed: true})
	p2.pub(&events.RunFailed{Error: "source went away"})
	got := e.waitRun(failed.ID, "failed", func(r *state.Run) bool { return r.Status == state.RunFailed })
	if got.Total != 4 || len(got.Attempts) != 2 ||
		got.Attempts[0].WorkerID != "w1" || got.Attempts[0].Outcome != "interrupted" || got.Attempts[0].EndedAt == nil ||
		got.Attempts[1].WorkerID != "w2" || got.Attempts[1].Outcome != "failed" || got.Attempts[1].Error != "source went away" {
		t.Fatalf("failed run: total %d attempts %+v", got.Total, got.Attempts)
	}

	var ce *ConflictError
	if _, err := e.m.RetryRun(e.ctx, first.ID); !errors.As(err, &ce) || ce.Code != CodeNotRetryable {
		t.Fatalf("retry of a completed run: %v", err)
	}
	retry, err := e.m.RetryRun(e.ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retry.Trigger != TriggerRetry || retry.RetryOf != failed.ID || retry.Mode != events.ModeFull ||
		len(retry.Continues) != 1 || retry.Continues[0] != failed.ID {
		t.Fatalf("retry run: %+v", retry)
	}
	st, err := e.js.Stream(e.ctx, events.StreamSync)
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.GetLastMsgForSubject(e.ctx, events.SyncSubject(fakeManifest.Name))
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.Decode(last.Data)
	if err != nil {
		t.Fatal(err)
	}
	if req := env.Payload().(*events.SyncRequested); req.ResumeOf != failed.ID {
		t.Fatalf("retry request resume_of %q", req.ResumeOf)
	}

	// The retry reads the rest (d3) and completes: the sweep keeps what
	// the failed run read and deletes only d0.
	p = e.attempt(retry, 1)
	p.pub(&events.RunStarted{WorkerID: "w3", Resumed: true})
	p.pub(&events.DocumentUpserted{Document: doc("d3")})
	p.pub(&events.RunCompleted{})
	e.waitRun(retry.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	var ids []string
	if err := e.m.eachCatalogDoc(e.ctx, src.ID, func(d *state.CatalogDoc) error {
		ids = append(ids, d.ExternalID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	if len(ids) != 3 || ids[0] != "d1" || ids[2] != "d3" {
		t.Fatalf("catalog after the retry: %v, want d1 d2 d3", ids)
	}

	// A retry once another run stored a checkpoint starts afresh.
	again, err := e.m.RetryRun(e.ctx, failed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Continues) != 0 {
		t.Fatalf("retry after a later run continues %v", again.Continues)
	}
}
