package main

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// heartbeatTimeout is every worker's and the manager's: the 2 s, the
// shortest allowed, which the resume scenario measures.
const heartbeatTimeout = 2 * time.Second

// env is what every scenario runs against: one embedded server (file
// storage, default lazy fsync, as the manager runs it), the manager, its
// HTTP API, and a client of the API.
type env struct {
	dir string
	ns  *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	m   *manager.Manager
	srv *httptest.Server
	c   *client.Client
	log *zap.Logger
	out io.Writer
	p   Profile
}

func newLogger(verbose bool) *zap.Logger {
	if !verbose {
		return zap.NewNop()
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zapcore.WarnLevel)
	l, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return l
}

func startEnv(ctx context.Context, p Profile, out io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("", "tributary-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, log: newLogger(p.Verbose), out: out, p: p}
	// A loopback listener: worker processes connect to it.
	e.ns, err = bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: dir, Listen: "127.0.0.1:-1", Logger: e.log})
	if err != nil {
		e.close()
		return nil, err
	}
	if e.nc, err = e.connect("bench"); err != nil {
		e.close()
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc, jetstream.WithPublishAsyncMaxPending(baselinePending)); err != nil {
		e.close()
		return nil, err
	}
	mnc, err := e.connect("tributary-manager")
	if err != nil {
		e.close()
		return nil, err
	}
	e.m, err = manager.New(mnc, manager.Config{HeartbeatTimeout: heartbeatTimeout, ContentGCInterval: -1, Logger: e.log})
	if err != nil {
		e.close()
		return nil, err
	}
	if err := e.m.Start(ctx); err != nil {
		e.m = nil
		e.close()
		return nil, err
	}
	e.srv = httptest.NewServer(api.New(e.m, e.log))
	if e.c, err = client.New(client.Config{BaseURL: e.srv.URL}); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// connect opens an in-process connection to the server.
func (e *env) connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.Name(name), nats.InProcessServer(e.ns), nats.MaxReconnects(-1))
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
	}
	if e.m != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = e.m.Stop(ctx)
		cancel()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
	}
	if !e.p.Keep {
		_ = os.RemoveAll(e.dir)
	} else {
		fmt.Fprintln(e.out, "store kept in", e.dir)
	}
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.out, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// startWorker starts an in-process worker over a connection of its own;
// stop stops it.
func (e *env) startWorker(ctx context.Context, concurrency int, cs ...connector.Connector) (stop func(), err error) {
	nc, err := e.connect("tributary-worker")
	if err != nil {
		return nil, err
	}
	w, err := worker.New(nc, worker.Config{Connectors: cs, Concurrency: concurrency, HeartbeatTimeout: heartbeatTimeout, Logger: e.log})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := w.Start(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Stop(sctx); err != nil {
			e.logf("worker stop: %v", err)
		}
		nc.Close()
	}, nil
}

// waitRun waits until the run is terminal.
func (e *env) waitRun(ctx context.Context, runID string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		r, err := e.m.GetRun(ctx, runID)
		if err == nil && r.Status.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			status := "unknown"
			if r != nil {
				status = string(r.Status)
			}
			return fmt.Errorf("run %s not finished (%s): %w", runID, status, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// machine describes where the figures were taken.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d logical CPUs, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
