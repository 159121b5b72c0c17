package client

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Sources: POST/GET /v1/sources, GET/PATCH/DELETE /v1/sources/{id},
// POST /v1/sources/{id}/sync, /cancel and /replay. Answers reuse
// Source and Run, whose JSON is the API's; the API never
// returns credentials, only Source.HasCredentials.

// CreateSourceRequest is the body of CreateSource.
type CreateSourceRequest struct {
	// Name is the display name: required, at most 200 characters.
	Name string `json:"name"`
	// Connector is the connector type (see ListConnectors).
	Connector string `json:"connector"`
	// Config is the connector's configuration, encoded as a JSON object:
	// a map, a struct or a json.RawMessage. Nil means {}.
	Config any `json:"config,omitempty"`
	// Credentials, when not nil, are stored encrypted and never returned;
	// encoded as a JSON object.
	Credentials any `json:"credentials,omitempty"`
	// Schedule, when not nil, has the scheduler sync the source.
	Schedule *ScheduleRequest `json:"schedule,omitempty"`
}

// UpdateSourceRequest is the body of UpdateSource; nil and false fields
// leave the source as it is.
type UpdateSourceRequest struct {
	// Name, when not nil, renames the source.
	Name *string
	// Config, when not nil, replaces the whole config.
	Config any
	// Credentials, when not nil, replace the credentials.
	Credentials any
	// RemoveCredentials removes the credentials (sends "credentials":
	// null); it cannot be combined with Credentials.
	RemoveCredentials bool
	// Schedule, when not nil, replaces the schedule (Paused only when
	// set); RemoveSchedule removes it (manual syncs only).
	Schedule       *ScheduleRequest
	RemoveSchedule bool
}

// MarshalJSON leaves out what does not change and writes a null for
// RemoveCredentials.
func (r UpdateSourceRequest) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if r.Name != nil {
		m["name"] = *r.Name
	}
	if r.Config != nil {
		m["config"] = r.Config
	}
	switch {
	case r.Credentials != nil && r.RemoveCredentials:
		return nil, errBothCredentials
	case r.Credentials != nil:
		m["credentials"] = r.Credentials
	case r.RemoveCredentials:
		m["credentials"] = json.RawMessage("null")
	}
	switch {
	case r.Schedule != nil && r.RemoveSchedule:
		return nil, errBothSchedule
	case r.Schedule != nil:
		m["schedule"] = r.Schedule
	case r.RemoveSchedule:
		m["schedule"] = json.RawMessage("null")
	}
	return json.Marshal(m)
}

// SyncRequest is the body of SyncSource.
type SyncRequest struct {
	// Mode is events.ModeFull or events.ModeIncremental; empty lets the
	// manager choose: incremental when the source has a checkpoint and
	// its connector supports it, full otherwise.
	Mode events.SyncMode `json:"mode,omitempty"`
}

// Replay is the answer of ReplaySource.
type Replay struct {
	SourceID string `json:"source_id"`
	// ReplayID is the run_id the replayed changes carry on the change feed.
	ReplayID string `json:"replay_id"`
	// Documents counts the documents published again.
	Documents int `json:"documents"`
}

