package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// The manager's Prometheus metrics (docs/api.md, "Metrics"). Counters and
// the run-duration histogram are updated where things happen: a run ends
// (runEnded), a batch of events is applied (applied), a change is stored
// on the change feed (changePublished). Everything read from JetStream -
// consumer lag, leases, workers - is read when Prometheus scrapes, by
// stateCollector, under a timeout. The number of runs not yet ended comes
// from runIndex, which follows the runs bucket with one watcher.

// runDurationBuckets span a one-document re-fetch (under a second) to a
// full sync of a large source (hours).
var runDurationBuckets = []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400}

// metrics are the manager's Prometheus metrics. Its methods are the hooks
// the rest of the package calls; they never block.
type metrics struct {
	runsFinished  *prometheus.CounterVec
	runDuration   *prometheus.HistogramVec
	eventsApplied *prometheus.CounterVec
	changes       *prometheus.CounterVec
	readErrors    *prometheus.CounterVec
	runs          *runIndex
	state         *stateCollector
}

func newMetrics(timeout time.Duration) *metrics {
	x := &metrics{
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_runs_finished_total",
			Help: "Runs that ended, by connector and final status (completed, failed, cancelled).",
		}, []string{"connector", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tributary_run_duration_seconds",
			Help:    "Time from a run's creation (trigger) to its end, queueing included, by connector and final status.",
			Buckets: runDurationBuckets,
		}, []string{"connector", "status"}),
		eventsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_events_applied_total",
			Help: "Run events the manager applied, by event type (redeliveries after a manager restart count again).",
		}, []string{"type"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_document_changes_total",
			Help: "Document changes the manager stored on the change feed, by connector of the source and change type (created, updated, deleted).",
		}, []string{"connector", "type"}),
		readErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_metrics_read_errors_total",
			Help: "JetStream reads that failed or timed out while serving a scrape, by read; the metrics that read feeds are missing from that scrape.",
		}, []string{"read"}),
		runs: newRunIndex(),
	}
	x.state = &stateCollector{timeout: timeout, runs: x.runs, errors: x.readErrors}
	return x
}

func (x *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{x.runsFinished, x.runDuration, x.eventsApplied, x.changes, x.readErrors, x.state}
}

// register registers every metric on r, or none.
func (x *metrics) register(r prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range x.collectors() {
		if err := r.Register(c); err != nil {
			for _, d := range done {
				r.Unregister(d)
			}
			return fmt.Errorf("manager: register metrics: %w", err)
		}
		done = append(done, c)
	}
	return nil
}

func (x *metrics) unregister(r prometheus.Registerer) {
	for _, c := range x.collectors() {
		r.Unregister(c)
	}
}

// runEnded counts a run that just became terminal (once per run: callers
// call it only for the write that ended it).
func (x *metrics) runEnded(run *state.Run) {
	status := string(run.Status)
	x.runsFinished.WithLabelValues(run.Connector, status).Inc()
	end := time.Now()
	if run.FinishedAt != nil {
		end = *run.FinishedAt
	}
	// FinishedAt may come from a worker's clock: never observe a negative.
	x.runDuration.WithLabelValues(run.Connector, status).Observe(max(end.Sub(run.CreatedAt).Seconds(), 0))
}

// applied counts the events of a batch that was applied.
func (x *metrics) applied(byRun map[string][]applied) {
	for _, evs := range byRun {
		for _, a := range evs {
			x.eventsApplied.WithLabelValues(string(a.env.Type)).Inc()
		}
	}
}

// changePublished counts a change the change feed stored; a republish
// JetStream de-duplicated (dup) is not a new change.
func (x *metrics) changePublished(connector string, t events.Type, dup bool) {
	if !dup {
		x.changes.WithLabelValues(connector, strings.TrimPrefix(string(t), "change.")).Inc()
	}
}

// start lets the scrape-time collector and the run index read the store
// (until then they report nothing) and starts following the runs bucket.
func (x *metrics) start(js jetstream.JetStream, store *state.Store, log *zap.Logger) {
	x.state.src.Store(&scrapeSource{js: js, store: store})
	x.runs.start(store.Runs.KV(), log)
}

