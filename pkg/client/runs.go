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
// reuse state.Run, whose JSON is the API's (its bookkeeping fields, such as
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
func (c *Client) ListRuns(ctx context.Context, p ListRunsParams) (*Page[state.Run], error) {
	q := p.values()
	if p.SourceID != "" {
		q.Set("source_id", p.SourceID)
	}
	if p.Status != "" {
		q.Set("status", string(p.Status))
	}
	var out Page[state.Run]
	if err := c.do(ctx, http.MethodGet, q, nil, &out, "v1", "runs"); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRun reads a run.
//
// Route: GET /v1/runs/{id}.
func (c *Client) GetRun(ctx context.Context, id string) (*state.Run, error) {
	var out state.Run
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
func (c *Client) CancelRun(ctx context.Context, id string) (*state.Run, error) {
	var out state.Run
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
func (c *Client) WaitRun(ctx context.Context, id string, interval time.Duration) (*state.Run, error) {
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
