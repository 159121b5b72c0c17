package manager

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

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

// fakeManifest is the manifest a worker hosting "fake" would register.
var fakeManifest = connector.Manifest{
	Name:      "fake",
	Version:   "1.0.0",
	SyncModes: []connector.SyncMode{connector.Full, connector.Incremental},
	ConfigSchema: json.RawMessage(`{
		"type": "object",
		"properties": {
			"root":  {"type": "string", "minLength": 1},
			"depth": {"type": "integer", "minimum": 0}
		},
		"required": ["root"],
		"additionalProperties": false
	}`),
}

type env struct {
	t   *testing.T
	ctx context.Context
	n   *testutil.NATS
	m   *Manager
	js  jetstream.JetStream // a connection of its own: the "worker" side
}

// newEnv starts an embedded NATS and a started manager whose applier runs.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	n := testutil.StartNATS(t)
	e := &env{t: t, ctx: context.Background(), n: n}
	e.m = e.startManager(cfg)
	_, e.js = n.Connect(t)
	return e
}

// startManager starts one more manager over a connection of its own.
func (e *env) startManager(cfg Config) *Manager {
	e.t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(e.t)
	}
	nc, _ := e.n.Connect(e.t)
	m, err := New(nc, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

// register stores a connector manifest as a worker registering it would.
func (e *env) register(man connector.Manifest) {
	e.t.Helper()
	raw, err := json.Marshal(man)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.m.Store().Connectors.Put(e.ctx, man.Name, &state.ConnectorInfo{
		Manifest: raw, RegisteredAt: time.Now().UTC(), WorkerID: "test-worker",
	}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) createSource(name string) *state.Source {
	e.t.Helper()
	src, err := e.m.CreateSource(e.ctx, CreateSource{Name: name, Connector: fakeManifest.Name, Config: json.RawMessage(`{"root":"/data"}`)})
	if err != nil {
		e.t.Fatalf("create source: %v", err)
	}
	return src
}

func (e *env) trigger(sourceID string) *state.Run {
	e.t.Helper()
	run, err := e.m.TriggerSync(e.ctx, sourceID, "", TriggerManual)
	if err != nil {
		e.t.Fatalf("trigger sync: %v", err)
	}
	return run
}

func (e *env) run(id string) *state.Run {
	e.t.Helper()
	r, err := e.m.GetRun(e.ctx, id)
	if err != nil {
		e.t.Fatalf("get run %s: %v", id, err)
	}
	return r
}

// waitRun waits until the run record satisfies cond and returns it.
func (e *env) waitRun(id string, what string, cond func(*state.Run) bool) *state.Run {
	e.t.Helper()
	var r *state.Run
	eventually(e.t, waitTimeout, func() bool {
		var err error
		r, err = e.m.GetRun(e.ctx, id)
		return err == nil && cond(r)
	}, what)
	return r
}

// checkpoint returns the source's checkpoint record and revision, or nil.
func (e *env) checkpoint(sourceID string) (*state.Checkpoint, uint64) {
	e.t.Helper()
	cp, rev, err := e.m.Store().Checkpoints.Get(e.ctx, sourceID)
	if err != nil {
		return nil, 0
	}
	return cp, rev
}

// waitApplied waits until the applier of m has acknowledged every event in
// the events stream.
func (e *env) waitApplied(m *Manager) {
	e.t.Helper()
	eventually(e.t, waitTimeout, func() bool {
		st, err := e.js.Stream(e.ctx, events.StreamEvents)
		if err != nil {
			return false
		}
		last := st.CachedInfo().State.LastSeq
		c, err := m.JetStream().Consumer(e.ctx, events.StreamEvents, ApplierConsumer)
		if err != nil {
			return false
		}
		ci, err := c.Info(e.ctx)
		return err == nil && ci.AckFloor.Stream >= last && ci.NumAckPending == 0 && ci.NumPending == 0
	}, "the applier to acknowledge every event")
}

// attemptPub publishes events as one attempt of a worker would, over the
// env's own connection, each with its Nats-Msg-Id.
type attemptPub struct {
	e               *env
	sourceID, runID string
	attempt         int
	seq             uint64
}

func (e *env) attempt(run *state.Run, attempt int) *attemptPub {
	return &attemptPub{e: e, sourceID: run.SourceID, runID: run.ID, attempt: attempt}
}

func (p *attemptPub) pub(payload any) *events.Envelope {
	p.e.t.Helper()
	env, err := events.New(p.sourceID, p.runID, payload)
	if err != nil {
		p.e.t.Fatalf("build %T: %v", payload, err)
	}
	p.seq++
	env.Seq, env.Attempt = p.seq, p.attempt
	p.e.publishEnv(env)
	return env
}

func (e *env) publishEnv(env *events.Envelope) {
	e.t.Helper()
	msg, err := env.Msg()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(e.ctx, msg, jetstream.WithExpectStream(events.StreamEvents)); err != nil {
		e.t.Fatalf("publish %s: %v", env.Type, err)
	}
}

func doc(id string) events.Document { return events.Document{ExternalID: id, Title: "title " + id} }

// fetchAll returns every message of the events stream matching filter, in
// stream order, as delivered messages (with metadata) that the applier can
// be fed again.
func (e *env) fetchAll(filter string) []jetstream.Msg {
	e.t.Helper()
	st, err := e.js.Stream(e.ctx, events.StreamEvents)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(e.ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		e.t.Fatal(err)
	}
	want := 0
	for _, n := range info.State.Subjects {
		want += int(n)
	}
	cons, err := e.js.CreateConsumer(e.ctx, events.StreamEvents, jetstream.ConsumerConfig{
		FilterSubject: filter, AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []jetstream.Msg
	deadline := time.Now().Add(waitTimeout)
	for len(out) < want {
		if time.Now().After(deadline) {
			e.t.Fatalf("fetched %d of %d events", len(out), want)
		}
		b, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			e.t.Fatal(err)
		}
		for m := range b.Messages() {
			out = append(out, m)
		}
	}
	return out
}

// syncRequests counts the requests waiting in the work queue.
func (e *env) syncRequests() uint64 {
	e.t.Helper()
	st, err := e.js.Stream(e.ctx, events.StreamSync)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}
