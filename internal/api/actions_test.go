package api_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/connectors/builtin"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/internal/worker"
)

// startActions starts a manager with cfg and a worker hosting the built-in
// connectors and counter (which has neither actions nor a connection test).
func startActions(t *testing.T, cfg manager.Config) (*env, *worker.Worker) {
	t.Helper()
	n := testutil.StartNATS(t)
	log := zaptest.NewLogger(t)
	cfg.Logger = log
	m, err := manager.New(n.Conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	c := &counter{}
	wnc, _ := n.Connect(t)
	w, err := worker.New(wnc, worker.Config{Connectors: append(builtin.All(), c), Logger: log, HeartbeatTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	srv := httptest.NewServer(api.New(m, log))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, c: c, m: m}, w
}

func (e *env) createSource(body string) string {
	e.t.Helper()
	code, src := e.do("POST", "/v1/sources", body)
	if code != 201 {
		e.t.Fatalf("create source %s: %d %v", body, code, src)
	}
	return src["id"].(string)
}

// details returns the "loc:type" of each detail of a 422.
func details(t *testing.T, code int, body map[string]any) []string {
	t.Helper()
	if code != 422 {
		t.Fatalf("got %d %v, want 422", code, body)
	}
	var out []string
	for _, d := range body["detail"].([]any) {
		d := d.(map[string]any)
		var loc []string
		for _, l := range d["loc"].([]any) {
			loc = append(loc, l.(string))
		}
		out = append(out, strings.Join(loc, ".")+":"+d["type"].(string))
	}
	return out
}

func TestActions(t *testing.T) {
	e, w := startActions(t, manager.Config{ActionTimeout: 300 * time.Millisecond})
	id := e.createSource(`{"name":"s","connector":"synthetic","config":{"count":3},"credentials":{"token":"s3cret"}}`)
	path := "/v1/sources/" + id + "/actions/"

	code, body := e.do("POST", path+"echo", `{"params":{"message":"hello","data":{"k":[1,2]}}}`)
	if code != 200 || body["action"] != "echo" || body["source_id"] != id || body["worker_id"] != w.ID() {
		t.Fatalf("echo: %d %v", code, body)
	}
	res := body["result"].(map[string]any)
	if res["params"].(map[string]any)["message"] != "hello" || res["count"].(float64) != 3 || res["has_credentials"] != true {
		t.Fatalf("echo result: %v", res)
	}
	if b, _ := json.Marshal(body); strings.Contains(string(b), "s3cret") {
		t.Fatalf("credentials in the answer: %s", b)
	}

	// One detail per violation.
	code, body = e.do("POST", path+"echo", `{"params":{"times":"2","loud":"no","extra":1}}`)
	got := details(t, code, body)
	want := []string{"body.params.message:missing", "body.params.times:int_type", "body.params.loud:bool_type", "body.params.extra:extra_forbidden"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("details %v, want %v", got, want)
	}
	for req, want := range map[string]string{
		``:                    "body.params.message:missing",
		`{}`:                  "body.params.message:missing",
		`{"params":null}`:     "body.params.message:missing",
		`{"params":[1]}`:      "body.params:dict_type",
		`{"params":{},"x":1}`: "body.x:extra_forbidden",
	} {
		code, body := e.do("POST", path+"echo", req)
		if got := details(t, code, body); len(got) != 1 || got[0] != want {
			t.Errorf("%q: %v, want %s", req, got, want)
		}
	}
	if code, body := e.do("POST", path+"echo", `{"params":`); code != 400 || body["code"] != "bad_request" {
		t.Fatalf("malformed: %d %v", code, body)
	}

	if code, body := e.do("POST", path+"nope", `{}`); code != 404 || body["code"] != "action_not_found" {
		t.Fatalf("unknown action: %d %v", code, body)
	}
	if code, body := e.do("POST", "/v1/sources/nope/actions/echo", `{}`); code != 404 || body["code"] != "not_found" {
		t.Fatalf("unknown source: %d %v", code, body)
	}

	// The connector's error: 422 action_failed with its message.
	code, body = e.do("POST", path+"fail", `{"params":{"message":"quota exceeded"}}`)
	if got := details(t, code, body); len(got) != 1 || got[0] != "action.fail:action_failed" ||
		body["detail"].([]any)[0].(map[string]any)["msg"] != "quota exceeded" {
		t.Fatalf("fail: %d %v", code, body)
	}

	// Slower than the action timeout: 504.
	code, body = e.do("POST", path+"sleep", `{"params":{"duration":"1m"}}`)
	if code != 504 || body["code"] != "timeout" {
		t.Fatalf("slow: %d %v", code, body)
	}
	if code, body := e.do("GET", path+"echo", ""); code != 405 {
		t.Fatalf("GET: %d %v", code, body)
	}

	// No live worker: 409.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := e.do("POST", path+"echo", `{"params":{"message":"x"}}`); code != 409 || body["code"] != "no_worker" {
		t.Fatalf("no worker: %d %v", code, body)
	}
	if code, body := e.do("POST", "/v1/sources/"+id+"/test-connection", ""); code != 409 || body["code"] != "no_worker" {
		t.Fatalf("no worker: %d %v", code, body)
	}
}

func TestTestConnectionAPI(t *testing.T) {
	e, w := startActions(t, manager.Config{})
	dir := t.TempDir()
	ok := e.createSource(`{"name":"ok","connector":"filesystem","config":{"root":` + quote(dir) + `}}`)
	code, body := e.do("POST", "/v1/sources/"+ok+"/test-connection", "")
	if code != 200 || body["ok"] != true || body["worker_id"] != w.ID() || body["source_id"] != ok || body["message"] != nil {
		t.Fatalf("ok: %d %v", code, body)
	}
	missing := filepath.Join(dir, "missing")
	bad := e.createSource(`{"name":"bad","connector":"filesystem","config":{"root":` + quote(missing) + `}}`)
	code, body = e.do("POST", "/v1/sources/"+bad+"/test-connection", "")
	if code != 200 || body["ok"] != false || body["message"] != "root "+missing+" does not exist" {
		t.Fatalf("failing: %d %v", code, body)
	}
	cnt := e.createSource(`{"name":"c","connector":"counter","config":{"count":1}}`)
	if code, body := e.do("POST", "/v1/sources/"+cnt+"/test-connection", ""); code != 409 || body["code"] != "not_supported" {
		t.Fatalf("not supported: %d %v", code, body)
	}
	if code, body := e.do("POST", "/v1/sources/"+cnt+"/actions/anything", ""); code != 404 || body["code"] != "action_not_found" {
		t.Fatalf("connector without actions: %d %v", code, body)
	}
	if code, body := e.do("POST", "/v1/sources/nope/test-connection", ""); code != 404 || body["code"] != "not_found" {
		t.Fatalf("unknown source: %d %v", code, body)
	}
	// The connectors list says who can do what.
	_, list := e.do("GET", "/v1/connectors", "")
	for _, item := range list["items"].([]any) {
		c := item.(map[string]any)
		switch c["name"] {
		case "synthetic":
			if c["connection_test"] != true || len(c["actions"].([]any)) != 3 {
				t.Errorf("synthetic: %v", c)
			}
		case "filesystem":
			if c["connection_test"] != true || c["actions"] != nil {
				t.Errorf("filesystem: %v", c)
			}
		case "counter":
			if c["connection_test"] != nil || c["actions"] != nil {
				t.Errorf("counter: %v", c)
			}
		}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
