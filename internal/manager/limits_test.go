package manager

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

var otherManifest = connector.Manifest{Name: "other", Version: "1.0.0"}

func (e *env) sourceOf(conn, name string) *state.Source {
	e.t.Helper()
	cfg := json.RawMessage(`{}`)
	if conn == fakeManifest.Name {
		cfg = json.RawMessage(`{"root":"/data"}`)
	}
	src, err := e.m.CreateSource(e.ctx, CreateSource{Name: name, Connector: conn, Config: cfg})
	if err != nil {
		e.t.Fatal(err)
	}
	return src
}

// finish completes a run as its worker would.
func (e *env) finish(run *state.Run) {
	e.t.Helper()
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w"})
	p.pub(&events.RunCompleted{})
	e.waitRun(run.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
}

func (e *env) waitDispatched(run *state.Run) {
	e.t.Helper()
	e.waitRun(run.ID, "dispatched", func(r *state.Run) bool { return r.Dispatched && r.QueueReason == "" })
}

func (e *env) assertWaiting(run *state.Run, reason string) {
	e.t.Helper()
	r := e.run(run.ID)
	if r.Dispatched || r.Status != state.RunQueued || !strings.Contains(r.QueueReason, reason) {
		e.t.Fatalf("run %s: dispatched %v status %s reason %q, want waiting (%s)", r.ID, r.Dispatched, r.Status, r.QueueReason, reason)
	}
}

func TestGlobalLimitQueuesRunsInOrder(t *testing.T) {
	e := newEnv(t, Config{Limits: Limits{MaxActiveRuns: 1}})
	e.register(fakeManifest)
	var runs []*state.Run
	for _, name := range []string{"a", "b", "c"} {
		runs = append(runs, e.trigger(e.sourceOf(fakeManifest.Name, name).ID))
	}
	e.waitDispatched(runs[0])
	e.assertWaiting(runs[1], "1 of 1 runs are active")
	e.assertWaiting(runs[2], "") // behind b
	if n := e.syncRequests(); n != 1 {
		t.Fatalf("%d sync requests, want 1", n)
	}

	// A new manager (after a restart) knows who waits, and in what order.
	stopCtx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	if err := e.m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	e.m = e.startManager(Config{Limits: Limits{MaxActiveRuns: 1}})

	e.finish(runs[0])
	e.waitDispatched(runs[1])
	e.assertWaiting(runs[2], "1 of 1 runs are active")
	e.finish(runs[1])
	e.waitDispatched(runs[2])
	if n := e.syncRequests(); n != 3 {
		t.Fatalf("%d sync requests, want 3", n)
	}
}

func TestConnectorLimit(t *testing.T) {
	e := newEnv(t, Config{Limits: Limits{MaxActiveRuns: 3, PerConnector: map[string]int{"fake": 1}}})
	e.register(fakeManifest)
	e.register(otherManifest)
	a := e.trigger(e.sourceOf("fake", "a").ID)
	b := e.trigger(e.sourceOf("fake", "b").ID)
	c := e.trigger(e.sourceOf("other", "c").ID)
	e.waitDispatched(a)
	e.assertWaiting(b, "runs of connector fake")
	// b waits for its connector only: c, behind it, is not held back.
	e.waitDispatched(c)

	// Cancelled while waiting: never dispatched, and its slot goes to no one.
	if _, err := e.m.CancelRun(e.ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	d := e.trigger(e.sourceOf("fake", "d").ID)
	e.assertWaiting(d, "runs of connector fake")
	e.finish(a)
	e.waitDispatched(d)
	if r := e.run(b.ID); r.Status != state.RunCancelled || r.Dispatched {
		t.Fatalf("cancelled waiting run: %s dispatched %v", r.Status, r.Dispatched)
	}
	if n := e.syncRequests(); n != 3 {
		t.Fatalf("%d sync requests, want 3 (a, c, d)", n)
	}
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{MaxActiveRuns: -1}, {PerConnector: map[string]int{"x": 0}}} {
		if _, err := New(nil, Config{Limits: l}); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}