func (x *metrics) stop() { x.runs.stop() }

// runIndex knows the runs that have not ended, by following the runs
// bucket with one KV watcher: its initial values (the whole bucket, read
// once at start) and then every write, whatever wrote it. It keeps only
// the runs not yet ended, so a scrape costs a pass over those, never a
// list of the bucket, which keeps every run ever made.
type runIndex struct {
	mu         sync.Mutex
	ready      bool
	active     map[string]activeRun // run id -> what it is
	connectors map[string]struct{}  // every connector seen, to report zeros

	cancel context.CancelFunc
	done   chan struct{}
}

type activeRun struct{ connector, status string }

func newRunIndex() *runIndex {
	return &runIndex{active: map[string]activeRun{}, connectors: map[string]struct{}{}}
}

// runStatus is what the index decodes of a run record.
type runStatus struct {
	Connector string          `json:"connector"`
	Status    state.RunStatus `json:"status"`
}

func (x *runIndex) start(kv jetstream.KeyValue, log *zap.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel, x.done = cancel, make(chan struct{})
	go func() {
		defer close(x.done)
		for {
			err := x.follow(ctx, kv)
			if ctx.Err() != nil {
				return
			}
			log.Warn("metrics: following the runs bucket; starting again", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

func (x *runIndex) stop() {
	if x.cancel != nil {
		x.cancel()
		<-x.done
	}
}

// follow watches the whole bucket: the initial values build a fresh index,
// which replaces the one in use once they are all read; later writes
// update it in place. It returns when the watcher ends.
func (x *runIndex) follow(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch runs: %w", err)
	}
	defer func() { _ = w.Stop() }()
	fresh, connectors := map[string]activeRun{}, map[string]struct{}{}
	live := false
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return ctx.Err()
		case u, ok := <-w.Updates():
			if !ok {
				return errors.New("runs watcher closed")
			}
			e = u
		}
		if e == nil {
			if !live {
				x.mu.Lock()
				x.active, x.ready = fresh, true
				for c := range connectors {
					x.connectors[c] = struct{}{}
				}
				x.mu.Unlock()
				live = true
			}
			continue
		}
		if !live {
			applyRunEntry(fresh, connectors, e)
			continue
		}
		x.mu.Lock()
		applyRunEntry(x.active, x.connectors, e)
		x.mu.Unlock()
	}
}

func applyRunEntry(active map[string]activeRun, connectors map[string]struct{}, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(active, e.Key())
		return
	}
	var r runStatus
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.Status.Terminal() {
		delete(active, e.Key())
		return
	}
	active[e.Key()] = activeRun{connector: r.Connector, status: string(r.Status)}
	connectors[r.Connector] = struct{}{}
}

// counts returns the number of runs not ended by connector and status,
// with a zero for the queued and running runs of every connector seen;
// ok is false until the bucket's initial values are read.
func (x *runIndex) counts() (map[activeRun]int, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready {
		return nil, false
	}
	out := make(map[activeRun]int, 2*len(x.connectors))
	for c := range x.connectors {
		out[activeRun{c, string(state.RunQueued)}] = 0
		out[activeRun{c, string(state.RunRunning)}] = 0
	}
	for _, r := range x.active {
		out[r]++
	}
	return out, true
}

// scrapeSource is what the collector reads, once the manager started.
type scrapeSource struct {
	js    jetstream.JetStream
	store *state.Store
}

