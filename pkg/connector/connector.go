package connector

import (
	"context"
	"encoding/json"
	"fmt"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/events"
)

// The wire types of pkg/events, named here so a connector needs only this
// package.
type (
	// Document is what a connector emits: one item of its source.
	Document = events.Document
	// Metadata describes a document (author, times, MIME type, size, URL, path).
	Metadata = events.Metadata
	// Permissions lists who may see a document.
	Permissions = events.Permissions
	// SyncMode is full or incremental.
	SyncMode = events.SyncMode
)

// The sync modes a connector can declare.
const (
	// Full reads the whole source.
	Full = events.ModeFull
	// Incremental reads what changed since the checkpoint.
	Incremental = events.ModeIncremental
)

// Connector reads one kind of source. A worker process hosts many connectors
// and may run many syncs of one connector at once, so implementations must be
// safe for concurrent use; keep per-sync state in local variables of Sync.
type Connector interface {
	// Manifest describes the connector. It is called once when the worker
	// starts and must not change afterwards.
	Manifest() Manifest

	// Sync reads the source described by req and reports what it finds
	// through sc. It runs on a worker goroutine of its own.
	//
	// Cancellation: ctx is cancelled when an operator cancels the run, when the
	// worker shuts down, or when the run's lease is lost; Sync should return
	// promptly (within a second) with ctx.Err() or nil. Everything emitted
	// before that is kept.
	//
	// Ending: returning nil completes the run, keeping the last saved
	// checkpoint unless Complete was called with a new one. Returning an
	// error, calling Fail, or panicking fails the run with that message; the
	// worker itself keeps going.
	Sync(ctx context.Context, req *SyncRequest, sc SyncContext) error
}

// Manifest describes a connector to the manager, to operators and to the API.
type Manifest struct {
	// Name identifies the connector type: 1-128 letters, digits, '_' or '-'.
	// Sources name the connector they use by this name.
	Name string `json:"name"`
	// Version is the connector's semantic version.
	Version string `json:"version"`
	// Description is one line for operators.
	Description string `json:"description,omitempty"`
	// SyncModes lists the modes Sync supports; empty means full only.
	SyncModes []SyncMode `json:"sync_modes"`
	// Actions lists custom actions operators can run (see ActionExecutor).
	Actions []ActionDefinition `json:"actions,omitempty"`
	// ConfigSchema is a JSON Schema (draft 2020-12) for the source
	// configuration; the manager rejects configs that fail it. Empty accepts
	// any JSON object.
	ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
	// DocumentSync says the connector can re-fetch one document (it
	// implements DocumentSyncer). The worker sets it when it registers the
	// connector; there is no need to set it by hand.
	DocumentSync bool `json:"document_sync,omitempty"`
	// ConnectionTest says the connector can test a source's connection (it
	// implements ConnectionTester). The worker sets it, as DocumentSync.
	ConnectionTest bool `json:"connection_test,omitempty"`
}

// Supports reports whether the manifest lists mode.
func (m Manifest) Supports(mode SyncMode) bool {
	if len(m.SyncModes) == 0 {
		return mode == Full
	}
	for _, s := range m.SyncModes {
		if s == mode {
			return true
		}
	}
	return false
}

// Validate checks a manifest before a worker registers it.
func (m Manifest) Validate() error {
	if !events.ValidToken(m.Name) {
		return fmt.Errorf("connector: manifest name %q must be 1-128 letters, digits, '_' or '-'", m.Name)
	}
	if m.Version == "" {
		return fmt.Errorf("connector %s: manifest version is required", m.Name)
	}
	for _, s := range m.SyncModes {
		if !s.Valid() {
			return fmt.Errorf("connector %s: unknown sync mode %q", m.Name, s)
		}
	}
	if len(m.ConfigSchema) > 0 && !json.Valid(m.ConfigSchema) {
		return fmt.Errorf("connector %s: config schema is not valid JSON", m.Name)
	}
	seen := map[string]bool{}
	for _, a := range m.Actions {
		if a.Name == "" || seen[a.Name] {
			return fmt.Errorf("connector %s: action names must be unique and non-empty", m.Name)
		}
		seen[a.Name] = true
		if err := a.validate(); err != nil {
			return fmt.Errorf("connector %s: %w", m.Name, err)
		}
	}
	return nil
}

// DocumentSyncer is implemented by connectors that can re-fetch one
// document, for POST /v1/sources/{id}/documents/{doc_id}/sync. SyncDocument
// reads the document req.Document names and emits it (Emit or EmitUpdated),
// or EmitDeleted when the source no longer has it, then returns nil (or
// calls Complete). It saves no checkpoint: SaveCheckpoint returns an error,
// and a checkpoint given to Complete is ignored. Cancellation is the
// context's, as in Sync.
type DocumentSyncer interface {
	SyncDocument(ctx context.Context, req *SyncRequest, sc SyncContext) error
}

