package worker

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

const waitTimeout = 20 * time.Second

// one emits one document per sync.
type one struct{}

func (one) Manifest() connector.Manifest {
	return connector.Manifest{Name: "one", Version: "1.0.0",
		ConfigSchema: json.RawMessage(`{"type":"object","additionalProperties":false}`)}
}

func (one) Sync(ctx context.Context, _ *connector.SyncRequest, sc connector.SyncContext) error {
	sc.IncrementScanned(1)
	return sc.Emit(ctx, connector.Document{ExternalID: "only", Title: "The only one"})
}

// The command line a worker binary gets from Main: it connects, hosts its
// connector, runs a sync and stops cleanly when its context ends.
func TestCommandRunsASync(t *testing.T) {
	n := testutil.StartNATS(t)
	mnc, _ := n.Connect(t)
	m, err := manager.New(mnc, manager.Config{Logger: zaptest.NewLogger(t), ContentGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(sctx)
	})

	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- command(wctx, "worker", []string{"--nats-url", n.Server.ClientURL(), "--id", "pkg-worker-test", "--log-level", "error"},
			io.Discard, []connector.Connector{one{}})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the worker stopped with %v", err)
		}
	})

	// The worker registers its connector; then the manager accepts sources of it.
	testutil.Eventually(t, waitTimeout, func() bool {
		_, err := m.Connector(ctx, "one")
		return err == nil
	}, "the worker to register its connector")
	src, err := m.CreateSource(ctx, manager.CreateSource{Name: "s", Connector: "one"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := m.TriggerSync(ctx, src.ID, "", manager.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	var got *state.Run
	testutil.Eventually(t, waitTimeout, func() bool {
		got, err = m.GetRun(ctx, run.ID)
		return err == nil && got.Status.Terminal()
	}, "the run to end")
	if got.Status != state.RunCompleted || got.DocumentsEmitted != 1 || got.WorkerID != "pkg-worker-test" {
		t.Fatalf("run = %s by %q, %d emitted (%s); want completed by pkg-worker-test, 1 emitted", got.Status, got.WorkerID, got.DocumentsEmitted, got.Error)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the worker stopped with %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the worker did not stop")
	}
	done <- nil // for the cleanup
}

func TestCommandErrors(t *testing.T) {
	ctx := context.Background()
	conns := []connector.Connector{one{}}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--concurrency", "many"}, "invalid value"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--exec-connectors", "/nonexistent/connectors.json"}, "--exec-connectors"},
		// Nothing listens on port 1.
		{[]string{"--nats-url", "nats://127.0.0.1:1"}, "connect to NATS at nats://127.0.0.1:1"},
	} {
		err := command(ctx, "worker", tc.args, io.Discard, conns)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if err := command(ctx, "worker", []string{"-h"}, io.Discard, conns); err != nil {
		t.Errorf("-h: %v", err)
	}
}

func TestRunRefusesAnInvalidManifest(t *testing.T) {
	n := testutil.StartNATS(t)
	err := Run(context.Background(), Config{NATSURL: n.Server.ClientURL()}, bad{})
	if err == nil || !strings.Contains(err.Error(), "manifest") {
		t.Fatalf("got %v, want an error about the manifest", err)
	}
}

type bad struct{ one }

func (bad) Manifest() connector.Manifest {
	return connector.Manifest{Name: "no spaces allowed", Version: "1"}
}
