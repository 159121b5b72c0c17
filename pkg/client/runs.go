package client

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tributary-sync/tributary/pkg/state"
)

// Runs: GET /v1/runs, GET /v1/runs/{id}, POST /v1/runs/{id}/cancel and
// GET /v1/runs/{id}/errors. A run's live events are in events.go. Answers
// reuse Run, whose JSON is the API's (its bookkeeping fields, such as
// LastEventSeq, stay zero).

// ListRunsParams chooses the runs ListRuns returns.
type ListRunsParams struct {
	PageParams
	// SourceID, when set, keeps the runs of that source.
	SourceID string
	// Status, when set, keeps the runs in that status.
	Status state.RunStatus
}

// RunError is one document a run could not read: one of its
// document.error events.
type RunError struct {
	ExternalID string    `json:"external_id"`
	Error      string    `json:"error"`
	Attempt    int       `json:"attempt"`
	Time       time.Time `json:"time"`
}

// ListRuns returns a page of runs, newest first.
//
// Route: GET /v1/runs.
func (c *Client) ListRuns(ctx context.Context, p ListRunsParams) (*Page[Run], error) {
	q := p.values()
	if p.SourceID != "" {
		q.Set("source_id", p.SourceID)
	}
	if p.Status != "" {
		q.Set("status", string(p.Status))
	}
	var out Page[Run]
	if err := c.do(ctx, http.MethodGet, q, nil, &out, "v1", "runs"); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRun reads a run.
//
// Route: GET /v1/runs/{id}.
func (c *Client) GetRun(ctx context.Context, id string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "runs", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelRun asks a run to stop and returns it as it is right after the
// request: a queued run is cancelled at once; a running one has
// CancelRequested set and turns cancelled when its worker reports it. A
// run that already ended is an *Error with CodeRunNotActive.
//
// Route: POST /v1/runs/{id}/cancel.
func (c *Client) CancelRun(ctx context.Context, id string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "runs", id, "cancel"); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListRunErrors returns a page of the run's per-document errors, oldest
// first.
//
// Route: GET /v1/runs/{id}/errors.
func (c *Client) ListRunErrors(ctx context.Context, id string, p PageParams) (*Page[RunError], error) {
	var out Page[RunError]
	if err := c.do(ctx, http.MethodGet, p.values(), nil, &out, "v1", "runs", id, "errors"); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitRun polls the run every interval (default 250 ms when zero) until it
// has ended, and returns it; it returns early with ctx's error. The
// manager applies a run's events a moment after workers publish them, so
// a stream can show a run's final event while GetRun still says running:
// WaitRun after RunEvents gives the run's final record, counters and
// catalog included.
func (c *Client) WaitRun(ctx context.Context, id string, interval time.Duration) (*Run, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		run, err := c.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		if run.Status.Terminal() {
			return run, nil
		}
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("tributary client: wait for run %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}

// Run is a run as the API shows it: the stored record and its live
// progress.
type Run struct {
	state.Run
	// Progress is computed when the run is read; nil before it starts.
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is how far a run got and how fast. Percent and ETASeconds need
// the connector to report a total (SyncContext.SetTotal); the ETA is only
// given while the run is running.
type Progress struct {
	ElapsedSeconds float64  `json:"elapsed_seconds"`
	RatePerSecond  float64  `json:"rate_per_second"`
	Total          uint64   `json:"total,omitempty"`
	Percent        *float64 `json:"percent,omitempty"`
	ETASeconds     *float64 `json:"eta_seconds,omitempty"`
}

// RetryRun starts a new run redoing a failed or cancelled one, continuing
// from its checkpoint when it is still the source's latest run. An *Error
// with Code CodeNotRetryable for other runs.
//
// Route: POST /v1/runs/{id}/retry.
func (c *Client) RetryRun(ctx context.Context, id string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "runs", id, "retry"); err != nil {
		return nil, err
	}
	return &out, nil
}
