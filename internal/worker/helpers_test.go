package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// waitTimeout bounds every wait on the bus; generous for -race on a busy machine.
const waitTimeout = 10 * time.Second

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	testutil.Eventually(t, timeout, cond, what)
}

// receive waits for a value on ch.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
	}
	var zero T
	return zero
}

// harness is an embedded NATS with a started manager.
type harness struct {
	t   *testing.T
	ctx context.Context
	n   *testutil.NATS
	m   *manager.Manager
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	n := testutil.StartNATS(t)
	h := &harness{t: t, ctx: context.Background(), n: n}
	nc, _ := n.Connect(t)
	m, err := manager.New(nc, manager.Config{Logger: zaptest.NewLogger(t).Named("manager")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(h.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	h.m = m
	return h
}

// startWorker starts a worker over a connection of its own. Its logs go to
// the test and to the returned observer.
func (h *harness) startWorker(cfg Config) (*Worker, *observer.ObservedLogs) {
	h.t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	if cfg.ID == "" {
		cfg.ID = fmt.Sprintf("w%d", time.Now().UnixNano())
	}
	cfg.Logger = zap.New(zapcore.NewTee(zaptest.NewLogger(h.t).Core(), core)).Named(cfg.ID)
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 2 * time.Second
	}
	if cfg.ProgressInterval == 0 {
		cfg.ProgressInterval = 20 * time.Millisecond
	}
	nc, _ := h.n.Connect(h.t)
	w, err := New(nc, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := w.Start(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w, logs
}

// register stores a connector manifest as a worker would, without a worker.
func (h *harness) register(c connector.Connector) {
	h.t.Helper()
	raw, err := json.Marshal(c.Manifest())
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.m.Store().Connectors.Put(h.ctx, c.Manifest().Name, &state.ConnectorInfo{
		Manifest: raw, RegisteredAt: time.Now().UTC(), WorkerID: "nobody",
	}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) source(connectorName, config string) *state.Source {
	h.t.Helper()
	src, err := h.m.CreateSource(h.ctx, manager.CreateSource{Name: "src", Connector: connectorName, Config: json.RawMessage(config)})
	if err != nil {
		h.t.Fatalf("create source: %v", err)
	}
	return src
}

func (h *harness) trigger(sourceID string) *state.Run {
	h.t.Helper()
	run, err := h.m.TriggerSync(h.ctx, sourceID, "", manager.TriggerManual)
	if err != nil {
		h.t.Fatalf("trigger: %v", err)
	}
	return run
}

// waitTrigger triggers a sync once the source's previous run has released it.
func (h *harness) waitTrigger(sourceID string) *state.Run {
	h.t.Helper()
	var run *state.Run
	eventually(h.t, waitTimeout, func() bool {
		var err error
		run, err = h.m.TriggerSync(h.ctx, sourceID, "", manager.TriggerManual)
		var ce *manager.ConflictError
		if errors.As(err, &ce) {
			return false
		}
		if err != nil {
			h.t.Fatalf("trigger: %v", err)
		}
		return true
	}, "the source to be free")
	return run
}

func (h *harness) waitRun(id string, what string, cond func(*state.Run) bool) *state.Run {
	h.t.Helper()
	var r *state.Run
	eventually(h.t, waitTimeout, func() bool {
		var err error
		r, err = h.m.GetRun(h.ctx, id)
		return err == nil && cond(r)
	}, what)
	return r
}

func (h *harness) waitStatus(id string, want state.RunStatus) *state.Run {
	h.t.Helper()
	return h.waitRun(id, "run "+string(want), func(r *state.Run) bool { return r.Status == want })
}

func (h *harness) checkpoint(sourceID string) *state.Checkpoint {
	h.t.Helper()
	cp, _, err := h.m.Store().Checkpoints.Get(h.ctx, sourceID)
	if err != nil {
		return nil
	}
	return cp
}

func (h *harness) leaseHeld(sourceID string) bool {
	h.t.Helper()
	_, _, err := h.m.Store().Leases.Get(h.ctx, sourceID)
	return err == nil
}

func (h *harness) syncRequests() uint64 {
	h.t.Helper()
	st, err := h.m.JetStream().Stream(h.ctx, events.StreamSync)
	if err != nil {
		h.t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

// stored is one event as the events stream holds it.
type stored struct {
	seq uint64 // stream sequence
	env *events.Envelope
}

// runEvents returns the run's events in stream order.
func (h *harness) runEvents(sourceID, runID string) []stored {
	h.t.Helper()
	return streamEvents(h.t, h.m.JetStream(), events.RunEventSubjects(sourceID, runID))
}

func streamEvents(t testing.TB, js jetstream.JetStream, filter string) []stored {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		env, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("stored event %d: %v", m.Sequence, err)
		}
		out = append(out, stored{seq: m.Sequence, env: env})
		seq = m.Sequence + 1
	}
	return out
}

func ofType(evs []stored, typ events.Type) []stored {
	var out []stored
	for _, e := range evs {
		if e.env.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// --- fake connectors ---

type pagerConfig struct {
	N       int `json:"n"`
	K       int `json:"k"`
	Deleted int `json:"deleted"`
	Errors  int `json:"errors"`
}

type position struct {
	Pos int `json:"pos"`
}

// pager emits n documents doc-0…doc-(n-1), saves {"pos":i} after every k,
// then reports deleted and errored documents and completes with {"pos":n}.
// A resumed attempt continues after its checkpoint. With pauseAt set, a
// first attempt stops after saving {"pos":pauseAt}, signals paused, and
// waits for resume (or its context).
type pager struct {
	name    string
	pauseAt int
	paused  chan struct{}
	resume  chan struct{}

	mu   sync.Mutex
	reqs []connector.SyncRequest
}

func newPager(name string) *pager {
	return &pager{name: name, paused: make(chan struct{}, 1), resume: make(chan struct{})}
}

func (p *pager) Manifest() connector.Manifest {
	return connector.Manifest{
		Name: p.name, Version: "1.0.0",
		SyncModes: []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{
			"n":{"type":"integer","minimum":0},"k":{"type":"integer","minimum":1},
			"deleted":{"type":"integer"},"errors":{"type":"integer"}},
			"required":["n","k"],"additionalProperties":false}`),
	}
}

func (p *pager) requests() []connector.SyncRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]connector.SyncRequest(nil), p.reqs...)
}

func (p *pager) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	p.mu.Lock()
	p.reqs = append(p.reqs, *req)
	p.mu.Unlock()
	var cfg pagerConfig
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	start := 0
	if req.Resumed {
		var cp position
		if _, err := req.DecodeCheckpoint(&cp); err != nil {
			return err
		}
		start = cp.Pos
	}
	for i := start; i < cfg.N; i++ {
		sc.IncrementScanned(1)
		if err := sc.Emit(ctx, connector.Document{ExternalID: fmt.Sprintf("doc-%d", i), Title: "t"}); err != nil {
			return err
		}
		if pos := i + 1; pos%cfg.K == 0 && pos < cfg.N {
			if err := sc.SaveCheckpoint(ctx, position{Pos: pos}); err != nil {
				return err
			}
			if pos == p.pauseAt && !req.Resumed {
				p.paused <- struct{}{}
				select {
				case <-p.resume:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	for i := 0; i < cfg.Deleted; i++ {
		if err := sc.EmitDeleted(ctx, fmt.Sprintf("old-%d", i)); err != nil {
			return err
		}
	}
	for i := 0; i < cfg.Errors; i++ {
		if err := sc.EmitError(ctx, fmt.Sprintf("bad-%d", i), errors.New("unreadable")); err != nil {
			return err
		}
	}
	return sc.Complete(ctx, position{Pos: cfg.N})
}

// blocker signals that it started, then blocks until its context ends and
// reports why it ended.
type blocker struct {
	name    string
	started chan *connector.SyncRequest
	ended   chan error // context.Cause when Sync returned
}

func newBlocker(name string) *blocker {
	return &blocker{name: name, started: make(chan *connector.SyncRequest, 8), ended: make(chan error, 8)}
}

func (b *blocker) Manifest() connector.Manifest {
	return connector.Manifest{Name: b.name, Version: "1.0.0"}
}

func (b *blocker) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	sc.IncrementScanned(1)
	if err := sc.Emit(ctx, connector.Document{ExternalID: "only", Title: "t"}); err != nil {
		return err
	}
	b.started <- req
	<-ctx.Done()
	b.ended <- context.Cause(ctx)
	return ctx.Err()
}
