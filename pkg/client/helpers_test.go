package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/connectors/filesystem"
	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// flaky is a test connector whose documents fail to read: it emits
// "errors" document errors and "count" documents.
type flaky struct{}

func (flaky) Manifest() connector.Manifest {
	return connector.Manifest{Name: "flaky", Version: "1.0.0",
		ConfigSchema: []byte(`{"type":"object","properties":{"count":{"type":"integer"},"errors":{"type":"integer"}},"additionalProperties":false}`)}
}

func (flaky) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg struct{ Count, Errors int }
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	for i := range cfg.Errors {
		if err := sc.EmitError(ctx, fmt.Sprintf("bad-%d", i), errors.New("unreadable")); err != nil {
			return err
		}
	}
	for i := range cfg.Count {
		if err := sc.Emit(ctx, connector.Document{ExternalID: fmt.Sprintf("ok-%d", i), Title: "ok"}); err != nil {
			return err
		}
	}
	return sc.Complete(ctx, nil)
}

// server is a whole manager in one process: an embedded NATS reached in
// process, the manager, a worker with the filesystem, synthetic and flaky
// connectors, and the HTTP API on a loopback port.
type server struct {
	URL  string
	stop []func()
}

func (s *server) Close() {
	for i := len(s.stop) - 1; i >= 0; i-- {
		s.stop[i]()
	}
}

// startServer starts a server with its store in dir; examples use it as
// tests do.
func startServer(dir string, log *zap.Logger, opts ...api.Option) (*server, error) {
	s := &server{}
	ns, err := bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: dir})
	if err != nil {
		return nil, err
	}
	s.stop = append(s.stop, func() { ns.Shutdown(); ns.WaitForShutdown() })
	fail := func(err error) (*server, error) { s.Close(); return nil, err }
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return fail(err)
	}
	s.stop = append(s.stop, nc.Close)
	m, err := manager.New(nc, manager.Config{Logger: log})
	if err != nil {
		return fail(err)
	}
	if err := m.Start(context.Background()); err != nil {
		return fail(err)
	}
	s.stop = append(s.stop, func() { _ = m.Stop(context.Background()) })
	wnc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		return fail(err)
	}
	s.stop = append(s.stop, wnc.Close)
	w, err := worker.New(wnc, worker.Config{Logger: log, HeartbeatTimeout: 2 * time.Second,
		Connectors: []connector.Connector{filesystem.New(), synthetic.New(), flaky{}}})
	if err != nil {
		return fail(err)
	}
	if err := w.Start(context.Background()); err != nil {
		return fail(err)
	}
	s.stop = append(s.stop, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	srv := httptest.NewServer(api.New(m, log, opts...))
	s.stop = append(s.stop, srv.Close)
	s.URL = srv.URL
	return s, nil
}

// start starts a server for one test.
func start(t *testing.T, opts ...api.Option) *server {
	t.Helper()
	s, err := startServer(t.TempDir(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// newClient returns a client of the server with cfg's other fields.
func newClient(t *testing.T, url string, cfg client.Config) *client.Client {
	t.Helper()
	cfg.BaseURL = url
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitRun polls the run until cond holds.
func waitRun(t *testing.T, c *client.Client, id string, what string, cond func(*client.Run) bool) *client.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		run, err := c.GetRun(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: waited 20s for %s; it is %s", id, what, run.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func terminal(r *client.Run) bool { return r.Status.Terminal() }

// mustAPIError asserts err is an *client.Error with the status and code.
// It returns the error as a value, which is not an error to check.
func mustAPIError(t *testing.T, err error, status int, code string) client.Error {
	t.Helper()
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want *client.Error %d %s, got %T %v", status, code, err, err)
	}
	if apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("want %d %s, got %d %q: %v", status, code, apiErr.Status, apiErr.Code, apiErr)
	}
	if apiErr.Message == "" && len(apiErr.Detail) == 0 {
		t.Fatalf("error without message or detail: %#v", apiErr)
	}
	return *apiErr
}
