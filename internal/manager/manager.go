// Package manager holds sources, triggers and cancels syncs, and applies the
// events workers publish to the durable run and checkpoint records.
package manager

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/internal/secret"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Config configures a manager.
type Config struct {
	// Replicas is the replication factor of every stream and bucket; default 1.
	Replicas int
	// HeartbeatTimeout is the workers' heartbeat timeout; worker records
	// expire after three of them. Default 10s.
	HeartbeatTimeout time.Duration
	// ClientURL is the NATS URL to show operators (/health): the embedded
	// server's client address. Default: the connection's own URL.
	ClientURL string
	// ApplyBatch bounds how many events are applied per KV write; default 512.
	ApplyBatch int
	// ContentGCInterval is how often content no document references is
	// collected; default 1h. Negative disables the periodic pass (a
	// source deletion still collects the content it released).
	ContentGCInterval time.Duration
	// ContentGCGrace is how old unreferenced content must be to be
	// collected (content is stored before the event naming it is applied);
	// default 1h.
	ContentGCGrace time.Duration
	// ContentGCSettle is how long a pass waits between un-indexing content
	// and deleting it; default 30s.
	ContentGCSettle time.Duration
	// DocIndexIdle is how long a source's in-memory documents index is kept
	// after its last list; default 10m.
	DocIndexIdle time.Duration
	// ActionTimeout is how long a connector action or connection test may
	// take before the request answers 504 (the worker cancels it then);
	// default 30s.
	ActionTimeout time.Duration
	// SecretKey is the 32-byte key source credentials are sealed with.
	// Default: a random key for this process only, so credentials stored
	// now cannot be read after a restart (tests); the binary always gives
	// one.
	SecretKey []byte
	// RetryBase is how long the scheduler waits before retrying a source
	// after its first failed run, doubled per further failure up to
	// RetryCap. Defaults 1m and 1h.
	RetryBase time.Duration
	RetryCap  time.Duration
	// DegradedAfter is how many consecutive failed runs mark a source
	// degraded; default 3.
	DegradedAfter int
	// Limits bound the runs dispatched at once; default none.
	Limits Limits
	// Clock is the scheduler's clock; default the real one. Tests inject a
	// fake to make schedules fire without waiting.
	Clock clockwork.Clock
	// Metrics is where the manager registers its Prometheus metrics
	// (docs/api.md, "Metrics"); nil registers them nowhere. Give a registry
	// of your own rather than prometheus.DefaultRegisterer: Stop
	// unregisters them, so a later manager can register on the same one.
	Metrics prometheus.Registerer
	// MetricsTimeout bounds the JetStream reads of one scrape; default 2s.
	MetricsTimeout time.Duration
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.ApplyBatch <= 0 {
		c.ApplyBatch = 512
	}
	if c.ContentGCInterval == 0 {
		c.ContentGCInterval = time.Hour
	}
	if c.ContentGCGrace == 0 {
		c.ContentGCGrace = time.Hour
	}
	if c.ContentGCSettle == 0 {
		c.ContentGCSettle = 30 * time.Second
	}
	if c.ActionTimeout <= 0 {
		c.ActionTimeout = 30 * time.Second
	}
	if c.DocIndexIdle <= 0 {
		c.DocIndexIdle = 10 * time.Minute
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Minute
	}
	if c.RetryCap <= 0 {
		c.RetryCap = time.Hour
	}
	if c.DegradedAfter <= 0 {
		c.DegradedAfter = 3
	}
	if c.Clock == nil {
		c.Clock = clockwork.NewRealClock()

	}
	if c.MetricsTimeout <= 0 {
		c.MetricsTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

func (c *Config) validate() error {
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		return fmt.Errorf("manager: replicas must be 1, 3 or 5, not %d", c.Replicas)
	}
	if c.HeartbeatTimeout < 2*time.Second {
		return fmt.Errorf("manager: heartbeat timeout %s is under 2s", c.HeartbeatTimeout)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.RetryCap < c.RetryBase {
		return fmt.Errorf("manager: retry cap %s is under the retry base %s", c.RetryCap, c.RetryBase)
	}
	if c.ContentGCGrace < 0 || c.ContentGCSettle < 0 {
		return fmt.Errorf("manager: content gc grace %s and settle %s must not be negative", c.ContentGCGrace, c.ContentGCSettle)
	}
	return nil
}

// Manager is the control plane. Create it with New, then Start and Stop it.
type Manager struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	store   *state.Store
	log     *zap.Logger
	clock   clockwork.Clock
	schemas *schemas

	applyCtx  context.Context
	stopApply context.CancelFunc
	applyDone chan struct{}
	consume   jetstream.ConsumeContext
	stopOnce  sync.Once
	lock      *lock

	content   *content.Store
	box       *secret.Box
	docs      *docIndex
	srcs      *sourceCache
	keyLocks  keyLocks
	statusSub *nats.Subscription
	statusSem chan struct{}

	sched       *scheduler
	schedCancel context.CancelFunc
	adm         *admission
	admitCancel context.CancelFunc
	admitDone   chan struct{}

	gcMu     sync.Mutex
	gcKick   chan []string
	gcDone   chan struct{}
	gcCancel context.CancelFunc

	metrics *metrics
}

// New returns a manager over the NATS connection nc.
func New(nc *nats.Conn, cfg Config) (*Manager, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// The applier publishes a batch's changes and catalog writes
	// asynchronously: a write not acknowledged in time fails, and the
	// batch is applied again.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(30*time.Second),
		jetstream.WithPublishAsyncMaxPending(max(4096, 4*cfg.ApplyBatch)))
	if err != nil {
		return nil, fmt.Errorf("manager: jetstream: %w", err)
	}
	key := cfg.SecretKey
	if key == nil {
		key = make([]byte, secret.KeySize)
		_, _ = rand.Read(key)
		cfg.Logger.Warn("no secret key given: credentials are sealed with a key that dies with this process")
	}
	box, err := secret.New(key)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	mx := newMetrics(cfg.MetricsTimeout)
	if cfg.Metrics != nil {
		if err := mx.register(cfg.Metrics); err != nil {
			return nil, err
		}
	}
	return &Manager{cfg: cfg, nc: nc, js: js, log: cfg.Logger, clock: cfg.Clock, schemas: newSchemas(), adm: newAdmission(cfg.Limits),
		docs: newDocIndex(), srcs: newSourceCache(), statusSem: make(chan struct{}, 32), box: box, metrics: mx}, nil
}

