package client_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// TestOperatorRoutes: schedules, pause/resume, checkpoints, retry, progress,
// OpenAPI and metrics through the client.
func TestOperatorRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	s := start(t, api.WithMetrics(reg))
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()

	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "s", Connector: "synthetic",
		Config: map[string]any{"count": 5}, Schedule: &client.ScheduleRequest{Cron: "@daily", Mode: events.ModeFull}})
	if err != nil {
		t.Fatal(err)
	}
	if src.Schedule.Cron != "@daily" || src.NextRunAt == nil || src.Status != "active" {
		t.Fatalf("created: %+v status %s", src.Schedule, src.Status)
	}
	paused, err := c.PauseSource(ctx, src.ID)
	if err != nil || paused.Status != "paused" || paused.NextRunAt != nil {
		t.Fatalf("paused: %+v, %v", paused, err)
	}
	resumed, err := c.ResumeSource(ctx, src.ID)
	if err != nil || resumed.Status != "active" {
		t.Fatalf("resumed: %+v, %v", resumed, err)
	}
	unscheduled, err := c.UpdateSource(ctx, src.ID, client.UpdateSourceRequest{RemoveSchedule: true})
	if err != nil || unscheduled.Schedule.Scheduled() || unscheduled.NextRunAt != nil {
		t.Fatalf("schedule removed: %+v, %v", unscheduled, err)
	}
	_, err = c.UpdateSource(ctx, src.ID, client.UpdateSourceRequest{Schedule: &client.ScheduleRequest{Every: "never"}})
	if e := mustAPIError(t, err, http.StatusUnprocessableEntity, client.CodeValidation); len(e.Detail) != 1 || e.Detail[0].Field() != "body.schedule.every" {
		t.Fatalf("bad schedule: %+v", e)
	}

	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	done := waitRun(t, c, run.ID, "completed", terminal)
	if done.Status != state.RunCompleted || done.Progress == nil || done.Progress.Total != 5 || len(done.Attempts) != 1 {
		t.Fatalf("completed run: %+v progress %+v", done.Run, done.Progress)
	}
	_, err = c.RetryRun(ctx, run.ID)
	mustAPIError(t, err, http.StatusConflict, client.CodeNotRetryable)

	cp, err := c.GetCheckpoint(ctx, src.ID)
	if err != nil || !cp.Final {
		t.Fatalf("checkpoint: %+v, %v", cp, err)
	}
	if cp, err = c.SetCheckpoint(ctx, src.ID, map[string]int{"generation": 7}); err != nil || string(cp.Checkpoint) != `{"generation":7}` {
		t.Fatalf("set checkpoint: %+v, %v", cp, err)
	}
	if err := c.ResetCheckpoint(ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetCheckpoint(ctx, src.ID)
	mustAPIError(t, err, http.StatusNotFound, client.CodeNotFound)

	// A cancelled run, retried.
	slow, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "slow", Connector: "synthetic",
		Config: map[string]any{"count": 1000, "pace": "10ms"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.SyncSource(ctx, slow.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, c, r.ID, "running", func(r *client.Run) bool { return r.Status == state.RunRunning })
	if _, err := c.CancelRun(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	waitRun(t, c, r.ID, "cancelled", terminal)
	retry, err := c.RetryRun(ctx, r.ID)
	if err != nil || retry.RetryOf != r.ID {
		t.Fatalf("retry: %+v, %v", retry, err)
	}
	if _, err := c.CancelRun(ctx, retry.ID); err != nil {
		t.Fatal(err)
	}

	ct, err := c.TestConnection(ctx, src.ID)
	if err != nil || !ct.OK || ct.WorkerID == "" {
		t.Fatalf("test connection: %+v, %v", ct, err)
	}
	res, err := c.RunAction(ctx, src.ID, "echo", map[string]any{"message": "hi"})
	if err != nil || !strings.Contains(string(res.Result), `"message":"hi"`) {
		t.Fatalf("echo: %+v, %v", res, err)
	}
	_, err = c.RunAction(ctx, src.ID, "echo", map[string]any{"colour": "red"})
	if e := mustAPIError(t, err, http.StatusUnprocessableEntity, client.CodeValidation); len(e.Detail) != 2 {
		t.Fatalf("bad params: %+v", e.Detail)
	}
	_, err = c.RunAction(ctx, src.ID, "reindex", nil)
	mustAPIError(t, err, http.StatusNotFound, client.CodeActionNotFound)

	spec, err := c.OpenAPI(ctx)
	if err != nil || !strings.Contains(string(spec), `"openapi": "3.1`) {
		t.Fatalf("openapi: %.60s, %v", spec, err)
	}
	metrics, err := c.Metrics(ctx)
	if err != nil || !strings.Contains(metrics, "go_goroutines") {
		t.Fatalf("metrics: %.200s, %v", metrics, err)
	}
}
