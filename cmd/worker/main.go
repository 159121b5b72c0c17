// Command worker hosts the built-in connectors (and the exec connectors
// --exec-connectors declares) and runs the syncs the
// manager requests. Start as many as you like: they share the work.
//
//	go run ./cmd/worker --nats-url nats://127.0.0.1:4222 --concurrency 4
//
// Every flag also reads an environment variable: --nats-url reads
// TRIBUTARY_NATS_URL, and so on. Run with -h for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/cli"
	"github.com/tributary-sync/tributary/internal/version"
	"github.com/tributary-sync/tributary/internal/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	natsURL := fs.String("nats-url", nats.DefaultURL, "URL of the NATS server or cluster (comma-separated)")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (see deploy/nats for least-privilege worker permissions)")
	id := fs.String("id", "", "worker id; default <hostname>-<ULID>")
	concurrency := fs.Int("concurrency", 4, "syncs run at once")
	heartbeat := fs.Duration("heartbeat-timeout", 10*time.Second, "how long a silent worker keeps a sync before another worker takes it (at least 2s)")
	maxAttempts := fs.Int("max-attempts", 5, "attempts in a row that end without a checkpoint before the run fails")
	retryBackoff := fs.Duration("retry-backoff", 2*time.Second, "delay before a run's third attempt, doubling for each further one (up to 1m)")
	grace := fs.Duration("shutdown-grace", 10*time.Second, "how long shutdown waits for running syncs to hand off")
	execFile := fs.String("exec-connectors", "", "JSON file declaring connectors that run as child processes (docs/exec-protocol.md)")
	logFormat := fs.String("log-format", "console", "log format: console or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, _, err := cli.NewLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	conns, err := cli.Connectors(*execFile)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := []nats.Option{nats.Name("tributary-worker"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if *natsCreds != "" {
		opts = append(opts, nats.UserCredentials(*natsCreds))
	}
	nc, err := nats.Connect(*natsURL, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", cli.RedactURLs(*natsURL), err)
	}
	defer nc.Close()

	w, err := worker.New(nc, worker.Config{
		ID: *id, Connectors: conns, Concurrency: *concurrency,
		HeartbeatTimeout: *heartbeat, MaxAttempts: *maxAttempts, RetryBackoff: *retryBackoff, Logger: log,
	})
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	log.Info("Tributary worker ready", zap.String("version", version.Version), zap.String("worker_id", w.ID()), zap.String("nats", nc.ConnectedUrlRedacted()),
		zap.Strings("connectors", cli.ConnectorNames(conns)))
	<-ctx.Done()
	stop()
	log.Info("shutting down: handing running syncs back")
	shCtx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	return w.Stop(shCtx)
}
