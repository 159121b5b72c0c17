package state

import (
	"encoding/json"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
)

// Source is one configured external source.
type Source struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Connector string          `json:"connector"`
	Config    json.RawMessage `json:"config"`
	// HasCredentials says whether credentials are stored for the source; the
	// credentials themselves live in their own bucket.
	HasCredentials bool      `json:"has_credentials"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	// LastRunID is the most recent run of the source.
	LastRunID string `json:"last_run_id,omitempty"`
}

// Credentials are a source's secrets, stored apart from the source.
type Credentials struct {
	// Data is the credentials document as given by the operator.
	Data json.RawMessage `json:"data"`
}

// RunStatus is where a run is in its life.
type RunStatus string

// Run statuses: queued → running → completed | failed | cancelled.
const (
	RunQueued    RunStatus = "queued"
	RunRunning   RunStatus = "running"
	RunCompleted RunStatus = "completed"
	RunFailed    RunStatus = "failed"
	RunCancelled RunStatus = "cancelled"
)

// Valid reports whether s is a known status.
func (s RunStatus) Valid() bool {
	switch s {
	case RunQueued, RunRunning, RunCompleted, RunFailed, RunCancelled:
		return true
	}
	return false
}

// Terminal reports whether the run has ended.
func (s RunStatus) Terminal() bool {
	return s == RunCompleted || s == RunFailed || s == RunCancelled
}

// Counters are a run's document counters.
type Counters struct {
	DocumentsScanned uint64 `json:"documents_scanned"`
	DocumentsEmitted uint64 `json:"documents_emitted"`
	DocumentsUpdated uint64 `json:"documents_updated"`
	DocumentsDeleted uint64 `json:"documents_deleted"`
	DocumentsErrors  uint64 `json:"documents_errors"`
}

// Run is one sync of one source.
type Run struct {
	ID        string          `json:"id"`
	SourceID  string          `json:"source_id"`
	Connector string          `json:"connector"`
	Mode      events.SyncMode `json:"mode"`
	Status    RunStatus       `json:"status"`
	// Trigger says why the run exists: manual, schedule, retry.
	Trigger string `json:"trigger"`
	// Attempt is the latest attempt that started (0 while queued).
	Attempt  int    `json:"attempt"`
	WorkerID string `json:"worker_id,omitempty"`
	Counters
	Error           string     `json:"error,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	// UpdatedAt is when the record last changed.
	UpdatedAt time.Time `json:"updated_at"`

	// LastEventSeq is the events-stream sequence of the last event applied
	// to the run; an event at or below it is a redelivery and is skipped.
	LastEventSeq uint64 `json:"last_event_seq,omitempty"`
	// ScannedBase is the scanned count carried over from earlier attempts.
	ScannedBase uint64 `json:"scanned_base,omitempty"`
	// RequestID is the id of the run's sync.requested event; Dispatched says
	// it reached the work queue. A queued run that was never dispatched (the
	// manager stopped in between) is dispatched again at start, with the same
	// id so JetStream stores it once.
	RequestID  string `json:"request_id,omitempty"`
	Dispatched bool   `json:"dispatched,omitempty"`
}

// Active names the one queued or running run of a source.
type Active struct {
	RunID     string    `json:"run_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Checkpoint is the latest resumable position of a source.
type Checkpoint struct {
	SourceID string `json:"source_id"`
	// RunID and Attempt say who saved it.
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
	// Final is true when the run that saved it completed.
	Final      bool            `json:"final"`
	Checkpoint json.RawMessage `json:"checkpoint"`
	UpdatedAt  time.Time       `json:"updated_at"`
}

// ConnectorInfo is the latest manifest a worker registered for a connector.
type ConnectorInfo struct {
	Manifest     json.RawMessage `json:"manifest"`
	RegisteredAt time.Time       `json:"registered_at"`
	WorkerID     string          `json:"worker_id"`
}

// Worker is a live worker's heartbeat record.
type Worker struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Version     string    `json:"version"`
	Connectors  []string  `json:"connectors"`
	Concurrency int       `json:"concurrency"`
	ActiveRuns  []string  `json:"active_runs"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// Lease says which worker executes a source's run. It lives in a bucket
// whose entries expire: a worker that stops refreshing it loses it after the
// bucket's TTL, and another worker may take the source over.
type Lease struct {
	RunID       string    `json:"run_id"`
	WorkerID    string    `json:"worker_id"`
	Attempt     int       `json:"attempt"`
	AcquiredAt  time.Time `json:"acquired_at"`
	RefreshedAt time.Time `json:"refreshed_at"`
}

// ContentRef is the stored object that holds content with a given SHA-256
// digest, keyed by the digest in hex.
type ContentRef struct {
	ContentID   string    `json:"content_id"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	CreatedAt   time.Time `json:"created_at"`
}