// SyncRequest is what one attempt of a run is asked to do.
type SyncRequest struct {
	// SourceID and RunID identify the source and the run.
	SourceID string
	RunID    string
	// Mode is full or incremental.
	Mode SyncMode
	// Config is the source configuration, already valid against the
	// manifest's ConfigSchema.
	Config json.RawMessage
	// Credentials are the source's credentials, or nil.
	Credentials json.RawMessage
	// Checkpoint is the last checkpoint saved for the source, or nil when
	// there is none. With Resumed it was saved by an earlier attempt of this
	// very run: continue after it. Otherwise it is the previous run's.
	Checkpoint json.RawMessage
	// Resumed is true when this attempt continues an interrupted run.
	Resumed bool
	// Attempt counts the attempts of this run, from 1.
	Attempt int
	// Document is the external id of the one document a DocumentSyncer is
	// asked to re-fetch; empty for a sync of the whole source.
	Document string
}

// DecodeConfig unmarshals the source configuration into v.
func (r *SyncRequest) DecodeConfig(v any) error {
	if len(r.Config) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Config, v); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

// DecodeCredentials unmarshals the source's credentials into v and reports
// whether there were any.
func (r *SyncRequest) DecodeCredentials(v any) (bool, error) {
	if len(r.Credentials) == 0 || string(r.Credentials) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(r.Credentials, v); err != nil {
		return false, fmt.Errorf("decode credentials: %w", err)
	}
	return true, nil
}

// DecodeCheckpoint unmarshals the checkpoint into v and reports whether there
// was one.
func (r *SyncRequest) DecodeCheckpoint(v any) (bool, error) {
	if len(r.Checkpoint) == 0 || string(r.Checkpoint) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(r.Checkpoint, v); err != nil {
		return false, fmt.Errorf("decode checkpoint: %w", err)
	}
	return true, nil
}

// SyncContext is how a sync reports what it finds. One SyncContext serves one
// attempt of one run; its methods are safe for concurrent use by the
// goroutines of that sync.
//
// Emit, EmitUpdated, EmitDeleted and EmitError publish asynchronously: they
// return once the event is handed to the bus, and block only while too many
// events are unacknowledged. SaveCheckpoint and Complete first wait until
// JetStream has stored every earlier event, so a stored checkpoint never
// covers a document that is not durably stored.
type SyncContext interface {
	// Emit reports a document found in the source.
	Emit(ctx context.Context, doc Document) error
	// EmitUpdated reports a document the connector knows has changed.
	EmitUpdated(ctx context.Context, doc Document) error
	// EmitDeleted reports that a document is gone from the source.
	EmitDeleted(ctx context.Context, externalID string) error
	// EmitError reports that one document could not be read; the sync goes on.
	EmitError(ctx context.Context, externalID string, err error) error
	// IncrementScanned adds n to the scanned counter. The worker reports the
	// counter periodically; that report is also the run's heartbeat.
	IncrementScanned(n int)
	// SetTotal says how many items the sync expects to scan in all (the
	// whole source, also when resumed), so operators see an ETA. Optional:
	// call it when the number is known; later calls replace it.
	SetTotal(n int)
	// SaveCheckpoint stores a resumable position (any JSON-encodable value)
	// after every earlier event is stored. A resumed attempt receives it as
	// SyncRequest.Checkpoint.
	SaveCheckpoint(ctx context.Context, checkpoint any) error
	// Complete ends the run successfully with a final checkpoint (nil keeps
	// the last saved one). Sync should return nil after it.
	Complete(ctx context.Context, checkpoint any) error
	// Fail ends the run with an error. Sync should return after it.
	Fail(ctx context.Context, err error) error
	// Content stores document content.
	Content() ContentStorage
	// Logger returns a logger carrying source_id, run_id and worker_id.
	Logger() *zap.Logger
}

// ContentStorage stores document content in the JetStream object store and
// returns content ids (ULIDs) to put in Document.ContentID. Each object keeps
// the SHA-256 of its bytes, and identical content is stored once: saving it
// again returns the same id.
type ContentStorage interface {
	// Save stores text content of the given type ("text/plain" when empty).
	Save(ctx context.Context, text string, contentType string) (string, error)
	// SaveBinary stores bytes of the given type.
	SaveBinary(ctx context.Context, data []byte, contentType string) (string, error)
	// ExtractText returns the plain text of a document's bytes: plain text,
	// Markdown, HTML (the visible text), CSV, JSON, PDF, DOCX, PPTX or XLSX.
	// The type is mimeType, else the type of filename's extension, else what
	// the bytes look like. An unknown type is an error wrapping
	// ErrUnsupportedContent, input over 50 MiB one wrapping
	// ErrContentTooLarge, bytes that do not parse one wrapping
	// ErrMalformedContent; text over 5 MiB is cut and Extracted.Truncated set.
	// Any other error is the store's.
	ExtractText(ctx context.Context, data []byte, mimeType, filename string) (Extracted, error)
	// ExtractAndStore extracts the text as ExtractText does and stores it
	// (as "text/plain; charset=utf-8"), returning its content id.
	ExtractAndStore(ctx context.Context, data []byte, mimeType, filename string) (string, Extracted, error)
}

// Extracted is the text of a document.
type Extracted struct {
	Text string
	// MimeType is the type the bytes were read as.
	MimeType string
	// Truncated is true when the text was cut at the 5 MiB limit.
	Truncated bool
}
