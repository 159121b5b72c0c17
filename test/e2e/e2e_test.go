// Package e2e drives the real manager and worker binaries over HTTP, as an
// operator would. TestMain builds both binaries once (with -race).
package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

// TestFolderSync syncs a folder of 1,000 files, then changes 10 and deletes 3
// and checks the incremental run reports exactly that.
func TestFolderSync(t *testing.T) {
	s := startManager(t)
	root := t.TempDir()
	const files = 1000
	for i := range files {
		dir := filepath.Join(root, fmt.Sprintf("d%02d", i%20))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("file-%04d.txt", i)), fmt.Sprintf("document %d\n", i))
	}
	src := s.CreateSource("folder", "filesystem", map[string]any{"root": root})

	began := time.Now()
	r := s.Sync(src.ID, nil)
	if r.Status != "queued" || r.Mode != "full" {
		t.Fatalf("new run: %+v", r)
	}
	r = s.WaitStatus(r.ID, "completed", time.Minute)
	took := time.Since(began)
	if r.Emitted != files || r.Scanned != files || r.Updated != 0 || r.Deleted != 0 || r.Errors != 0 {
		t.Fatalf("full run counters: %+v", r)
	}
	t.Logf("full sync of %d files: %s from POST to completed", files, took.Round(time.Millisecond))

	// Change 10 files (new size and time) and delete 3 others.
	later := time.Now().Add(time.Minute)
	for i := range 10 {
		p := filepath.Join(root, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("file-%04d.txt", i))
		writeFile(t, p, fmt.Sprintf("document %d, edited\n", i))
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	for i := 500; i < 503; i++ {
		if err := os.Remove(filepath.Join(root, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("file-%04d.txt", i))); err != nil {
			t.Fatal(err)
		}
	}
	r = s.Sync(src.ID, map[string]any{"mode": "incremental"})
	if r.Mode != "incremental" {
		t.Fatalf("mode %s, want incremental", r.Mode)
	}
	r = s.WaitStatus(r.ID, "completed", time.Minute)
	if r.Updated != 10 || r.Deleted != 3 || r.Emitted != 0 || r.Errors != 0 {
		t.Fatalf("incremental run counters: want 10 updated, 3 deleted: %+v", r)
	}
	if r.Changed != 10 || r.New != 0 || r.Unchanged != 0 {
		t.Fatalf("incremental run, as the catalog judged it: want 10 changed: %+v", r)
	}

	// Without a mode, a source with a checkpoint syncs incrementally: nothing
	// changed, so nothing is reported.
	r = s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	if r.Mode != "incremental" || r.Updated+r.Emitted+r.Deleted != 0 {
		t.Fatalf("idle incremental run: %+v", r)
	}

	var runs struct {
		Items []harness.Run `json:"items"`
		Total int           `json:"total"`
	}
	s.Must(http.StatusOK, "GET", "/v1/runs?source_id="+src.ID+"&status=completed", nil, &runs)
	if runs.Total != 3 || runs.Items[0].ID != r.ID {
		t.Fatalf("run list: %+v", runs)
	}

	// A full re-sync of the unchanged folder: every document emitted, none
	// a change (identical content keeps its content id).
	r = s.WaitStatus(s.Sync(src.ID, map[string]any{"mode": "full"}).ID, "completed", time.Minute)
	if r.Unchanged != files-3 || r.New+r.Changed+r.Deleted != 0 {
		t.Fatalf("unchanged full re-sync: %+v", r)
	}
}

// TestCancelOnSeparateWorker cancels a sync that runs on a separate worker
// process and measures how long the cancel takes to end the run.
func TestCancelOnSeparateWorker(t *testing.T) {
	s := startManager(t, "--worker=false")
	w := s.startWorker("--concurrency", "2")
	src := s.CreateSource("slow", "synthetic", map[string]any{"count": 1000000, "pace": "1ms"})
	r := s.Sync(src.ID, nil)
	r = s.WaitRun(r.ID, 30*time.Second, "running with progress", func(r harness.Run) bool {
		return r.Status == "running" && r.Scanned > 0
	})
	workerID := w.WaitLog("Tributary worker ready", time.Second)["worker_id"]
	if r.WorkerID != workerID {
		t.Fatalf("run on %q, want the separate worker %q", r.WorkerID, workerID)
	}

	// A second sync of the same source while one is active is a conflict.
	var conflict struct {
		Code  string `json:"code"`
		RunID string `json:"run_id"`
	}
	s.Must(http.StatusConflict, "POST", "/v1/sources/"+src.ID+"/sync", nil, &conflict)
	if conflict.Code != "run_active" || conflict.RunID != r.ID {
		t.Fatalf("conflict body: %+v", conflict)
	}

	began := time.Now()
	s.Must(http.StatusAccepted, "POST", "/v1/runs/"+r.ID+"/cancel", nil, nil)
	r = s.WaitStatus(r.ID, "cancelled", 5*time.Second)
	took := time.Since(began)
	t.Logf("cancel: %s from POST to run cancelled", took.Round(time.Millisecond))
	if took > time.Second {
		t.Fatalf("cancel took %s, want at most 1s", took)
	}
	if !r.Cancel || r.FinishedAt == "" {
		t.Fatalf("cancelled run: %+v", r)
	}

	// The source is free again.
	r = s.Sync(src.ID, map[string]any{"mode": "full"})
	s.Must(http.StatusAccepted, "POST", "/v1/sources/"+src.ID+"/cancel", nil, nil)
	s.WaitStatus(r.ID, "cancelled", 5*time.Second)
}

