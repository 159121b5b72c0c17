// Package worker runs a Tributary worker that hosts your own Go connectors:
// the entry point of a worker binary built in your module.
//
// A worker pulls the sync requests of the connectors it hosts from NATS
// JetStream, runs them, and publishes what they find; the manager holds
// the sources and runs. Start as many workers as you like against the same
// NATS: they share the work, and a sync a worker drops is resumed by
// another from its last checkpoint.
//
// Main is all a worker binary needs:
//
//	func main() {
//		worker.Main(notes.New())
//	}
//
// It gives the binary the flags of Tributary's own cmd/worker
// (--nats-url, --concurrency, --exec-connectors, …, each also read from an
// environment variable such as TRIBUTARY_NATS_URL; -h lists them), and on
// SIGINT or SIGTERM hands the running syncs over to other workers before
// it exits. Run does the same from a Config, for a program that parses its
// own flags or hosts a worker beside other things.
//
// The worker hosts exactly the connectors given to it (and the exec
// connectors --exec-connectors declares); Tributary's built-in connectors
// run on Tributary's own workers.
package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/cli"
	execconn "github.com/tributary-sync/tributary/internal/connectors/exec"
	"github.com/tributary-sync/tributary/internal/version"
	rt "github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// DefaultShutdownGrace is how long a stopping worker waits, by default, for
// its running syncs to hand over.
const DefaultShutdownGrace = 10 * time.Second

// Config configures a worker. The zero value is usable: it connects to
// nats://127.0.0.1:4222 with the defaults below.
type Config struct {
	// NATSURL is the URL of the NATS server or cluster (comma-separated);
	// default nats.DefaultURL (nats://127.0.0.1:4222).
	NATSURL string
	// NATSOptions are added to the connection's options, after the
	// worker's own (a name, reconnecting forever): nats.UserCredentials,
	// TLS settings, and so on.
	NATSOptions []nats.Option
	// ID names the worker: letters, digits, '_' or '-'; default
	// <hostname>-<ULID>.
	ID string
	// Concurrency is how many syncs run at once; default 4.
	Concurrency int
	// HeartbeatTimeout is how long a silent worker keeps a sync before
	// another worker takes it over; default 10s, at least 2s. Give every
	// worker and the manager the same value.
	HeartbeatTimeout time.Duration
	// MaxAttempts is how many attempts of a run in a row may end without
	// a checkpoint before the run fails; default 5.
	MaxAttempts int
	// RetryBackoff is the delay before a run's third attempt, doubling for
	// each further one up to a minute; default 2s.
	RetryBackoff time.Duration
	// ShutdownGrace is how long Run, once its context is done, waits for
	// running syncs to save a checkpoint and hand over; default
	// DefaultShutdownGrace. Syncs still running shortly before it ends are
	// cancelled.
	ShutdownGrace time.Duration
	// Logger receives the worker's logs and the connectors'
	// (SyncContext.Logger); default none.
	Logger *zap.Logger
}

// Run connects to NATS, hosts connectors until ctx is done, then stops:
// it stops taking syncs, hands the running ones over (they save a
// checkpoint and another worker resumes them) and closes the connection.
// It returns nil after a clean stop, and an error when the worker cannot
// start (no NATS server, a connector whose manifest is invalid, no manager
// having created the streams within 30 seconds) or when a sync did not
// stop within ShutdownGrace.
//
// Connectors must be safe for concurrent use (see connector.Connector).
func Run(ctx context.Context, cfg Config, connectors ...connector.Connector) error {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	url := cfg.NATSURL
	if url == "" {
		url = nats.DefaultURL
	}
	grace := cfg.ShutdownGrace
	if grace <= 0 {
		grace = DefaultShutdownGrace
	}
	opts := append([]nats.Option{nats.Name("tributary-worker"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)},
		cfg.NATSOptions...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", cli.RedactURLs(url), err)
	}
	defer nc.Close()

	w, err := rt.New(nc, rt.Config{
		ID: cfg.ID, Connectors: connectors, Concurrency: cfg.Concurrency,
		HeartbeatTimeout: cfg.HeartbeatTimeout, MaxAttempts: cfg.MaxAttempts, RetryBackoff: cfg.RetryBackoff,
		Logger: log,
	})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	log.Info("Tributary worker ready", zap.String("version", version.Version), zap.String("worker_id", w.ID()),
		zap.String("nats", nc.ConnectedUrlRedacted()), zap.Strings("connectors", cli.ConnectorNames(connectors)))
	<-ctx.Done()
	log.Info("shutting down: handing running syncs back", zap.String("worker_id", w.ID()))
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return w.Stop(stopCtx)
}

// Main runs a worker process hosting connectors: it parses the command
// line (the flags of cmd/worker, each also read from its environment
// variable), runs the worker until SIGINT or SIGTERM, and exits with status
// 1 after printing the error when it fails. A second signal kills the
// process at once.
func Main(connectors ...connector.Connector) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts the hand-over; the next one is the default
	// action again.
	context.AfterFunc(ctx, stop)
	name := filepath.Base(os.Args[0])
	err := command(ctx, name, os.Args[1:], os.Stderr, connectors)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// command is Main without the process: it parses args and runs the worker
// until ctx is done.
func command(ctx context.Context, name string, args []string, stderr io.Writer, connectors []connector.Connector) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsURL := fs.String("nats-url", nats.DefaultURL, "URL of the NATS server or cluster (comma-separated)")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (see deploy/nats for least-privilege worker permissions)")
	id := fs.String("id", "", "worker id; default <hostname>-<ULID>")
	concurrency := fs.Int("concurrency", 4, "syncs run at once")
	heartbeat := fs.Duration("heartbeat-timeout", 10*time.Second, "how long a silent worker keeps a sync before another worker takes it (at least 2s)")
	maxAttempts := fs.Int("max-attempts", 5, "attempts in a row that end without a checkpoint before the run fails")
	retryBackoff := fs.Duration("retry-backoff", 2*time.Second, "delay before a run's third attempt, doubling for each further one (up to 1m)")
	grace := fs.Duration("shutdown-grace", DefaultShutdownGrace, "how long shutdown waits for running syncs to hand off")
	execFile := fs.String("exec-connectors", "", "JSON file declaring connectors that run as child processes (docs/exec-protocol.md)")
	logFormat := fs.String("log-format", "console", "log format: console or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, _, err := cli.NewLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	conns := append([]connector.Connector(nil), connectors...)
	if *execFile != "" {
		ecs, err := execconn.Load(*execFile)
		if err != nil {
			return fmt.Errorf("--exec-connectors: %w", err)
		}
		for _, c := range ecs {
			conns = append(conns, c)
		}
	}
	var opts []nats.Option
	if *natsCreds != "" {
		opts = append(opts, nats.UserCredentials(*natsCreds))
	}
	return Run(ctx, Config{
		NATSURL: *natsURL, NATSOptions: opts, ID: *id, Concurrency: *concurrency,
		HeartbeatTimeout: *heartbeat, MaxAttempts: *maxAttempts, RetryBackoff: *retryBackoff,
		ShutdownGrace: *grace, Logger: log,
	}, conns...)
}
