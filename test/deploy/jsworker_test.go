package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
	"github.com/tributary-sync/tributary/test/harness"
)

// TestLeastPrivilegeJSWorker runs the JavaScript connector of
// examples/js-connector (the official NATS client for Node.js, not the Go
// worker) as the production config's worker user: it binds, registers,
// syncs with content, answers a connection test and is cancelled, without
// one permission violation. A worker in another language needs no more than
// the worker user grants.
func TestLeastPrivilegeJSWorker(t *testing.T) {
	node, script := harness.InstallJSConnector(t)
	ns, viol := startNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	go func() {
		select {
		case <-viol.first:
			cancel()
		case <-ctx.Done():
		}
	}()
	d := &deployment{t: t, viol: viol, ctx: ctx}
	d.mc = connect(t, ns, "manager", "TRIBUTARY_MANAGER_PASSWORD")
	m, err := manager.New(d.mc.nc, manager.Config{HeartbeatTimeout: 3 * time.Second,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("manager")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		d.fatal("manager start as user manager: %v", err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	d.m = m

	// The JS worker, as user worker (NATS_USER / NATS_PASSWORD).
	t.Setenv("NATS_USER", "worker")
	t.Setenv("NATS_PASSWORD", os.Getenv("TRIBUTARY_WORKER_PASSWORD"))
	u, err := url.Parse(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	w := harness.Start(t, "js-worker", node, script, "--nats-url", u.String(), "--shutdown-grace", "5s")
	w.WaitLog("Tributary JS worker ready", time.Minute)

	notes := make([]map[string]any, 60)
	for i := range notes {
		notes[i] = map[string]any{"id": fmt.Sprintf("n%02d", i), "text": fmt.Sprintf("note %d", i%40)} // some shared content
	}
	cfg := func(pace int) json.RawMessage {
		b, err := json.Marshal(map[string]any{"notes": notes, "pace_ms": pace, "checkpoint_every": 20})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	src, err := m.CreateSource(ctx, manager.CreateSource{Name: "js", Connector: "js-notes", Config: cfg(0),
		Credentials: json.RawMessage(`{"token":"s3cret"}`)})
	if err != nil {
		d.fatal("create source: %v", err)
	}
	for _, mode := range []string{"", "incremental"} {
		run, err := m.TriggerSync(ctx, src.ID, events.SyncMode(mode), manager.TriggerManual)
		if err != nil {
			d.fatal("trigger sync: %v", err)
		}
		run = d.waitRun(run.ID, func(r *state.Run) bool { return r.Status.Terminal() })
		if run.Status != state.RunCompleted || run.DocumentsScanned != 60 {
			d.fatal("%s run: %s, %d scanned, error %q", mode, run.Status, run.DocumentsScanned, run.Error)
		}
	}
	if res, err := m.TestConnection(ctx, src.ID); err != nil || !res.OK {
		d.fatal("test connection: %+v, %v", res, err)
	}

	slow, err := m.CreateSource(ctx, manager.CreateSource{Name: "slow", Connector: "js-notes", Config: cfg(200)})
	if err != nil {
		d.fatal("create source: %v", err)
	}
	run, err := m.TriggerSync(ctx, slow.ID, "", manager.TriggerManual)
	if err != nil {
		d.fatal("trigger sync: %v", err)
	}
	d.waitRun(run.ID, func(r *state.Run) bool { return r.Status == state.RunRunning })
	if _, err := m.CancelRun(ctx, run.ID); err != nil {
		d.fatal("cancel run: %v", err)
	}
	if run = d.waitRun(run.ID, func(r *state.Run) bool { return r.Status.Terminal() }); run.Status != state.RunCancelled {
		d.fatal("run %s: %s (%s), want cancelled", run.ID, run.Status, run.Error)
	}

	w.Stop(syscall.SIGTERM, 20*time.Second)
	w.WaitLog("worker stopped", time.Second)
	if v := viol.snapshot(); len(v) > 0 {
		d.fatal("permission violations")
	}
	if strings.Contains(w.Log(), `"level":"error"`) {
		d.fatal("the JS worker logged errors:\n%s", w.Log())
	}
}