// Store returns the state store (after Start).
func (m *Manager) Store() *state.Store { return m.store }

// ClientURL is the NATS URL clients should use, for display.
func (m *Manager) ClientURL() string {
	if m.cfg.ClientURL != "" {
		return m.cfg.ClientURL
	}
	return m.nc.ConnectedUrlRedacted()
}

// Conn returns the NATS connection.
func (m *Manager) Conn() *nats.Conn { return m.nc }

// JetStream returns the JetStream client.
func (m *Manager) JetStream() jetstream.JetStream { return m.js }

// Start creates the streams and buckets, re-dispatches runs an earlier
// manager queued but did not dispatch, and starts applying events.
func (m *Manager) Start(ctx context.Context) error {
	if err := bus.EnsureStreams(ctx, m.js, bus.StreamsConfig{Replicas: m.cfg.Replicas}); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	store, err := state.Open(ctx, m.js, state.Config{Replicas: m.cfg.Replicas, WorkerTTL: 3 * m.cfg.HeartbeatTimeout, LeaseTTL: m.cfg.HeartbeatTimeout})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	m.store = store
	obs, err := m.js.ObjectStore(ctx, events.BucketContent)
	if err != nil {
		return fmt.Errorf("manager: object store: %w", err)
	}
	m.content = content.New(m.js, obs, store.Content)
	if err := m.acquireLock(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := m.loadAdmission(ctx); err != nil {
		return fmt.Errorf("manager: load runs: %w", err)
	}
	if err := m.startApplier(ctx); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := m.startStatusService(); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	var actx context.Context
	actx, m.admitCancel = context.WithCancel(context.Background())
	m.admitDone = make(chan struct{})
	go m.admitLoop(actx, m.admitDone)
	var sctx context.Context
	sctx, m.schedCancel = context.WithCancel(context.Background())
	if m.sched, err = m.startScheduler(sctx); err != nil {
		return fmt.Errorf("manager: scheduler: %w", err)
	}
	var gctx context.Context
	gctx, m.gcCancel = context.WithCancel(context.Background())
	m.gcKick, m.gcDone = make(chan []string, 1), make(chan struct{})
	go m.gcLoop(gctx)
	m.metrics.start(m.js, m.store, m.log)
	m.log.Info("manager started", zap.Int("replicas", m.cfg.Replicas))
	return nil
}

// Lost is closed when this manager lost its lock to another manager; it
// must then stop (Stop) and exit. Before Start it is nil.
func (m *Manager) Lost() <-chan struct{} {
	if m.lock == nil {
		return nil
	}
	return m.lock.lost
}

// Stop stops applying events; what was applied is durable and what was not
// is redelivered to the next manager.
func (m *Manager) Stop(ctx context.Context) error {
	var err error
	m.stopOnce.Do(func() {
		if m.statusSub != nil {
			_ = m.statusSub.Drain()
		}
		if m.schedCancel != nil {
			m.schedCancel()
			if m.sched != nil {
				m.sched.wait()
			}
		}
		if m.admitCancel != nil {
			m.admitCancel()
			<-m.admitDone
		}
		if m.gcCancel != nil {
			m.gcCancel()
			<-m.gcDone
		}
		if m.consume != nil {
			m.consume.Stop()
		}
		if m.stopApply != nil {
			m.stopApply()
			select {
			case <-m.applyDone:
			case <-ctx.Done():
				err = fmt.Errorf("manager: stop: %w", ctx.Err())
			}
		}
		if m.lock != nil {
			m.lock.release()
		}
		m.metrics.stop()
		if m.cfg.Metrics != nil {
			m.metrics.unregister(m.cfg.Metrics)
		}
	})
	return err
}

// startStatusService answers the document status reports indexers send on
// tributary.status.<source_id> (one queue group, so one manager answers
// each), storing each before replying.
func (m *Manager) startStatusService() error {
	sub, err := m.nc.QueueSubscribe(events.StatusSubjectsAll, "tributary-manager", func(msg *nats.Msg) {
		sourceID := strings.TrimPrefix(msg.Subject, events.SubjectStatusPrefix)
		m.statusSem <- struct{}{}
		go func() {
			defer func() { <-m.statusSem }()
			ctx, cancel := context.WithTimeout(m.applyCtx, 10*time.Second)
			defer cancel()
			rep := m.statusReport(ctx, sourceID, msg.Data)
			if msg.Reply == "" {
				if rep.Error != nil {
					m.log.Warn("document status report refused", zap.String("source_id", sourceID), zap.String("code", rep.Error.Code), zap.String("reason", rep.Error.Message))
				}
				return
			}
			b, _ := json.Marshal(rep)
			_ = msg.Respond(b)
		}()
	})
	if err != nil {
		return fmt.Errorf("status service: %w", err)
	}
	m.statusSub = sub
	return nil
}
