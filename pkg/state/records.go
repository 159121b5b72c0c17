package state

import (
	"crypto/sha256"
	"encoding/hex"
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

	// Schedule says when the scheduler syncs the source.
	Schedule Schedule `json:"schedule"`
	// NextRunAt is when the scheduler syncs the source next; nil when it
	// has no schedule or is paused.
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
	// ConsecutiveFailures counts the source's runs that failed since the
	// last one that completed (cancelled runs and document re-fetches do
	// not count). Scheduled runs back off exponentially while it is above
	// zero.
	ConsecutiveFailures int `json:"consecutive_failures,omitempty"`
	// Degraded is set once ConsecutiveFailures reaches the manager's
	// threshold, with the last failure's message in LastError; a completed
	// run clears both.
	Degraded  bool   `json:"degraded,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Schedule is when a source is synced without an operator asking. At most
// one of Every and Cron is set; neither means manual syncs only.
type Schedule struct {
	// Every is an interval as a Go duration ("15m", "1h30m").
	Every string `json:"every,omitempty"`
	// Cron is a five-field cron expression ("*/5 * * * *") or a descriptor
	// ("@hourly"), in UTC unless prefixed with "CRON_TZ=<zone> ".
	Cron string `json:"cron,omitempty"`
	// Mode is the sync mode of scheduled runs; empty picks incremental when
	// the source has a checkpoint and the connector supports it.
	Mode events.SyncMode `json:"mode,omitempty"`
	// Paused stops scheduled runs (manual syncs still run).
	Paused bool `json:"paused"`
}

// Scheduled reports whether the schedule names an interval or a cron
// expression.
func (s Schedule) Scheduled() bool { return s.Every != "" || s.Cron != "" }

// Credentials are a source's secrets, stored apart from the source.
type Credentials struct {
	// Sealed is the credentials document as given by the operator,
	// encrypted by the manager (AES-256-GCM, bound to the source id) under
	// the key named KeyID.
	Sealed []byte `json:"sealed,omitempty"`
	KeyID  string `json:"key_id,omitempty"`
	// Data is the document in clear: only in records written before
	// credentials were sealed; the manager never writes it.
	Data json.RawMessage `json:"data,omitempty"`
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
	// As the catalog judged the run's documents: new to the catalog,
	// changed, or seen again unchanged (no change is published for those).
	DocumentsNew       uint64 `json:"documents_new"`
	DocumentsChanged   uint64 `json:"documents_changed"`
	DocumentsUnchanged uint64 `json:"documents_unchanged"`
}

// Run is one sync of one source.
type Run struct {
	ID        string          `json:"id"`
	SourceID  string          `json:"source_id"`
	Connector string          `json:"connector"`
	Mode      events.SyncMode `json:"mode"`
	Status    RunStatus       `json:"status"`
	// Trigger says why the run exists: manual, schedule, retry, document.
	Trigger string `json:"trigger"`
	// Document is the external id of the one document the run re-fetches;
	// empty for a sync of the whole source.
	Document string `json:"document,omitempty"`
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
	// QueueReason says why a queued run was not dispatched yet: it waits
	// for a slot under the manager's run limits.
	QueueReason string `json:"queue_reason,omitempty"`
	// Total is how many items the connector expects to scan, when it said
	// (SetTotal); it gives the run an ETA.
	Total uint64 `json:"total,omitempty"`
	// Attempts are the run's attempts, oldest first.
	Attempts []Attempt `json:"attempts,omitempty"`
	// RetryOf is the run this one retries (POST /v1/runs/{id}/retry).
	RetryOf string `json:"retry_of,omitempty"`
	// Continues lists the earlier runs this one continues from their
	// checkpoint, oldest first: a retry of a run that saved one. What they
	// saw counts as seen by this run when a full sync sweeps deletions.
	Continues []string `json:"continues,omitempty"`
}

// Saw reports whether the document last seen by run lastSeen was seen by
// this run or a run it continues.
func (r *Run) Saw(lastSeen string) bool {
	if lastSeen == r.ID {
		return true
	}
	for _, id := range r.Continues {
		if id == lastSeen {
			return true
		}
	}
	return false
}

// ResumeOf is the run whose checkpoint this run continues from, or "".
func (r *Run) ResumeOf() string {
	if len(r.Continues) == 0 {
		return ""
	}
	return r.Continues[len(r.Continues)-1]
}

// Attempt is one execution of a run by a worker.
type Attempt struct {
	Number    int        `json:"number"`
	WorkerID  string     `json:"worker_id"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	// Outcome is completed, failed or cancelled for the attempt that ended
	// the run, and interrupted for one a later attempt took over from (its
	// worker stopped or lost the source's lease); empty while it runs.
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error,omitempty"`
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

// CatalogDoc is the catalog's record of one document of a source: what
// indexers were last told about it.
type CatalogDoc struct {
	SourceID   string `json:"source_id"`
	ExternalID string `json:"external_id"`
	Title      string `json:"title,omitempty"`
	ContentID  string `json:"content_id,omitempty"`
	// Hash fingerprints title, content id (content is stored once per
	// digest, so equal content has an equal id), metadata, permissions and
	// attributes.
	Hash        string             `json:"hash"`
	Metadata    events.Metadata    `json:"metadata"`
	Permissions events.Permissions `json:"permissions"`
	Attributes  map[string]any     `json:"attributes,omitempty"`
	// Status is what downstream made of the document's latest version:
	// pending until an indexer reports it indexed or failed (with Error).
	// Every change sets it back to pending.
	Status DocStatus `json:"status"`
	Error  string    `json:"error,omitempty"`
	// StatusAt is when an indexer last reported.
	StatusAt *time.Time `json:"status_at,omitempty"`
	// Origin is "sync" for documents a connector emitted and "manual" for
	// documents added or last changed through the API; a full sync's sweep
	// leaves manual documents alone.
	Origin       string `json:"origin,omitempty"`
	FirstSeenRun string `json:"first_seen_run"`
	LastSeenRun  string `json:"last_seen_run"`
	// CreatedSeq and ChangedSeq are the events-stream sequences of the
	// events that created and last changed the record, so that re-applying
	// one after a crash is recognised as the same change.
	CreatedSeq uint64    `json:"created_seq"`
	ChangedSeq uint64    `json:"changed_seq"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// DocStatus is what downstream made of a document.
type DocStatus string

// Document statuses: pending until an indexer reports.
const (
	DocPending DocStatus = "pending"
	DocIndexed DocStatus = "indexed"
	DocFailed  DocStatus = "failed"
)

// Valid reports whether s is a known status.
func (s DocStatus) Valid() bool {
	return s == DocPending || s == DocIndexed || s == DocFailed
}

// Document origins.
const (
	OriginSync   = "sync"
	OriginManual = "manual"
)

// DocID is the id of a document in the API: the catalog key without its
// source prefix (32 hex digits derived from the external id).
func DocID(externalID string) string {
	sum := sha256.Sum256([]byte(externalID))
	return hex.EncodeToString(sum[:16])
}

// CatalogKey is the catalog key of a document: the source id, a dot, and the
// first 128 bits of the SHA-256 of the external id in hex (external ids may
// hold any character; keys may not).
func CatalogKey(sourceID, externalID string) string {
	return sourceID + "." + DocID(externalID)
}
