package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

// scheduledSource is a source as the scheduling fields show it.
type scheduledSource struct {
	ID                  string         `json:"id"`
	Status              string         `json:"status"`
	LastRunID           string         `json:"last_run_id"`
	NextRunAt           string         `json:"next_run_at"`
	ConsecutiveFailures int            `json:"consecutive_failures"`
	LastError           string         `json:"last_error"`
	Schedule            map[string]any `json:"schedule"`
}

type runInfo struct {
	harness.Run
	Trigger     string `json:"trigger"`
	QueueReason string `json:"queue_reason"`
	RetryOf     string `json:"retry_of"`
	Attempts    []struct {
		WorkerID string `json:"worker_id"`
		Outcome  string `json:"outcome"`
	} `json:"attempts"`
	Progress *struct {
		Total   int      `json:"total"`
		Percent *float64 `json:"percent"`
	} `json:"progress"`
}

func (s *system) source(id string) scheduledSource {
	s.T.Helper()
	var src scheduledSource
	s.Must(http.StatusOK, "GET", "/v1/sources/"+id, nil, &src)
	return src
}

func (s *system) waitSource(id, what string, cond func(scheduledSource) bool) scheduledSource {
	s.T.Helper()
	var src scheduledSource
	harness.Eventually(s.T, 30*time.Second, 10*time.Millisecond, what, func() bool {
		src = s.source(id)
		return cond(src)
	})
	return src
}

// TestSchedulesOverHTTP: a source on a one-second schedule syncs by itself,
// pauses and resumes; a failing one backs off, shows degraded with its
// error, and one success clears it; its failed run is retried by hand.
func TestSchedulesOverHTTP(t *testing.T) {
	s := startManager(t, "--schedule-retry", "1s", "--schedule-retry-cap", "2s", "--degraded-after", "2")

	var src scheduledSource
	s.Must(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": "ticking", "connector": "synthetic",
		"config": map[string]any{"count": 20}, "schedule": map[string]any{"every": "1s", "mode": "full"}}, &src)
	if src.Status != "active" || src.NextRunAt == "" {
		t.Fatalf("new scheduled source: %+v", src)
	}
	got := s.waitSource(src.ID, "a scheduled run", func(x scheduledSource) bool { return x.LastRunID != "" })
	var run runInfo
	s.Must(http.StatusOK, "GET", "/v1/runs/"+got.LastRunID, nil, &run)
	if run.Trigger != "schedule" {
		t.Fatalf("run trigger %q", run.Trigger)
	}
	done := s.WaitStatus(run.ID, "completed", 30*time.Second)
	s.Must(http.StatusOK, "GET", "/v1/runs/"+done.ID, nil, &run)
	if len(run.Attempts) != 1 || run.Attempts[0].Outcome != "completed" || run.Progress == nil || run.Progress.Total != 20 ||
		run.Progress.Percent == nil || *run.Progress.Percent != 100 {
		t.Fatalf("completed run: attempts %+v progress %+v", run.Attempts, run.Progress)
	}
	// It keeps going by itself.
	s.waitSource(src.ID, "a second scheduled run", func(x scheduledSource) bool { return x.LastRunID != done.ID })

	var paused scheduledSource
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/pause", nil, &paused)
	if paused.Status != "paused" || paused.NextRunAt != "" {
		t.Fatalf("paused: %+v", paused)
	}
	last := s.waitSource(src.ID, "the last run to end", func(x scheduledSource) bool { return s.Run(x.LastRunID).Terminal() })
	var resumed scheduledSource
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/resume", nil, &resumed)
	if resumed.Status != "active" || resumed.NextRunAt == "" {
		t.Fatalf("resumed: %+v", resumed)
	}
	s.waitSource(src.ID, "a run after resuming", func(x scheduledSource) bool { return x.LastRunID != last.LastRunID })
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/pause", nil, nil)

	// A folder that does not exist yet: its runs fail.
	root := filepath.Join(t.TempDir(), "later")
	var failing scheduledSource
	s.Must(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": "failing", "connector": "filesystem",
		"config": map[string]any{"root": root}, "schedule": map[string]any{"every": "1h"}}, &failing)
	first := s.Sync(failing.ID, nil)
	s.WaitStatus(first.ID, "failed", 30*time.Second)
	// Retried by the scheduler after 1 s, not in an hour, and degraded at
	// the second failure.
	deg := s.waitSource(failing.ID, "degraded", func(x scheduledSource) bool { return x.Status == "degraded" })
	if deg.ConsecutiveFailures < 2 || deg.LastError == "" {
		t.Fatalf("degraded source: %+v", deg)
	}
	if r := s.Run(deg.LastRunID); r.Status != "failed" {
		t.Fatalf("latest run of the degraded source: %+v", r)
	}

	// A failed run retried by hand.
	var retry runInfo
	s.Must(http.StatusAccepted, "POST", "/v1/runs/"+first.ID+"/retry", nil, &retry)
	if retry.RetryOf != first.ID || retry.Trigger != "retry" {
		t.Fatalf("retry: %+v", retry)
	}
	s.Must(http.StatusConflict, "POST", "/v1/runs/"+done.ID+"/retry", nil, nil)

	// The folder appears: the next retry completes and clears it all.
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "a.txt"), "hello")
	ok := s.waitSource(failing.ID, "recovered", func(x scheduledSource) bool { return x.Status == "active" })
	if ok.ConsecutiveFailures != 0 || ok.LastError != "" {
		t.Fatalf("recovered source: %+v", ok)
	}
}

// TestRunLimitOverHTTP: with --max-active-runs 1, a second source's run
// waits queued with its reason, then runs once the first is done.
func TestRunLimitOverHTTP(t *testing.T) {
	s := startManager(t, "--max-active-runs", "1")
	slow := s.CreateSource("slow", "synthetic", map[string]any{"count": 50, "pace": "20ms"})
	other := s.CreateSource("other", "synthetic", map[string]any{"count": 5})
	a := s.Sync(slow.ID, nil)
	var b runInfo
	s.Must(http.StatusAccepted, "POST", "/v1/sources/"+other.ID+"/sync", nil, &b)
	if b.Status != "queued" || b.QueueReason == "" {
		t.Fatalf("second run: %+v", b)
	}
	// While a run is active its source's checkpoint cannot change.
	s.Must(http.StatusConflict, "PUT", "/v1/sources/"+slow.ID+"/checkpoint", map[string]any{"checkpoint": 1}, nil)
	ra := s.WaitStatus(a.ID, "completed", 60*time.Second)
	rb := s.WaitStatus(b.ID, "completed", 60*time.Second)
	if rb.StartedAt < ra.FinishedAt {
		t.Fatalf("the second run started at %s, before the first ended at %s", rb.StartedAt, ra.FinishedAt)
	}
	var cp map[string]any
	s.Must(http.StatusOK, "GET", "/v1/sources/"+slow.ID+"/checkpoint", nil, &cp)
	if cp["final"] != true {
		t.Fatalf("checkpoint: %v", cp)
	}
	s.Must(http.StatusNoContent, "DELETE", "/v1/sources/"+slow.ID+"/checkpoint", nil, nil)
	if r := s.Sync(slow.ID, nil); r.Mode != "full" {
		t.Fatalf("after a reset: %s sync", r.Mode)
	}
}