// TestQueuedCancelNeverStarts cancels a run no worker has picked up yet, then
// starts a worker and shows the run never starts.
func TestQueuedCancelNeverStarts(t *testing.T) {
	s := startManager(t, "--worker=false")
	// The connector is known only once a worker registered it: register it
	// with one worker, then stop that worker.
	w := s.startWorker()
	src := s.CreateSource("never", "synthetic", map[string]any{"count": 10})
	w.Stop(syscall.SIGTERM, 20*time.Second)
	w.WaitLog("worker stopped", 10*time.Second)

	queued := s.Sync(src.ID, nil)
	s.Must(http.StatusAccepted, "POST", "/v1/runs/"+queued.ID+"/cancel", nil, nil)
	r := s.WaitStatus(queued.ID, "cancelled", 5*time.Second)
	if r.StartedAt != "" || r.Attempt != 0 {
		t.Fatalf("cancelled queued run started: %+v", r)
	}

	// A new worker drains the queue: a later run of the same source completes,
	// and the cancelled one still never started.
	s.startWorker()
	next := s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", 30*time.Second)
	if next.Emitted != 10 {
		t.Fatalf("next run: %+v", next)
	}
	if r := s.Run(queued.ID); r.Status != "cancelled" || r.StartedAt != "" || r.Attempt != 0 {
		t.Fatalf("cancelled run changed: %+v", r)
	}
}

