package manager

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tributary-sync/tributary/internal/connectors/builtin"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// tool is a test connector whose actions misbehave: one panics, one
// ignores its context until release is closed.
type tool struct {
	release chan struct{}
}

func (*tool) Manifest() connector.Manifest {
	return connector.Manifest{Name: "tool", Version: "1.0.0", Actions: []connector.ActionDefinition{
		{Name: "panic"}, {Name: "stuck"}, {Name: "big"},
	}}
}

func (*tool) Sync(context.Context, *connector.SyncRequest, connector.SyncContext) error { return nil }

func (t *tool) ExecuteAction(_ context.Context, req *connector.ActionRequest) (any, error) {
	switch req.Action {
	case "panic":
		panic("boom")
	case "stuck":
		<-t.release
		return "late", nil
	case "big":
		return strings.Repeat("x", 9<<20), nil // over the embedded server's 8 MiB
	}
	return nil, nil
}

func (*tool) TestConnection(context.Context, *connector.ActionRequest) error { panic("test boom") }

// startWorker starts a worker hosting the built-in connectors and tool,
// over a connection of its own, logging to log (zaptest when nil).
func (e *env) startWorker(log *zap.Logger) *worker.Worker {
	e.t.Helper()
	if log == nil {
		log = zaptest.NewLogger(e.t)
	}
	tl := &tool{release: make(chan struct{})}
	e.t.Cleanup(func() { close(tl.release) })
	nc, _ := e.n.Connect(e.t)
	w, err := worker.New(nc, worker.Config{Connectors: append(builtin.All(), tl), Logger: log, HeartbeatTimeout: 2 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	return w
}

func (e *env) source(conn, config, creds string) *state.Source {
	e.t.Helper()
	in := CreateSource{Name: conn, Connector: conn, Config: json.RawMessage(config)}
	if creds != "" {
		in.Credentials = json.RawMessage(creds)
	}
	src, err := e.m.CreateSource(e.ctx, in)
	if err != nil {
		e.t.Fatalf("create source: %v", err)
	}
	return src
}

func wantParamDetails(t *testing.T, err error, want ...string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a validation error", err)
	}
	got := make([]string, 0, len(ve.Details))
	for _, d := range ve.Details {
		parts := make([]string, 0, len(d.Loc))
		for _, l := range d.Loc {
			s, _ := l.(string)
			parts = append(parts, s)
		}
		got = append(got, strings.Join(parts, ".")+":"+d.Type)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("details %v, want %v", got, want)
	}
}

func TestExecuteAction(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := newEnv(t, Config{Logger: zap.New(core)})
	w := e.startWorker(zap.New(core))
	src := e.source("synthetic", `{"count":7}`, `{"token":"s3cret-token"}`)

	res, err := e.m.ExecuteAction(e.ctx, src.ID, "echo", json.RawMessage(`{"message":"hi","times":2.0,"data":{"a":[1]},"tags":["x"],"loud":true,"ratio":0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	var echo struct {
		Params         map[string]any `json:"params"`
		SourceID       string         `json:"source_id"`
		Count          int            `json:"count"`
		HasCredentials bool           `json:"has_credentials"`
	}
	if err := json.Unmarshal(res.Result, &echo); err != nil {
		t.Fatal(err)
	}
	if res.WorkerID != w.ID() || res.Action != "echo" || echo.Params["message"] != "hi" || echo.SourceID != src.ID || echo.Count != 7 || !echo.HasCredentials {
		t.Fatalf("echo: %+v %s", res, res.Result)
	}

	// Every violation is one detail, in declared order, then unknown
	// params by name.
	_, err = e.m.ExecuteAction(e.ctx, src.ID, "echo", json.RawMessage(`{"zzz":1,"times":1.5,"ratio":"x","loud":"yes","data":[],"tags":{},"bogus":null}`))
	wantParamDetails(t, err, "body.params.message:missing", "body.params.times:int_type", "body.params.ratio:number_type",
		"body.params.loud:bool_type", "body.params.data:dict_type", "body.params.tags:list_type",
		"body.params.bogus:extra_forbidden", "body.params.zzz:extra_forbidden")
	_, err = e.m.ExecuteAction(e.ctx, src.ID, "echo", json.RawMessage(`[1]`))
	wantParamDetails(t, err, "body.params:dict_type")
	_, err = e.m.ExecuteAction(e.ctx, src.ID, "echo", nil)
	wantParamDetails(t, err, "body.params.message:missing")
	_, err = e.m.ExecuteAction(e.ctx, src.ID, "sleep", json.RawMessage(`{"duration":5}`))
	wantParamDetails(t, err, "body.params.duration:string_type")

	// No params at all, for an action without required ones.
	if _, err := e.m.ExecuteAction(e.ctx, src.ID, "fail", nil); err == nil {
		t.Fatal("fail succeeded")
	}

	var nf *NotFoundError
	if _, err := e.m.ExecuteAction(e.ctx, src.ID, "nope", nil); !errors.As(err, &nf) || nf.Code != CodeActionNotFound {
		t.Fatalf("unknown action: %v", err)
	}
	if _, err := e.m.ExecuteAction(e.ctx, "NOSUCHSOURCE", "echo", nil); !errors.As(err, &nf) || nf.Code != "" || nf.Kind != "source" {
		t.Fatalf("unknown source: %v", err)
	}

	// The credentials went to the worker and nowhere else.
	for _, entry := range logs.All() {
		if b, _ := json.Marshal(entry.ContextMap()); strings.Contains(entry.Message+string(b), "s3cret") {
			t.Fatalf("credentials logged: %s %s", entry.Message, b)
		}
	}
}

func TestActionFailures(t *testing.T) {
	// Long enough for the big answer on a busy machine; sleep and stuck wait it out.
	e := newEnv(t, Config{ActionTimeout: 2 * time.Second})
	e.startWorker(nil)
	src := e.source("synthetic", `{"count":1}`, "")

	_, err := e.m.ExecuteAction(e.ctx, src.ID, "fail", json.RawMessage(`{"message":"the remote said no"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Details) != 1 || ve.Details[0].Type != "action_failed" || ve.Details[0].Msg != "the remote said no" {
		t.Fatalf("connector error: %v", err)
	}

	// The action honours its context: the worker answers "timeout".
	start := time.Now()
	_, err = e.m.ExecuteAction(e.ctx, src.ID, "sleep", json.RawMessage(`{"duration":"1m"}`))
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("slow action: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("timeout took %s", took)
	}
	if res, err := e.m.ExecuteAction(e.ctx, src.ID, "sleep", json.RawMessage(`{"duration":"1ms"}`)); err != nil || string(res.Result) != `{"slept":"1ms"}` {
		t.Fatalf("short sleep: %v %v", res, err)
	}

	// A panic is the action's failure, and the worker goes on; an action
	// that ignores its context is answered at its timeout all the same; a
	// result too large for a message is a failure.
	tl := e.source("tool", `{}`, "")
	if _, err := e.m.ExecuteAction(e.ctx, tl.ID, "panic", nil); !errors.As(err, &ve) || ve.Details[0].Type != "action_failed" || !strings.Contains(ve.Details[0].Msg, "boom") {
		t.Fatalf("panic: %v", err)
	}
	if _, err := e.m.ExecuteAction(e.ctx, tl.ID, "stuck", nil); !errors.As(err, &te) {
		t.Fatalf("stuck: %v", err)
	}
	if _, err := e.m.ExecuteAction(e.ctx, tl.ID, "big", nil); !errors.As(err, &ve) || !strings.Contains(ve.Details[0].Msg, "message limit") {
		t.Fatalf("big: %v", err)
	}
	if _, err := e.m.TestConnection(e.ctx, tl.ID); !errors.As(err, &ve) || ve.Details[0].Loc[1] != "test_connection" {
		t.Fatalf("test connection panic: %v", err)
	}
	if _, err := e.m.ExecuteAction(e.ctx, src.ID, "echo", json.RawMessage(`{"message":"still here"}`)); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
}

// A worker that takes the request and never answers: the manager's own
// timeout.
func TestActionNoAnswer(t *testing.T) {
	e := newEnv(t, Config{ActionTimeout: 200 * time.Millisecond})
	e.register(connector.Manifest{Name: "silent", Version: "1.0.0", Actions: []connector.ActionDefinition{{Name: "wait"}}})
	src := e.source("silent", `{}`, "")

	var ce *ConflictError
	if _, err := e.m.ExecuteAction(e.ctx, src.ID, "wait", nil); !errors.As(err, &ce) || ce.Code != CodeNoWorker {
		t.Fatalf("no worker: %v", err)
	}
	nc, _ := e.n.Connect(t)
	got := make(chan *nats.Msg, 1)
	if _, err := nc.ChanSubscribe(events.ActionSubject("silent", "wait"), got); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var te *TimeoutError
	if _, err := e.m.ExecuteAction(e.ctx, src.ID, "wait", nil); !errors.As(err, &te) {
		t.Fatalf("silent worker: %v", err)
	}
	var req events.ActionRequest
	if err := json.Unmarshal((<-got).Data, &req); err != nil || req.SourceID != src.ID || req.Action != "wait" || req.TimeoutMS != 200 {
		t.Fatalf("request: %+v %v", req, err)
	}
	// The connector cannot test connections.
	if _, err := e.m.TestConnection(e.ctx, src.ID); !errors.As(err, &ce) || ce.Code != CodeNotSupported {
		t.Fatalf("test connection: %v", err)
	}
}

func TestActionNoWorkerAfterStop(t *testing.T) {
	e := newEnv(t, Config{})
	w := e.startWorker(nil)
	src := e.source("synthetic", `{"count":1}`, "")
	if _, err := e.m.TestConnection(e.ctx, src.ID); err != nil {
		t.Fatal(err)
	}

	// An action running when the worker stops is cancelled at the end of
	// the grace period: the answer says so.
	slept := make(chan error, 1)
	go func() {
		_, err := e.m.ExecuteAction(e.ctx, src.ID, "sleep", json.RawMessage(`{"duration":"1m"}`))
		slept <- err
	}()
	nc, _ := e.n.Connect(t)
	eventually(t, waitTimeout, func() bool {
		subj, _ := micro.ControlSubject(micro.StatsVerb, events.ActionServiceName, "")
		msg, err := nc.Request(subj, nil, time.Second)
		if err != nil {
			return false
		}
		var st micro.Stats
		if err := json.Unmarshal(msg.Data, &st); err != nil {
			return false
		}
		for _, ep := range st.Endpoints {
			if ep.Subject == events.ActionSubject("synthetic", "sleep") && ep.NumRequests == 1 {
				return true
			}
		}
		return false
	}, "the worker to take the sleep request")
	ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	if err := <-slept; !errors.As(err, &ce) || ce.Code != CodeNoWorker || !strings.Contains(ce.Message, "shut down") {
		t.Fatalf("action during stop: %v", err)
	}
	if _, err := e.m.ExecuteAction(e.ctx, src.ID, "echo", json.RawMessage(`{"message":"x"}`)); !errors.As(err, &ce) || ce.Code != CodeNoWorker {
		t.Fatalf("stopped worker: %v", err)
	}
	if _, err := e.m.TestConnection(e.ctx, src.ID); !errors.As(err, &ce) || ce.Code != CodeNoWorker {
		t.Fatalf("stopped worker: %v", err)
	}
}

func TestTestConnection(t *testing.T) {
	e := newEnv(t, Config{})
	w := e.startWorker(nil)
	dir := t.TempDir()
	file := filepath.Join(dir, "file.txt")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		root, want string
		ok         bool
	}{
		{dir, "", true},
		{filepath.Join(dir, "missing"), "does not exist", false},
		{file, "is not a directory", false},
	} {
		src := e.source("filesystem", `{"root":`+string(must(json.Marshal(c.root)))+`}`, "")
		res, err := e.m.TestConnection(e.ctx, src.ID)
		if err != nil {
			t.Fatalf("%s: %v", c.root, err)
		}
		if res.OK != c.ok || !strings.Contains(res.Message, c.want) || res.WorkerID != w.ID() {
			t.Fatalf("%s: %+v", c.root, res)
		}
	}
	if res, err := e.m.TestConnection(e.ctx, e.source("synthetic", `{"count":1}`, "").ID); err != nil || !res.OK {
		t.Fatalf("synthetic: %+v %v", res, err)
	}
	var nf *NotFoundError
	if _, err := e.m.TestConnection(e.ctx, "nope"); !errors.As(err, &nf) {
		t.Fatalf("unknown source: %v", err)
	}
	// The manifest says which connectors can test a connection.
	for name, want := range map[string]bool{"filesystem": true, "synthetic": true} {
		if man, err := e.m.Connector(e.ctx, name); err != nil || man.ConnectionTest != want {
			t.Fatalf("%s manifest: %+v %v", name, man, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Each worker is a NATS micro service: PING and INFO on the discovery
// subjects find every one, with its endpoints.
func TestActionServiceDiscovery(t *testing.T) {
	e := newEnv(t, Config{})
	w1, w2 := e.startWorker(nil), e.startWorker(nil)
	nc, _ := e.n.Connect(t)

	discover := func(verb micro.Verb) [][]byte {
		t.Helper()
		subj, err := micro.ControlSubject(verb, events.ActionServiceName, "")
		if err != nil {
			t.Fatal(err)
		}
		inbox := nats.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
		if err := nc.PublishRequest(subj, inbox, nil); err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for len(out) < 2 {
			msg, err := sub.NextMsg(waitTimeout)
			if err != nil {
				t.Fatalf("%s: %d answers: %v", verb, len(out), err)
			}
			out = append(out, msg.Data)
		}
		return out
	}
	ids := map[string]bool{}
	for _, b := range discover(micro.PingVerb) {
		var p micro.Ping
		if err := json.Unmarshal(b, &p); err != nil || p.Name != events.ActionServiceName {
			t.Fatalf("ping: %s %v", b, err)
		}
		ids[p.Metadata["worker_id"]] = true
	}
	if !ids[w1.ID()] || !ids[w2.ID()] {
		t.Fatalf("ping answers from %v, want %s and %s", ids, w1.ID(), w2.ID())
	}
	for _, b := range discover(micro.InfoVerb) {
		var info micro.Info
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatal(err)
		}
		subjects := map[string]string{}
		for _, ep := range info.Endpoints {
			subjects[ep.Subject] = ep.QueueGroup
		}
		for _, s := range []string{"tributary.action.synthetic.echo", "tributary.action.synthetic.sleep", "tributary.action.synthetic.fail",
			"tributary.test_connection.synthetic", "tributary.test_connection.filesystem", "tributary.action.tool.panic",
			"tributary.action.rss.validate_feed", "tributary.test_connection.rss"} {
			if subjects[s] != events.ActionQueueGroup {
				t.Fatalf("info of %s: no endpoint %s in queue group %s: %v", info.Metadata["worker_id"], s, events.ActionQueueGroup, subjects)
			}
		}
		// The tool's three actions and connection test, and the built-ins'.
		want := 3 + 1
		for _, c := range builtin.All() {
			want += len(c.Manifest().Actions)
			if _, ok := c.(connector.ConnectionTester); ok {
				want++
			}
		}
		if len(info.Endpoints) != want {
			t.Fatalf("info: %d endpoints, want %d: %v", len(info.Endpoints), want, subjects)
		}
	}
}
