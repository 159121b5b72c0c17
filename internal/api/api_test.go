package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// counter is a test connector: it emits "count" documents, then blocks until
// cancelled when "block" is set.
type counter struct {
	started atomic.Int32
}

func (c *counter) Manifest() connector.Manifest {
	return connector.Manifest{
		Name: "counter", Version: "1.0.0",
		SyncModes: []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{
			"count":{"type":"integer","minimum":0},"block":{"type":"boolean"}},
			"required":["count"],"additionalProperties":false}`),
	}
}

func (c *counter) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	c.started.Add(1)
	var cfg struct {
		Count int  `json:"count"`
		Block bool `json:"block"`
	}
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	for i := 0; i < cfg.Count; i++ {
		sc.IncrementScanned(1)
		if err := sc.Emit(ctx, connector.Document{ExternalID: fmt.Sprintf("doc-%d", i), Title: "t"}); err != nil {
			return err
		}
	}
	if err := sc.SaveCheckpoint(ctx, map[string]int{"n": cfg.Count}); err != nil {
		return err
	}
	if cfg.Block {
		<-ctx.Done()
		return ctx.Err()
	}
	return sc.Complete(ctx, map[string]int{"n": cfg.Count, "done": 1})
}

type env struct {
	t   testing.TB
	url string
	c   *counter
	m   *manager.Manager
}

func start(t testing.TB) *env {
	t.Helper()
	return startWith(t, nil)
}

// startWith is start with a metrics registry the manager registers on and
// /metrics serves; nil: no metrics.
func startWith(t testing.TB, reg *prometheus.Registry) *env {
	t.Helper()
	n := testutil.StartNATS(t)
	// A fuzz target must not log through f: stay quiet there.
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt)
	}
	cfg, opts := manager.Config{Logger: log}, []api.Option(nil)
	if reg != nil {
		cfg.Metrics, opts = reg, append(opts, api.WithMetrics(reg))
	}
	m, err := manager.New(n.Conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	c := &counter{}
	wnc, _ := n.Connect(t)
	w, err := worker.New(wnc, worker.Config{Connectors: []connector.Connector{c}, Logger: log, HeartbeatTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	})
	srv := httptest.NewServer(api.New(m, log, opts...))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, c: c, m: m}
}

func (e *env) do(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.url+path, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %q", method, path, b)
		}
	}
	return resp.StatusCode, out
}

func (e *env) waitRun(id string, want string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, run := e.do("GET", "/v1/runs/"+id, "")
		if run["status"] == want {
			return run
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("run %s: status %v, want %s: %v", id, run["status"], want, run)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSyncLifecycle(t *testing.T) {
	e := start(t)
	code, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":50},"credentials":{"token":"s3cret"}}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, src)
	}
	if _, ok := src["credentials"]; ok || src["has_credentials"] != true {
		t.Fatalf("credentials must not be returned: %v", src)
	}
	id := src["id"].(string)
	code, run := e.do("POST", "/v1/sources/"+id+"/sync", "")
	if code != 202 || run["status"] != "queued" || run["mode"] != "full" {
		t.Fatalf("sync: %d %v", code, run)
	}
	run = e.waitRun(run["id"].(string), "completed")
	if run["documents_emitted"].(float64) != 50 || run["documents_scanned"].(float64) != 50 {
		t.Fatalf("counters: %v", run)
	}
	// Second run defaults to incremental now that a checkpoint exists.
	code, run = e.do("POST", "/v1/sources/"+id+"/sync", "{}")
	if code != 202 || run["mode"] != "incremental" {
		t.Fatalf("second sync: %d %v", code, run)
	}
	e.waitRun(run["id"].(string), "completed")
}

func TestOneActiveRunAndCancel(t *testing.T) {
	e := start(t)
	_, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":3,"block":true}}`)
	id := src["id"].(string)
	_, run := e.do("POST", "/v1/sources/"+id+"/sync", `{"mode":"full"}`)
	runID := run["id"].(string)
	e.waitRun(runID, "running")
	code, body := e.do("POST", "/v1/sources/"+id+"/sync", "")
	if code != 409 || body["code"] != "run_active" || body["run_id"] != runID {
		t.Fatalf("second trigger: %d %v", code, body)
	}
	start := time.Now()
	code, _ = e.do("POST", "/v1/runs/"+runID+"/cancel", "")
	if code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	run = e.waitRun(runID, "cancelled")
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancel took %s", d)
	}
	if run["documents_emitted"].(float64) != 3 {
		t.Fatalf("documents emitted before cancel are kept: %v", run)
	}
	code, body = e.do("POST", "/v1/runs/"+runID+"/cancel", "")
	if code != 409 || body["code"] != "run_not_active" {
		t.Fatalf("cancel finished run: %d %v", code, body)
	}
	// The source is free again.
	code, _ = e.do("POST", "/v1/sources/"+id+"/sync", "")
	if code != 202 {
		t.Fatalf("sync after cancel: %d", code)
	}
}

