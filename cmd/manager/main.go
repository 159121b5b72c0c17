// Command manager runs the Tributary control plane: the HTTP API (with
// Prometheus metrics at /metrics), the event applier and, by default, an
// embedded NATS server and an in-process worker.
//
//	go run ./cmd/manager                      # everything in one process
//	go run ./cmd/manager --nats-url nats://…  # against an external NATS
//
// Every flag also reads an environment variable: --http-addr reads
// TRIBUTARY_HTTP_ADDR, and so on. Run with -h for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/cli"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/secret"
	"github.com/tributary-sync/tributary/internal/version"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
)

type options struct {
	dataDir          string
	httpAddr         string
	natsURL          string
	natsCreds        string
	natsListen       string
	worker           bool
	concurrency      int
	execConnectors   string
	replicas         int
	heartbeatTimeout time.Duration
	maxAttempts      int
	retryBackoff     time.Duration
	syncAlways       bool
	shutdownGrace    time.Duration
	gcInterval       time.Duration
	gcGrace          time.Duration
	actionTimeout    time.Duration
	secretKeyFile    string
	authTokensFile   string
	insecure         bool
	logFormat        string
	logLevel         string
	maxActiveRuns    int
	connectorLimits  connectorLimits
	scheduleRetry    time.Duration
	scheduleRetryCap time.Duration
	degradedAfter    int
}

// connectorLimits is the repeatable --connector-limit NAME=N flag.
type connectorLimits map[string]int

