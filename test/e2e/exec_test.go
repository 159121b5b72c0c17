package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

// helloConnectors writes an --exec-connectors file that declares the
// Python example connector (examples/exec/hello.py), or skips the test
// where python3 is missing.
func helloConnectors(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: the Python example connector cannot run here")
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	decl := map[string]any{"connectors": []map[string]any{{
		"name": "hello", "version": "1.0.0", "sync_modes": []string{"full"},
		"config_schema": map[string]any{"type": "object", "properties": map[string]any{
			"count": map[string]any{"type": "integer", "minimum": 0},
			"pace":  map[string]any{"type": "number", "minimum": 0},
		}},
		"command": "python3", "args": []string{filepath.Join(root, "examples", "exec", "hello.py")},
		"grace": "2s",
	}}}
	b, err := json.Marshal(decl)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "connectors.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExecConnector syncs the Python example connector as a child process
// of the manager's in-process worker and reads its documents over HTTP.
func TestExecConnector(t *testing.T) {
	s := startManager(t, "--exec-connectors", helloConnectors(t))

	// The declared schema is enforced.
	s.Must(http.StatusUnprocessableEntity, "POST", "/v1/sources", map[string]any{"name": "bad", "connector": "hello", "config": map[string]any{"count": -1}}, nil)

	src := s.CreateSource("greetings", "hello", map[string]any{"count": 20})
	r := s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	if r.Emitted != 20 || r.Scanned != 20 || r.Errors != 0 {
		t.Fatalf("run counters: %+v", r)
	}
	var page documentPage
	s.Must(http.StatusOK, "GET", "/v1/sources/"+src.ID+"/documents?size=100", nil, &page)
	if page.Total != 20 {
		t.Fatalf("%d documents", page.Total)
	}
	var doc document
	for _, d := range page.Items {
		if d.ExternalID == "hello-7" {
			doc = d
		}
	}
	if doc.Title != "Hello 7" || doc.ContentID == "" {
		t.Fatalf("document hello-7: %+v", doc)
	}
	if code, _, body := get(t, s.Base+"/v1/sources/"+src.ID+"/documents/"+doc.ID+"/content"); code != http.StatusOK || body != "Hello, world number 7!\n" {
		t.Fatalf("content: %d %q", code, body)
	}
	var cp struct {
		Checkpoint json.RawMessage `json:"checkpoint"`
	}
	s.Must(http.StatusOK, "GET", "/v1/sources/"+src.ID+"/checkpoint", nil, &cp)
	if string(cp.Checkpoint) != `{"next":20}` {
		t.Fatalf("checkpoint %s", cp.Checkpoint)
	}
}

// TestExecConnectorCancel cancels a long exec sync on a separate worker
// process: the child is stopped and the run ends cancelled.
func TestExecConnectorCancel(t *testing.T) {
	s := startManager(t, "--worker=false")
	w := s.startWorker("--exec-connectors", helloConnectors(t))
	if cs, _ := w.WaitLog("Tributary worker ready", time.Second)["connectors"].([]any); !slices.Contains(cs, any("hello")) {
		t.Fatalf("worker connectors %v", cs)
	}
	src := s.CreateSource("slow greetings", "hello", map[string]any{"count": 1000000, "pace": 0.005})
	r := s.Sync(src.ID, nil)
	s.WaitRun(r.ID, 30*time.Second, "running with progress", func(r harness.Run) bool {
		return r.Status == "running" && r.Scanned > 0
	})
	began := time.Now()
	s.Must(http.StatusAccepted, "POST", "/v1/runs/"+r.ID+"/cancel", nil, nil)
	r = s.WaitStatus(r.ID, "cancelled", 30*time.Second)
	t.Logf("cancel took %s", time.Since(began).Round(time.Millisecond))
	if r.Emitted == 0 || strings.Contains(w.Log(), "still running after SIGTERM") {
		t.Fatalf("run %+v; the child should have ended on SIGTERM", r)
	}
}