var (
	descActiveRuns = prometheus.NewDesc("tributary_active_runs",
		"Runs not yet ended, by connector and status (queued, running).", []string{"connector", "status"}, nil)
	descPending = prometheus.NewDesc("tributary_consumer_pending_messages",
		"Messages of the stream not yet delivered to the durable consumer: the manager's applier on TRIBUTARY_EVENTS, every durable change-feed consumer on TRIBUTARY_CHANGES.",
		[]string{"stream", "consumer"}, nil)
	descAckPending = prometheus.NewDesc("tributary_consumer_ack_pending_messages",
		"Messages delivered to the durable consumer and not yet acknowledged.", []string{"stream", "consumer"}, nil)
	descLeases = prometheus.NewDesc("tributary_source_leases",
		"Source leases held by workers: runs being executed now.", nil, nil)
	descWorkers = prometheus.NewDesc("tributary_workers",
		"Live workers (records in the workers bucket, which expire without heartbeats).", nil, nil)
)

// stateCollector reads what a scrape reports of JetStream, every read at
// once and each under one timeout, so a scrape never waits long on an
// unreachable server: a read that fails is counted in readErrors and its
// metrics are left out of that scrape.
type stateCollector struct {
	timeout time.Duration
	src     atomic.Pointer[scrapeSource]
	runs    *runIndex
	errors  *prometheus.CounterVec
}

// Describe sends the descriptors of the scrape-time metrics.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActiveRuns, descPending, descAckPending, descLeases, descWorkers} {
		ch <- d
	}
}

// Collect reads JetStream and sends the scrape-time metrics.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	src := c.src.Load()
	if src == nil {
		return // not started
	}
	if counts, ok := c.runs.counts(); ok {
		for r, n := range counts {
			ch <- prometheus.MustNewConstMetric(descActiveRuns, prometheus.GaugeValue, float64(n), r.connector, r.status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	reads := map[string]func(context.Context) ([]prometheus.Metric, error){
		"applier_consumer": src.applierLag,
		"change_consumers": src.changeFeedLag,
		"leases":           src.leases,
		"workers":          src.workers,
	}
	var wg sync.WaitGroup
	for name, read := range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := read(ctx)
			if err != nil {
				c.errors.WithLabelValues(name).Inc()
				return
			}
			for _, m := range ms {
				ch <- m
			}
		}()
	}
	wg.Wait()
}

func lagMetrics(info *jetstream.ConsumerInfo) []prometheus.Metric {
	return []prometheus.Metric{
		prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(info.NumPending), info.Stream, info.Name),
		prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(info.NumAckPending), info.Stream, info.Name),
	}
}

// applierLag is how far the manager's applier is behind the events stream.
func (s *scrapeSource) applierLag(ctx context.Context) ([]prometheus.Metric, error) {
	cons, err := s.js.Consumer(ctx, events.StreamEvents, ApplierConsumer)
	if err != nil {
		return nil, err
	}
	// Consumer read the consumer's info: no second request.
	return lagMetrics(cons.CachedInfo()), nil
}

// changeFeedLag is how far each durable change-feed consumer (an indexer)
// is behind the change feed. Ephemeral consumers are left out: their
// names are random, and would make a new series each.
func (s *scrapeSource) changeFeedLag(ctx context.Context) ([]prometheus.Metric, error) {
	st, err := s.js.Stream(ctx, events.StreamChanges)
	if err != nil {
		return nil, err
	}
	l := st.ListConsumers(ctx)
	var out []prometheus.Metric
	for info := range l.Info() {
		if info.Config.Durable != "" {
			out = append(out, lagMetrics(info)...)
		}
	}
	if err := l.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// leases counts the source leases, not the manager's own lock (LockKey),
// which lives in the same bucket.
func (s *scrapeSource) leases(ctx context.Context) ([]prometheus.Metric, error) {
	n := 0
	err := s.store.Leases.EachKey(ctx, ">", func(key string) error {
		if key != LockKey {
			n++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []prometheus.Metric{prometheus.MustNewConstMetric(descLeases, prometheus.GaugeValue, float64(n))}, nil
}

func (s *scrapeSource) workers(ctx context.Context) ([]prometheus.Metric, error) {
	n := 0
	if err := s.store.Workers.EachKey(ctx, ">", func(string) error { n++; return nil }); err != nil {
		return nil, err
	}
	return []prometheus.Metric{prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(n))}, nil
}