func (c connectorLimits) String() string {
	parts := make([]string, 0, len(c))
	for k, v := range c {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (c connectorLimits) Set(v string) error {
	name, n, ok := strings.Cut(v, "=")
	limit, err := strconv.Atoi(n)
	if !ok || name == "" || err != nil || limit < 1 {
		return fmt.Errorf("want CONNECTOR=N with N at least 1, got %q", v)
	}
	c[name] = limit
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data-dir", "./data", "directory of the embedded NATS server's JetStream store")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8420", "address of the HTTP API")
	fs.StringVar(&o.natsURL, "nats-url", "", "URL of an external NATS server; empty embeds one")
	fs.StringVar(&o.natsCreds, "nats-creds", "", "NATS credentials file for --nats-url (see deploy/README.md)")
	fs.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server, for worker processes; empty takes in-process connections only")
	fs.BoolVar(&o.worker, "worker", true, "run a worker hosting the built-in connectors (and --exec-connectors) in this process")
	fs.IntVar(&o.concurrency, "concurrency", 4, "concurrent syncs of the in-process worker")
	fs.StringVar(&o.execConnectors, "exec-connectors", "", "in-process worker: JSON file declaring connectors that run as child processes (docs/exec-protocol.md)")
	fs.IntVar(&o.replicas, "replicas", 1, "replication of every stream and bucket (1, 3 or 5)")
	fs.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", 10*time.Second, "how long a silent worker keeps a sync before another worker takes it (at least 2s)")
	fs.IntVar(&o.maxAttempts, "max-attempts", 5, "in-process worker: attempts in a row that end without a checkpoint before the run fails")
	fs.DurationVar(&o.retryBackoff, "retry-backoff", 2*time.Second, "in-process worker: delay before a run's third attempt, doubling for each further one (up to 1m)")
	fs.BoolVar(&o.syncAlways, "sync-always", false, "embedded server: fsync every JetStream write before acknowledging it (see docs/reliability.md)")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 10*time.Second, "how long shutdown waits for running syncs to hand off")
	fs.DurationVar(&o.gcInterval, "content-gc-interval", time.Hour, "how often content no document references is deleted (negative: never; a source deletion still collects its own)")
	fs.DurationVar(&o.gcGrace, "content-gc-grace", time.Hour, "how old unreferenced content must be before it is deleted")
	fs.DurationVar(&o.actionTimeout, "action-timeout", 30*time.Second, "how long a connector action or connection test may take before it answers 504")
	fs.StringVar(&o.secretKeyFile, "secret-key-file", "", "file holding the 32-byte key (64 hex digits) that seals source credentials; default <data-dir>/secret.key, created if missing. TRIBUTARY_SECRET_KEY gives the key itself")
	fs.StringVar(&o.authTokensFile, "auth-tokens-file", "", "file of \"TOKEN ROLE\" lines (roles admin, operator, viewer; # comments): every /v1 route then needs a bearer token. Re-read on SIGHUP")
	fs.BoolVar(&o.insecure, "insecure", false, "allow an HTTP address other than loopback without --auth-tokens-file")
	fs.StringVar(&o.logFormat, "log-format", "console", "log format: console or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.IntVar(&o.maxActiveRuns, "max-active-runs", 0, "runs dispatched at once across all sources; more wait queued, in order (0: no limit)")
	o.connectorLimits = connectorLimits{}
	fs.Var(o.connectorLimits, "connector-limit", "CONNECTOR=N: runs of one connector type dispatched at once (repeatable)")
	fs.DurationVar(&o.scheduleRetry, "schedule-retry", time.Minute, "delay before a scheduled source is retried after a failed run, doubling per further failure")
	fs.DurationVar(&o.scheduleRetryCap, "schedule-retry-cap", time.Hour, "longest delay between retries of a failing scheduled source")
	fs.IntVar(&o.degradedAfter, "degraded-after", 3, "consecutive failed runs after which a source shows as degraded")
	if err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, level, err := cli.NewLogger(o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	var conns []connector.Connector
	if o.worker {
		// Read before anything starts, so that a bad file fails fast.
		if conns, err = cli.Connectors(o.execConnectors); err != nil {
			return err
		}
	} else if o.execConnectors != "" {
		log.Warn("--exec-connectors is ignored with --worker=false: give it to the worker processes")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	key, err := secretKey(&o, log)
	if err != nil {
		return err
	}
	var tokens *api.Tokens
	if o.authTokensFile != "" {
		if tokens, err = api.LoadTokens(o.authTokensFile); err != nil {
			return fmt.Errorf("--auth-tokens-file: %w", err)
		}
	} else if !o.insecure && !loopback(o.httpAddr) {
		return fmt.Errorf("--http-addr %s is not a loopback address and there is no --auth-tokens-file: anyone who can reach it could manage every source; give tokens, or --insecure to serve it open anyway", o.httpAddr)
	}

	// Fail fast on a taken HTTP port, before anything else starts.
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	defer func() { _ = ln.Close() }()

	var ns *server.Server
	connect := func(name string) (*nats.Conn, error) {
		opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
		if ns != nil {
			return nats.Connect("", append(opts, nats.InProcessServer(ns))...)
		}
		if o.natsCreds != "" {
			opts = append(opts, nats.UserCredentials(o.natsCreds))
		}
		return nats.Connect(o.natsURL, opts...)
	}
	if o.natsURL == "" {
		dir, err := filepath.Abs(o.dataDir)
		if err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		ns, err = bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: dir, Listen: o.natsListen, SyncAlways: o.syncAlways, Logger: log})
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		where := "in-process only"
		if o.natsListen != "" {
			where = ns.ClientURL()
		}
		log.Info("embedded NATS started", zap.String("store_dir", dir), zap.String("clients", where), zap.Bool("sync_always", o.syncAlways))
	}

	nc, err := connect("tributary-manager")
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()

	clientURL := cli.RedactURLs(o.natsURL)
	if ns != nil {
		clientURL = "in-process only"
		if o.natsListen != "" {
			clientURL = ns.ClientURL()
		}
	}
	// The process's own registry, not the global one: /metrics shows
	// exactly what is registered here.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := manager.New(nc, manager.Config{Replicas: o.replicas, HeartbeatTimeout: o.heartbeatTimeout, ClientURL: clientURL,
		ContentGCInterval: o.gcInterval, ContentGCGrace: o.gcGrace, ActionTimeout: o.actionTimeout, SecretKey: key, Metrics: reg, Logger: log,
		Limits:    manager.Limits{MaxActiveRuns: o.maxActiveRuns, PerConnector: o.connectorLimits},
		RetryBase: o.scheduleRetry, RetryCap: o.scheduleRetryCap, DegradedAfter: o.degradedAfter})
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := m.Start(startCtx); err != nil {
		return err
	}

	var w *worker.Worker
	if o.worker {
		wnc, err := connect("tributary-worker")
		if err != nil {
			return fmt.Errorf("connect worker to NATS: %w", err)
		}
		defer wnc.Close()
		w, err = worker.New(wnc, worker.Config{
			Connectors: conns, Concurrency: o.concurrency,
			HeartbeatTimeout: o.heartbeatTimeout, MaxAttempts: o.maxAttempts, RetryBackoff: o.retryBackoff, Logger: log,
		})
		if err != nil {
			return err
		}
		if err := w.Start(startCtx); err != nil {
			return err
		}
	}

	apiOpts := []api.Option{api.WithLogLevel(level), api.WithMetrics(reg)}
	if tokens != nil {
		apiOpts = append(apiOpts, api.WithTokens(tokens))
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				if err := tokens.Reload(); err != nil {
					log.Error("auth tokens not reloaded; the previous ones stay", zap.Error(err))
					continue
				}
				log.Info("auth tokens reloaded", zap.Int("tokens", tokens.Len()))
			}
		}()
	} else if o.insecure && !loopback(o.httpAddr) {
		log.Warn("the HTTP API is open to anyone who can reach it (--insecure)", zap.String("http_addr", o.httpAddr))
	}
	srv := &http.Server{Handler: api.New(m, log, apiOpts...), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("Tributary manager ready", zap.String("version", version.Version),
		zap.String("http", "http://"+ln.Addr().String()), zap.Bool("worker", o.worker), zap.Strings("connectors", cli.ConnectorNames(conns)))

	var exitErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-m.Lost():
		exitErr = manager.ErrLockLost
	}
	stop()
	shCtx, cancelSh := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancelSh()
	_ = srv.Shutdown(shCtx)
	if w != nil {
		if err := w.Stop(shCtx); err != nil {
			log.Warn("worker stop", zap.Error(err))
		}
	}
	if err := m.Stop(shCtx); err != nil {
		log.Warn("manager stop", zap.Error(err))
	}
	return exitErr
}

// secretKey returns the key credentials are sealed with: TRIBUTARY_SECRET_KEY,
// else --secret-key-file, else <data-dir>/secret.key, created on first
// start. The key itself is never logged.
func secretKey(o *options, log *zap.Logger) ([]byte, error) {
	if v, ok := os.LookupEnv("TRIBUTARY_SECRET_KEY"); ok {
		k, err := secret.ParseKey(v)
		if err != nil {
			return nil, fmt.Errorf("TRIBUTARY_SECRET_KEY: %w", err)
		}
		return k, nil
	}
	path := o.secretKeyFile
	if path == "" {
		path = filepath.Join(o.dataDir, "secret.key")
	}
	k, created, err := secret.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("--secret-key-file: %w", err)
	}
	if created {
		log.Warn("generated the key that seals source credentials; back it up, and give every manager the same one (--secret-key-file)", zap.String("path", path))
	}
	return k, nil
}

// loopback reports whether a listen address only accepts local
// connections: a loopback IP or "localhost". An empty host listens on
// every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