func TestBadInput(t *testing.T) {
	e := start(t)
	_, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":1}}`)
	id := src["id"].(string)
	cases := []struct {
		method, path, body string
		status             int
		code               string // for non-422
		loc                string // first detail loc for 422
	}{
		{"POST", "/v1/sources", `{"name":`, 400, "bad_request", ""},
		{"POST", "/v1/sources", ``, 400, "bad_request", ""},
		{"POST", "/v1/sources", `{"name":"x","connector":"nope"}`, 422, "", "body.connector"},
		{"POST", "/v1/sources", `{"connector":"counter","config":{"count":1}}`, 422, "", "body.name"},
		{"POST", "/v1/sources", `{"name":"x","connector":"counter","config":{"count":"many"}}`, 422, "", "body.config.count"},
		{"POST", "/v1/sources", `{"name":"x","connector":"counter","config":{}}`, 422, "", "body.config.count"},
		{"POST", "/v1/sources", `{"name":"x","connector":"counter","config":{"count":1},"bogus":1}`, 422, "", "body.bogus"},
		{"POST", "/v1/sources", `{"name":5,"connector":"counter"}`, 422, "", "body.name"},
		{"POST", "/v1/sources", `[1,2]`, 422, "", "body"},
		{"GET", "/v1/sources/nope", ``, 404, "not_found", ""},
		{"GET", "/v1/sources/..%2f..", ``, 404, "not_found", ""},
		{"PATCH", "/v1/sources/nope", `{"name":"y"}`, 404, "not_found", ""},
		{"PATCH", "/v1/sources/" + id, `{"config":{"count":-1}}`, 422, "", "body.config.count"},
		{"PATCH", "/v1/sources/" + id, `{"config":`, 400, "bad_request", ""},
		{"DELETE", "/v1/sources/nope", ``, 404, "not_found", ""},
		{"POST", "/v1/sources/nope/sync", ``, 404, "not_found", ""},
		{"POST", "/v1/sources/" + id + "/sync", `{"mode":"sideways"}`, 422, "", "body.mode"},
		{"POST", "/v1/sources/" + id + "/sync", `{"mode":`, 400, "bad_request", ""},
		{"POST", "/v1/sources/" + id + "/cancel", ``, 409, "run_not_active", ""},
		{"GET", "/v1/runs/nope", ``, 404, "not_found", ""},
		{"POST", "/v1/runs/nope/cancel", ``, 404, "not_found", ""},
		{"GET", "/v1/runs?status=bogus", ``, 422, "", "query.status"},
		{"GET", "/v1/sources?page=0", ``, 422, "", "query.page"},
		{"GET", "/v1/nothing", ``, 404, "not_found", ""},
		{"PUT", "/v1/sources", ``, 405, "method_not_allowed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			e.t = t
			code, body := e.do(tc.method, tc.path, tc.body)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, body)
			}
			if tc.status == 422 {
				detail, _ := body["detail"].([]any)
				if len(detail) == 0 {
					t.Fatalf("422 without detail: %v", body)
				}
				d := detail[0].(map[string]any)
				var loc []string
				for _, l := range d["loc"].([]any) {
					loc = append(loc, fmt.Sprint(l))
				}
				if got := strings.Join(loc, "."); got != tc.loc {
					t.Fatalf("loc %s, want %s: %v", got, tc.loc, body)
				}
				if d["msg"] == "" || d["type"] == "" {
					t.Fatalf("detail without msg/type: %v", d)
				}
				return
			}
			if body["code"] != tc.code || body["message"] == "" {
				t.Fatalf("body %v, want code %s and a message", body, tc.code)
			}
		})
	}
	// Nothing above changed anything.
	_, list := e.do("GET", "/v1/sources", "")
	if list["total"].(float64) != 1 {
		t.Fatalf("bad input created sources: %v", list)
	}
}