// TestBadInput sends every kind of bad request to the real binary and checks
// status and shape, and that nothing changed.
func TestBadInput(t *testing.T) {
	s := startManager(t)
	src := s.CreateSource("good", "synthetic", map[string]any{"count": 1})
	id := src.ID
	cases := []struct {
		method, path, body string
		status             int
		code               string // for everything but 422
		loc                string // first detail loc for 422
	}{
		{"POST", "/v1/sources", `{"name":`, 400, "bad_request", ""},
		{"POST", "/v1/sources", ``, 400, "bad_request", ""},
		{"POST", "/v1/sources", `{"name":"x","connector":"nope"}`, 422, "", "body.connector"},
		{"POST", "/v1/sources", `{"connector":"synthetic","config":{"count":1}}`, 422, "", "body.name"},
		{"POST", "/v1/sources", `{"name":"x","connector":"synthetic","config":{"count":"many"}}`, 422, "", "body.config.count"},
		{"POST", "/v1/sources", `{"name":"x","connector":"synthetic","config":{}}`, 422, "", "body.config.count"},
		{"POST", "/v1/sources", `{"name":"x","connector":"filesystem","config":{"root":"/tmp","depth":3}}`, 422, "", "body.config.depth"},
		{"POST", "/v1/sources", `{"name":"x","connector":"synthetic","config":{"count":1},"bogus":1}`, 422, "", "body.bogus"},
		{"POST", "/v1/sources", `[1,2]`, 422, "", "body"},
		{"POST", "/v1/sources", `{"name":"x","connector":"synthetic","config":{"count":1}}` + strings.Repeat(" ", 2<<20), 413, "too_large", ""},
		{"POST", "/v1/sources", `{"name":"x","connector":"synthetic","config":{"count":1,"pad":"` + strings.Repeat("p", 300<<10) + `"}}`, 422, "", "body.config"},
		{"POST", "/v1/sources", `{"name":"x","connector":"synthetic","config":{"count":1},"credentials":{"key":"` + strings.Repeat("k", 100<<10) + `"}}`, 422, "", "body.credentials"},
		{"GET", "/v1/sources/nope", ``, 404, "not_found", ""},
		{"PATCH", "/v1/sources/nope", `{"name":"y"}`, 404, "not_found", ""},
		{"PATCH", "/v1/sources/" + id, `{"config":{"count":-1}}`, 422, "", "body.config.count"},
		{"PATCH", "/v1/sources/" + id, `{"config":`, 400, "bad_request", ""},
		{"DELETE", "/v1/sources/nope", ``, 404, "not_found", ""},
		{"POST", "/v1/sources/nope/sync", ``, 404, "not_found", ""},
		{"POST", "/v1/sources/" + id + "/sync", `{"mode":"sideways"}`, 422, "", "body.mode"},
		{"POST", "/v1/sources/" + id + "/sync", `{"mode":`, 400, "bad_request", ""},
		{"POST", "/v1/sources/" + id + "/cancel", ``, 409, "run_not_active", ""},
		{"POST", "/v1/sources/nope/cancel", ``, 404, "not_found", ""},
		{"POST", "/v1/sources/nope/replay", ``, 404, "not_found", ""},
		{"GET", "/v1/runs/nope", ``, 404, "not_found", ""},
		{"POST", "/v1/runs/nope/cancel", ``, 404, "not_found", ""},
		{"GET", "/v1/runs?status=bogus", ``, 422, "", "query.status"},
		{"GET", "/v1/sources?page=0", ``, 422, "", "query.page"},
		{"GET", "/v1/nothing", ``, 404, "not_found", ""},
		{"PUT", "/v1/sources", ``, 405, "method_not_allowed", ""},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.path + " " + tc.body
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			var body struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Detail  []struct {
					Loc  []any  `json:"loc"`
					Msg  string `json:"msg"`
					Type string `json:"type"`
				} `json:"detail"`
			}
			s := *s
			s.T = t
			if got := s.Do(tc.method, tc.path, tc.body, &body); got != tc.status {
				t.Fatalf("status %d, want %d: %+v", got, tc.status, body)
			}
			if tc.status == 422 {
				if len(body.Detail) == 0 {
					t.Fatalf("422 without detail: %+v", body)
				}
				d := body.Detail[0]
				var loc []string
				for _, l := range d.Loc {
					loc = append(loc, fmt.Sprint(l))
				}
				if got := strings.Join(loc, "."); got != tc.loc || d.Msg == "" || d.Type == "" {
					t.Fatalf("detail %+v, want loc %s with msg and type", body.Detail, tc.loc)
				}
				return
			}
			if body.Code != tc.code || body.Message == "" {
				t.Fatalf("body %+v, want code %s and a message", body, tc.code)
			}
		})
	}

	// Nothing above changed anything.
	var list struct {
		Items []harness.Source `json:"items"`
		Total int              `json:"total"`
	}
	s.Must(http.StatusOK, "GET", "/v1/sources", nil, &list)
	if list.Total != 1 || string(list.Items[0].Config) != `{"count":1}` {
		t.Fatalf("bad input changed the sources: %+v", list)
	}
	var runs struct{ Total int }
	s.Must(http.StatusOK, "GET", "/v1/runs", nil, &runs)
	if runs.Total != 0 {
		t.Fatalf("bad input created runs: %+v", runs)
	}
	// A page far past the end (even one whose offset would overflow) is empty.
	var far struct {
		Items []harness.Source `json:"items"`
		Total int              `json:"total"`
	}
	s.Must(http.StatusOK, "GET", "/v1/sources?page=36028797018963969&size=512", nil, &far)
	if len(far.Items) != 0 || far.Total != 1 {
		t.Fatalf("page past the end: %+v", far)
	}

	// /health and /api/version answer.
	var health struct {
		Status string `json:"status"`
		NATS   struct {
			URL string `json:"url"`
		} `json:"nats"`
		JetStream struct {
			OK bool `json:"ok"`
		} `json:"jetstream"`
	}
	s.Must(http.StatusOK, "GET", "/health", nil, &health)
	if health.Status != "ok" || !health.JetStream.OK || health.NATS.URL != s.nats {
		t.Fatalf("health: %+v", health)
	}
	var ver map[string]any
	s.Must(http.StatusOK, "GET", "/api/version", nil, &ver)
	if ver["version"] == nil {
		t.Fatalf("version: %v", ver)
	}
}

// TestWorkersAndConnectors lists the workers and the connectors they host.
func TestWorkersAndConnectors(t *testing.T) {
	s := startManager(t)
	s.startWorker("--id", "worker-b")
	var workers struct {
		Items []struct {
			ID         string   `json:"id"`
			Connectors []string `json:"connectors"`
		} `json:"items"`
	}
	s.Must(http.StatusOK, "GET", "/v1/workers", nil, &workers)
	found := false
	for _, w := range workers.Items {
		found = found || w.ID == "worker-b"
	}
	if len(workers.Items) != 2 || !found {
		t.Fatalf("workers: %+v", workers)
	}
	var connectors struct {
		Items []struct {
			Name         string          `json:"name"`
			SyncModes    []string        `json:"sync_modes"`
			ConfigSchema json.RawMessage `json:"config_schema"`
		} `json:"items"`
	}
	s.Must(http.StatusOK, "GET", "/v1/connectors", nil, &connectors)
	names := map[string]bool{}
	for _, c := range connectors.Items {
		names[c.Name] = len(c.ConfigSchema) > 0 && len(c.SyncModes) == 2
	}
	if !names["filesystem"] || !names["synthetic"] {
		t.Fatalf("connectors: %+v", connectors)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