// CreateSource creates a source (admin). The connector must be registered
// and Config must pass its schema; otherwise the *Error is a 422 naming
// every problem.
//
// Route: POST /v1/sources.
func (c *Client) CreateSource(ctx context.Context, req CreateSourceRequest) (*Source, error) {
	var out Source
	if err := c.do(ctx, http.MethodPost, nil, req, &out, "v1", "sources"); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSources returns a page of sources, oldest first.
//
// Route: GET /v1/sources.
func (c *Client) ListSources(ctx context.Context, p PageParams) (*Page[Source], error) {
	var out Page[Source]
	if err := c.do(ctx, http.MethodGet, p.values(), nil, &out, "v1", "sources"); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetSource reads a source.
//
// Route: GET /v1/sources/{id}.
func (c *Client) GetSource(ctx context.Context, id string) (*Source, error) {
	var out Source
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "sources", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateSource changes a source's name, config or credentials (admin). A
// run already queued or running keeps what it was dispatched with.
//
// Route: PATCH /v1/sources/{id}.
func (c *Client) UpdateSource(ctx context.Context, id string, req UpdateSourceRequest) (*Source, error) {
	if req.Credentials != nil && req.RemoveCredentials {
		return nil, errBothCredentials
	}
	if req.Schedule != nil && req.RemoveSchedule {
		return nil, errBothSchedule
	}
	var out Source
	if err := c.do(ctx, http.MethodPatch, nil, req, &out, "v1", "sources", id); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSource deletes a source with its documents, credentials,
// checkpoint, runs and their events (admin). A source with an active run
// cannot be deleted: *Error with Code CodeRunActive.
//
// Route: DELETE /v1/sources/{id}.
func (c *Client) DeleteSource(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "v1", "sources", id)
}

// SyncSource queues a run of the source and returns it, queued. A source
// has one active run at most: a second sync is an *Error with Code
// CodeRunActive and RunID naming the active run.
//
// Route: POST /v1/sources/{id}/sync.
func (c *Client) SyncSource(ctx context.Context, id string, req SyncRequest) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, nil, req, &out, "v1", "sources", id, "sync"); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelSource cancels the source's active run and returns it as it is
// right after the request (see CancelRun).
//
// Route: POST /v1/sources/{id}/cancel.
func (c *Client) CancelSource(ctx context.Context, id string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", id, "cancel"); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReplaySource publishes every document the catalog holds for the source
// again on the change feed, without reading the source.
//
// Route: POST /v1/sources/{id}/replay.
func (c *Client) ReplaySource(ctx context.Context, id string) (*Replay, error) {
	var out Replay
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", id, "replay"); err != nil {
		return nil, err
	}
	return &out, nil
}

// Source is a source as the API shows it: the stored record (never its
// credentials) and its computed status.
type Source struct {
	state.Source
	// Status is "active", "paused" (its scheduled runs are paused) or
	// "degraded" (its last ConsecutiveFailures runs failed; see LastError).
	Status string `json:"status"`
}

// ScheduleRequest sets a source's schedule: Every (a Go duration) or Cron
// (five fields or a descriptor such as "@hourly"), or neither for manual
// syncs only; Mode of scheduled runs; Paused (nil keeps the current value).
type ScheduleRequest struct {
	Every  string          `json:"every,omitempty"`
	Cron   string          `json:"cron,omitempty"`
	Mode   events.SyncMode `json:"mode,omitempty"`
	Paused *bool           `json:"paused,omitempty"`
}

// PauseSource stops the source's scheduled runs (manual syncs still run).
// Idempotent.
//
// Route: POST /v1/sources/{id}/pause.
func (c *Client) PauseSource(ctx context.Context, id string) (*Source, error) {
	var out Source
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", id, "pause"); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResumeSource starts the source's scheduled runs again from the next due
// time. Idempotent.
//
// Route: POST /v1/sources/{id}/resume.
func (c *Client) ResumeSource(ctx context.Context, id string) (*Source, error) {
	var out Source
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", id, "resume"); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetCheckpoint reads the source's checkpoint; an *Error with Status 404
// when it has none.
//
// Route: GET /v1/sources/{id}/checkpoint.
func (c *Client) GetCheckpoint(ctx context.Context, id string) (*state.Checkpoint, error) {
	var out state.Checkpoint
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "sources", id, "checkpoint"); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetCheckpoint replaces the source's checkpoint (admin); checkpoint is
// any JSON-encodable value but nil. Only while the source has no active
// run: *Error with Code CodeRunActive otherwise.
//
// Route: PUT /v1/sources/{id}/checkpoint.
func (c *Client) SetCheckpoint(ctx context.Context, id string, checkpoint any) (*state.Checkpoint, error) {
	var out state.Checkpoint
	body := map[string]any{"checkpoint": checkpoint}
	if err := c.do(ctx, http.MethodPut, nil, body, &out, "v1", "sources", id, "checkpoint"); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResetCheckpoint removes the source's checkpoint, so its next sync is
// full (admin); only while it has no active run.
//
// Route: DELETE /v1/sources/{id}/checkpoint.
func (c *Client) ResetCheckpoint(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "v1", "sources", id, "checkpoint")
}

// ConnectionTest is the answer of TestConnection: a failed test is an
// answer (OK false, with the connector's Message), not an error.
type ConnectionTest struct {
	OK         bool   `json:"ok"`
	Message    string `json:"message,omitempty"`
	SourceID   string `json:"source_id"`
	WorkerID   string `json:"worker_id"`
	DurationMS int64  `json:"duration_ms"`
}

// ActionResult is the answer of RunAction.
type ActionResult struct {
	Action     string          `json:"action"`
	SourceID   string          `json:"source_id"`
	WorkerID   string          `json:"worker_id"`
	DurationMS int64           `json:"duration_ms"`
	Result     json.RawMessage `json:"result"`
}

// TestConnection asks a live worker whether the source's config and
// credentials reach what they describe. *Error with Code CodeNoWorker when
// no worker hosts the connector, CodeNotSupported when it has no test,
// CodeTimeout when no answer came in time.
//
// Route: POST /v1/sources/{id}/test-connection.
func (c *Client) TestConnection(ctx context.Context, id string) (*ConnectionTest, error) {
	var out ConnectionTest
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", id, "test-connection"); err != nil {
		return nil, err
	}
	return &out, nil
}

// RunAction runs one of the connector's actions on the source with params
// (a JSON-encodable object, or nil). Bad params, and an action that fails,
// are a 422 *Error whose Detail says why.
//
// Route: POST /v1/sources/{id}/actions/{name}.
func (c *Client) RunAction(ctx context.Context, id, action string, params any) (*ActionResult, error) {
	var out ActionResult
	body := map[string]any{"params": params}
	if err := c.do(ctx, http.MethodPost, nil, body, &out, "v1", "sources", id, "actions", action); err != nil {
		return nil, err
	}
	return &out, nil
}
