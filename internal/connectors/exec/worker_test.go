package exec_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tributary-sync/tributary/internal/connectors/exec"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

const waitTimeout = 20 * time.Second

// system is an embedded NATS, a manager and a worker hosting conns.
type system struct {
	t    *testing.T
	ctx  context.Context
	m    *manager.Manager
	w    *worker.Worker
	logs *observer.ObservedLogs // the worker's
}

func startSystem(t *testing.T, conns ...connector.Connector) *system {
	t.Helper()
	ctx := context.Background()
	n := testutil.StartNATS(t)
	nc, _ := n.Connect(t)
	m, err := manager.New(nc, manager.Config{Logger: zaptest.NewLogger(t).Named("manager")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(sctx)
	})
	core, logs := observer.New(zapcore.DebugLevel)
	wnc, _ := n.Connect(t)
	w, err := worker.New(wnc, worker.Config{
		ID: "w1", Connectors: conns, HeartbeatTimeout: 2 * time.Second, ProgressInterval: 20 * time.Millisecond,
		Logger: zap.New(zapcore.NewTee(zaptest.NewLogger(t).Core(), core)).Named("worker"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	})
	return &system{t: t, ctx: ctx, m: m, w: w, logs: logs}
}

func (s *system) sync(conn, config string) *state.Run {
	s.t.Helper()
	src, err := s.m.CreateSource(s.ctx, manager.CreateSource{Name: "src", Connector: conn, Config: json.RawMessage(config)})
	if err != nil {
		s.t.Fatalf("create source: %v", err)
	}
	run, err := s.m.TriggerSync(s.ctx, src.ID, "", manager.TriggerManual)
	if err != nil {
		s.t.Fatalf("trigger: %v", err)
	}
	return run
}

func (s *system) wait(runID, what string, cond func(*state.Run) bool) *state.Run {
	s.t.Helper()
	var r *state.Run
	testutil.Eventually(s.t, waitTimeout, func() bool {
		var err error
		r, err = s.m.GetRun(s.ctx, runID)
		return err == nil && cond(r)
	}, what)
	return r
}

// waitEnd waits for the run to end, however it ends.
func (s *system) waitEnd(runID string) *state.Run {
	s.t.Helper()
	return s.wait(runID, "the run to end", func(r *state.Run) bool { return r.Status.Terminal() })
}

func TestWorkerRunsPythonExample(t *testing.T) {
	s := startSystem(t, loadHello(t))
	run := s.sync("hello", `{"count":25,"checkpoint_every":10}`)
	r := s.waitEnd(run.ID)
	if r.Status != state.RunCompleted {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if r.DocumentsEmitted != 25 || r.DocumentsScanned != 25 || r.Total != 25 || r.DocumentsErrors != 0 {
		t.Fatalf("counters %+v total %d", r.Counters, r.Total)
	}
	page, err := s.m.ListDocuments(s.ctx, run.SourceID, manager.DocumentFilter{Page: 1, Size: 100})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 25 || page.Items[7].ExternalID != "hello-15" || page.Items[7].Title != "Hello 15" {
		t.Fatalf("documents: %d, [7] %+v", page.Total, page.Items[7])
	}
	obj, err := s.m.OpenContent(s.ctx, run.SourceID, state.DocID("hello-15"), false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(obj)
	_ = obj.Close()
	if err != nil || string(b) != "Hello, world number 15!\n" {
		t.Fatalf("content %q, %v", b, err)
	}
	cp, err := s.m.GetCheckpoint(s.ctx, run.SourceID)
	if err != nil || string(cp.Checkpoint) != `{"next":25}` {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	// The connector's log message reached the worker's logger, with the
	// run's fields.
	entries := s.logs.FilterMessage("hello starting").All()
	if len(entries) != 1 {
		t.Fatalf("%d 'hello starting' log entries", len(entries))
	}
	f := entries[0].ContextMap()
	if f["source_id"] != run.SourceID || f["run_id"] != run.ID || f["worker_id"] != "w1" || f["connector"] != "hello" {
		t.Fatalf("log fields %v", f)
	}
}

func TestWorkerFailsRun(t *testing.T) {
	die := child(t, "die", func(sp *exec.Spec) { sp.Name = "die" })
	garbage := child(t, "garbage", func(sp *exec.Spec) { sp.Name = "garbage" })
	fail := child(t, "fail", func(sp *exec.Spec) { sp.Name = "fail" })
	s := startSystem(t, die, garbage, fail)
	for conn, wants := range map[string][]string{
		"die":     {"exec connector die: exited with status 3 before done or fail; last stderr lines:", "\n  stderr line 29"},
		"garbage": {"exec connector garbage: protocol error on stdout line 2: not a JSON object", "about to print garbage"},
		"fail":    {"source unreachable"},
	} {
		r := s.waitEnd(s.sync(conn, `{}`).ID)
		if r.Status != state.RunFailed {
			t.Fatalf("%s: run %s", conn, r.Status)
		}
		for _, w := range wants {
			if !strings.Contains(r.Error, w) {
				t.Errorf("%s: run error %q lacks %q", conn, r.Error, w)
			}
		}
	}
}

func TestWorkerCancelsRun(t *testing.T) {
	s := startSystem(t, child(t, "ignoreterm", func(sp *exec.Spec) {
		sp.Name = "stubborn"
		sp.Grace = exec.Duration(500 * time.Millisecond)
	}))
	run := s.sync("stubborn", `{}`)
	s.wait(run.ID, "running with a document", func(r *state.Run) bool {
		return r.Status == state.RunRunning && r.DocumentsEmitted == 1
	})
	if _, err := s.m.CancelRun(s.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	r := s.waitEnd(run.ID)
	if r.Status != state.RunCancelled {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
	if n := s.logs.FilterMessageSnippet("still running after SIGTERM").Len(); n != 1 {
		t.Fatalf("%d SIGKILL log lines", n)
	}
	doc, err := s.m.GetDocument(s.ctx, run.SourceID, state.DocID("pid"))
	if err != nil {
		t.Fatal(err)
	}
	if pid := int(doc.Attributes["pid"].(float64)); alive(pid) {
		t.Fatalf("child %d still runs", pid)
	}
}

// A worker that shuts down hands an exec sync back at its next checkpoint,
// stopping the child.
func TestWorkerStopHandsBack(t *testing.T) {
	s := startSystem(t, child(t, "checkpoints", func(sp *exec.Spec) { sp.Name = "cps" }))
	run := s.sync("cps", `{}`)
	s.wait(run.ID, "running with documents", func(r *state.Run) bool {
		return r.Status == state.RunRunning && r.DocumentsEmitted > 2
	})
	ctx, cancel := context.WithTimeout(s.ctx, waitTimeout)
	defer cancel()
	if err := s.w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.logs.FilterMessage("sync handed back for another worker").Len(); n != 1 {
		t.Fatalf("%d hand-off log lines", n)
	}
	r, err := s.m.GetRun(s.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status.Terminal() {
		t.Fatalf("run %s: %s", r.Status, r.Error)
	}
}
