// Package worker is the runtime that hosts connectors: it pulls sync requests
// from the work-queue stream, runs connectors, publishes their events, and
// heartbeats so the manager knows it is alive.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/version"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Config configures a worker.
type Config struct {
	// ID names the worker; default <hostname>-<ULID>.
	ID string
	// Connectors are the connectors the worker hosts. Required.
	Connectors []connector.Connector
	// Concurrency is how many syncs run at once; default 4.
	Concurrency int
	// HeartbeatTimeout is how long a sync request stays with a worker that
	// stopped heartbeating before it is redelivered to another worker. The
	// worker heartbeats every third of it. Default 10s, minimum 2s.
	HeartbeatTimeout time.Duration
	// ProgressInterval is how often a running sync reports its scanned
	// counter; default 1s.
	ProgressInterval time.Duration
	// MaxAttempts bounds the attempts of one run that make no progress:
	// after that many attempts in a row that started and neither finished
	// nor saved a checkpoint (their workers died or lost their lease), the
	// run fails. Default 5.
	MaxAttempts int
	// RetryBackoff is the delay before a run's third attempt; it doubles for
	// every further attempt, up to a minute. The second attempt (the first
	// resume) starts as soon as the lease of the first has expired. Default 2s.
	RetryBackoff time.Duration
	// MaxPendingEvents bounds the unacknowledged events of one sync; default 1024.
	MaxPendingEvents int
	// ActionConcurrency is how many connector actions and connection tests
	// run at once; default 8. More wait for a slot until their timeout.
	ActionConcurrency int
	// BindTimeout is how long Start waits for the manager to create the
	// streams and buckets; default 30s.
	BindTimeout time.Duration
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		host, _ := os.Hostname()
		host = strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9') {
				return r
			}
			return '-'
		}, host)
		if host == "" {
			host = "worker"
		}
		c.ID = host + "-" + ulid.Make().String()
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 2 * time.Second
	}
	if c.MaxPendingEvents <= 0 {
		c.MaxPendingEvents = 1024
	}
	if c.ActionConcurrency <= 0 {
		c.ActionConcurrency = 8
	}
	if c.BindTimeout <= 0 {
		c.BindTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

func (c *Config) validate() error {
	if len(c.Connectors) == 0 {
		return errors.New("worker: no connectors")
	}
	if !events.ValidToken(c.ID) {
		return fmt.Errorf("worker: id %q must be letters, digits, '_' or '-'", c.ID)
	}
	if c.HeartbeatTimeout < 2*time.Second {
		return fmt.Errorf("worker: heartbeat timeout %s is under 2s", c.HeartbeatTimeout)
	}
	seen := map[string]bool{}
	for _, cn := range c.Connectors {
		m := cn.Manifest()
		if err := m.Validate(); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		if seen[m.Name] {
			return fmt.Errorf("worker: connector %q registered twice", m.Name)
		}
		if _, ok := cn.(connector.ActionExecutor); len(m.Actions) > 0 && !ok {
			return fmt.Errorf("worker: connector %s declares actions but does not implement connector.ActionExecutor", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

// Worker hosts connectors. Create it with New, then Start and Stop it.
type Worker struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	log   *zap.Logger
	store *state.Store
	obs   jetstream.ObjectStore
	// events is the events stream, read for a run's last attempt and
	// checkpoint: the stream, not the manager's view of it, is the truth.
	events jetstream.Stream
	// cancels is the cancel stream, read for a run's stored cancel request.
	cancels jetstream.Stream

	slots chan struct{}

	pullCtx   context.Context
	stopPull  context.CancelFunc
	pullWG    sync.WaitGroup
	runWG     sync.WaitGroup
	sub       *nats.Subscription
	actions   *actions // the micro service of actions and connection tests
	hbStop    chan struct{}
	hbDone    chan struct{}
	startedAt time.Time
	manifests map[string]connector.Manifest
	leaseTTL  time.Duration
	stopOnce  sync.Once
	mu        sync.Mutex
	active    map[*activeRun]struct{} // syncs this worker is handling
	shutdown  bool
}

type activeRun struct {
	runID    string
	sourceID string
	cancel   context.CancelCauseFunc
	sc       *syncContext // nil until the connector runs
}

var (
	// errCancelRequested is the cancel cause when an operator cancelled the run.
	errCancelRequested = errors.New("run cancelled")
	// errShutdown is the cancel cause when the worker is stopping.
	errShutdown = errors.New("worker shutting down")
	// errLeaseLost is the cancel cause when the run's lease expired or was
	// taken over: another worker owns the run now.
	errLeaseLost = errors.New("source lease lost")
)

// New returns a worker over the NATS connection nc.
func New(nc *nats.Conn, cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	w := &Worker{
		cfg:       cfg,
		nc:        nc,
		js:        js,
		log:       cfg.Logger.With(zap.String("worker_id", cfg.ID)),
		slots:     make(chan struct{}, cfg.Concurrency),
		active:    map[*activeRun]struct{}{},
		manifests: map[string]connector.Manifest{},
	}
	for _, c := range cfg.Connectors {
		m := c.Manifest()
		_, m.DocumentSync = c.(connector.DocumentSyncer)
		_, m.ConnectionTest = c.(connector.ConnectionTester)
		w.manifests[m.Name] = m
	}
	return w, nil
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Start binds to the streams and buckets (waiting up to BindTimeout for the
// manager to create them), registers the connectors, and starts pulling.
func (w *Worker) Start(ctx context.Context) error {
	if err := w.bind(ctx); err != nil {
		return err
	}
	w.startedAt = time.Now().UTC()
	if err := w.register(ctx); err != nil {
		return err
	}
	sub, err := w.nc.Subscribe(events.CancelSubjectsAll, w.onCancel)
	if err != nil {
		return fmt.Errorf("worker: subscribe to cancels: %w", err)
	}
	w.sub = sub
	if w.actions, err = w.startActions(); err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	w.pullCtx, w.stopPull = context.WithCancel(context.Background())
	for _, c := range w.cfg.Connectors {
		m := c.Manifest()
		cons, err := w.js.CreateOrUpdateConsumer(ctx, events.StreamSync,
			bus.SyncConsumerConfig(m.Name, w.cfg.HeartbeatTimeout))
		if err != nil {
			w.stopPull()
			_ = sub.Unsubscribe()
			w.actions.stop()
			return fmt.Errorf("worker: consumer for %s: %w", m.Name, err)
		}
		w.pullWG.Add(1)
		go w.pullLoop(cons, c)
	}
	w.hbStop, w.hbDone = make(chan struct{}), make(chan struct{})
	go w.heartbeatLoop()
	w.log.Info("worker started", zap.Int("concurrency", w.cfg.Concurrency),
		zap.Strings("connectors", w.connectorNames()))
	return nil
}

func (w *Worker) bind(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.BindTimeout)
	defer cancel()
	for {
		store, err := state.Bind(ctx, w.js)
		if err == nil {
			var obs jetstream.ObjectStore
			var evs jetstream.Stream
			obs, err = w.js.ObjectStore(ctx, events.BucketContent)
			var cancels jetstream.Stream
			if err == nil {
				evs, err = w.js.Stream(ctx, events.StreamEvents)
			}
			if err == nil {
				cancels, err = w.js.Stream(ctx, events.StreamCancel)
			}
			if err == nil {
				var ttl time.Duration
				ttl, err = store.Leases.TTL(ctx)
				if err == nil {
					w.store, w.obs, w.events, w.cancels = store, obs, evs, cancels
					// Refresh well inside whichever is shorter: our own
					// heartbeat timeout or the TTL the manager gave leases.
					w.leaseTTL = w.cfg.HeartbeatTimeout
					if ttl > 0 && ttl < w.leaseTTL {
						w.leaseTTL = ttl
					}
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker: streams and buckets not found (is the manager running?): %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (w *Worker) connectorNames() []string {
	names := make([]string, 0, len(w.manifests))
	for _, c := range w.cfg.Connectors {
		names = append(names, c.Manifest().Name)
	}
	return names
}

func (w *Worker) register(ctx context.Context) error {
	for name, m := range w.manifests {
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("worker: manifest %s: %w", name, err)
		}
		if _, err := w.store.Connectors.Put(ctx, name, &state.ConnectorInfo{
			Manifest: raw, RegisteredAt: time.Now().UTC(), WorkerID: w.cfg.ID,
		}); err != nil {
			return fmt.Errorf("worker: register %s: %w", name, err)
		}
	}
	return w.heartbeat(ctx)
}

func (w *Worker) heartbeat(ctx context.Context) error {
	host, _ := os.Hostname()
	w.mu.Lock()
	runs := make([]string, 0, len(w.active))
	for ar := range w.active {
		runs = append(runs, ar.runID)
	}
	w.mu.Unlock()
	_, err := w.store.Workers.Put(ctx, w.cfg.ID, &state.Worker{
		ID: w.cfg.ID, Host: host, PID: os.Getpid(), Version: version.Version,
		Connectors: w.connectorNames(), Concurrency: w.cfg.Concurrency,
		ActiveRuns: runs, StartedAt: w.startedAt, HeartbeatAt: time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("worker: heartbeat: %w", err)
	}
	return nil
}

func (w *Worker) heartbeatLoop() {
	defer close(w.hbDone)
	t := time.NewTicker(w.cfg.HeartbeatTimeout / 3)
	defer t.Stop()
	for {
		select {
		case <-w.hbStop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout/3)
			if err := w.heartbeat(ctx); err != nil {
				w.log.Warn("heartbeat failed", zap.Error(err))
			}
			cancel()
		}
	}
}

// pullLoop takes one request at a time for connector c whenever a
// concurrency slot is free. Fetch(1) rather than a buffered consumer: a
// buffered message's ack clock would run while it waits for a slot.
func (w *Worker) pullLoop(cons jetstream.Consumer, c connector.Connector) {
	defer w.pullWG.Done()
	name := c.Manifest().Name
	for {
		select {
		case w.slots <- struct{}{}:
		case <-w.pullCtx.Done():
			return
		}
		if w.pullCtx.Err() != nil {
			<-w.slots
			return
		}
		// A bounded wait, not the stop context: cancelling a pull request
		// could strand a message the server already sent until its ack
		// deadline.
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			<-w.slots
			w.log.Warn("fetch sync request", zap.String("connector", name), zap.Error(err))
			select {
			case <-time.After(time.Second):
			case <-w.pullCtx.Done():
				return
			}
			continue
		}
		var got bool
		for msg := range batch.Messages() {
			got = true
			w.runWG.Add(1)
			go func() {
				defer w.runWG.Done()
				defer func() { <-w.slots }()
				w.handle(msg, c)
			}()
		}
		if !got {
			<-w.slots
		}
	}
}

// fetchWait bounds one pull request. A new request reaches a waiting pull at
// once, but a redelivered one (handed back, nak'ed with a delay, or past its
// ack wait) only reaches the next pull request: this is also the latency a
// hand-off or a resume adds. Measured: 1 s here made a SIGTERM hand-off take
// 1.0 s; 250 ms, 0.25 s.
const fetchWait = 500 * time.Millisecond

// onCancel cancels the run named by a cancel request, if it runs here.
func (w *Worker) onCancel(m *nats.Msg) {
	runID := strings.TrimPrefix(m.Subject, events.SubjectCancelPrefix)
	w.mu.Lock()
	var hits []*activeRun
	for ar := range w.active {
		if ar.runID == runID {
			hits = append(hits, ar)
		}
	}
	w.mu.Unlock()
	for _, ar := range hits {
		w.log.Info("cancel requested", zap.String("run_id", runID), zap.String("source_id", ar.sourceID))
		ar.cancel(errCancelRequested)
	}
}

// cancelRequested reports whether a cancel request for the run is stored.
func (w *Worker) cancelRequested(ctx context.Context, runID string) (bool, error) {
	_, err := w.cancels.GetLastMsgForSubject(ctx, events.CancelSubject(runID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Stop stops pulling, asks running syncs to stop, hands their requests back
// to the queue for another worker, and returns when they have or when ctx
// ends (the grace period), whichever is first.
func (w *Worker) Stop(ctx context.Context) error {
	var err error
	w.stopOnce.Do(func() {
		if w.stopPull == nil {
			return
		}
		w.stopPull()
		// No new actions; those running finish, or are cancelled with
		// the syncs.
		w.actions.stop()
		// First ask every sync to stop at its next checkpoint; those that
		// have not by shortly before the grace period ends are cancelled.
		// This does not wait for the pull loops (a fetch may wait a second):
		// a request they still receive sees shutdown and is handed back.
		w.mu.Lock()
		w.shutdown = true
		for ar := range w.active {
			if ar.sc != nil {
				ar.sc.stopRequested.Store(true)
			} else {
				ar.cancel(errShutdown)
			}
		}
		w.mu.Unlock()
		w.pullWG.Wait()
		done := make(chan struct{})
		actionsDone := w.actions.wait()
		go func() { w.runWG.Wait(); <-actionsDone; close(done) }()
		soft := time.NewTimer(softStop(ctx))
		defer soft.Stop()
		select {
		case <-done:
		case <-soft.C:
			w.actions.cancel(errActionsStopping)
			w.mu.Lock()
			for ar := range w.active {
				ar.cancel(errShutdown)
			}
			w.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
				err = fmt.Errorf("worker: stop: runs still active: %w", ctx.Err())
			}
		case <-ctx.Done():
			err = fmt.Errorf("worker: stop: runs still active: %w", ctx.Err())
		}
		w.actions.cancel(errActionsStopping)
		if w.sub != nil {
			_ = w.sub.Unsubscribe()
		}
		close(w.hbStop)
		<-w.hbDone
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = w.store.Workers.Delete(dctx, w.cfg.ID, 0)
		w.log.Info("worker stopped")
	})
	return err
}

// softStop is how long Stop waits for syncs to reach a checkpoint before
// cancelling them: most of the grace period, keeping a second (or a quarter)
// to flush and hand back.
func softStop(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 5 * time.Second
	}
	left := time.Until(dl)
	margin := min(time.Second, left/4)
	return max(left-margin, 0)
}
