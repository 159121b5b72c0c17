package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
)

// Type names an event. The type also ends the subject of run events.
type Type string

// The event types of protocol version 1.
const (
	TypeSyncRequested    Type = "sync.requested"
	TypeSyncCancel       Type = "sync.cancel"
	TypeDocumentUpserted Type = "document.upserted"
	TypeDocumentDeleted  Type = "document.deleted"
	TypeDocumentError    Type = "document.error"
	TypeProgress         Type = "progress"
	TypeCheckpoint       Type = "checkpoint"
	TypeRunStarted       Type = "run.started"
	TypeRunCompleted     Type = "run.completed"
	TypeRunFailed        Type = "run.failed"
	TypeRunCancelled     Type = "run.cancelled"
	// TypeCheckpointChanged records an operator's change of a source's
	// checkpoint (PUT or DELETE /v1/sources/{id}/checkpoint). The manager
	// publishes it with the run id of the change ("op-<ULID>"): it belongs
	// to no run.
	TypeCheckpointChanged Type = "checkpoint.changed"

	// The change feed (TRIBUTARY_CHANGES), published by the manager.
	TypeChangeCreated Type = "change.created"
	TypeChangeUpdated Type = "change.updated"
	TypeChangeDeleted Type = "change.deleted"
)

// Known reports whether t is one of the protocol's event types.
func (t Type) Known() bool { return newPayload(t) != nil }

// Terminal reports whether the type ends a run.
func (t Type) Terminal() bool {
	return t == TypeRunCompleted || t == TypeRunFailed || t == TypeRunCancelled
}

// SyncMode is how much of a source a sync reads.
type SyncMode string

// Sync modes.
const (
	// ModeFull reads the whole source.
	ModeFull SyncMode = "full"
	// ModeIncremental reads what changed since the checkpoint.
	ModeIncremental SyncMode = "incremental"
)

// Valid reports whether m is a known mode.
func (m SyncMode) Valid() bool { return m == ModeFull || m == ModeIncremental }

// Envelope is the one JSON shape of every Tributary message.
type Envelope struct {
	// ID is a ULID, unique per event, and the Nats-Msg-Id it is published with.
	ID string `json:"id"`
	// Type names the payload in Data.
	Type Type `json:"type"`
	// SourceID is the source the event is about.
	SourceID string `json:"source_id"`
	// RunID is the run the event is about.
	RunID string `json:"run_id"`
	// Attempt is the run's attempt that produced the event (1 for the first
	// delivery of its sync request); 0 for events the manager publishes.
	Attempt int `json:"attempt,omitempty"`
	// Seq numbers the events of one attempt from 1, in the order the worker
	// produced them; 0 for events the manager publishes.
	Seq uint64 `json:"seq"`
	// Time is when the event was produced.
	Time time.Time `json:"time"`
	// Data is the payload; its shape depends on Type.
	Data json.RawMessage `json:"data"`

	payload any
}

// SyncRequested asks a worker to run a sync. Published by the manager on
// tributary.sync.<connector>.
type SyncRequested struct {
	Connector string   `json:"connector"`
	Mode      SyncMode `json:"mode"`
	// Config is the source's configuration, valid against the connector's schema.
	Config json.RawMessage `json:"config"`
	// Credentials are the source's credentials, if any.
	Credentials json.RawMessage `json:"credentials,omitempty"`
	// Trigger says why the run exists: "manual", "schedule", "retry",
	// "document".
	Trigger string `json:"trigger,omitempty"`
	// Document, when set, is the external id of the one document the run
	// re-fetches (connectors that support it; see the SDK's DocumentSyncer).
	// Such a run saves no checkpoint and deletes nothing it did not see.
	Document string `json:"document,omitempty"`
	// ResumeOf, on a retry, names the failed or cancelled run it retries:
	// when the source's checkpoint is still that run's (not final), the
	// retry continues from it as an attempt of that run would.
	ResumeOf string `json:"resume_of,omitempty"`
}

// SyncCancel asks whoever runs the run to stop it. Published by the manager on
// tributary.cancel.<run_id>.
type SyncCancel struct {
	Reason string `json:"reason,omitempty"`
}

// DocumentUpserted reports a document the connector found (emit) or found
// changed (emit_updated).
type DocumentUpserted struct {
	Document Document `json:"document"`
	// Updated is true for emit_updated: the connector knows the document existed.
	Updated bool `json:"updated,omitempty"`
}

// DocumentDeleted reports a document that is gone from the source.
type DocumentDeleted struct {
	ExternalID string `json:"external_id"`
	Reason     string `json:"reason,omitempty"`
}

// DocumentError reports a document the connector could not read; the run goes on.
type DocumentError struct {
	ExternalID string `json:"external_id"`
	Error      string `json:"error"`
}

// Progress reports how many items the attempt has scanned so far; it doubles as
// the run's heartbeat.
type Progress struct {
	Scanned uint64 `json:"scanned"`
	// Total is how many items the connector expects to scan in all, when
	// it said (SyncContext.SetTotal); 0 when unknown.
	Total uint64 `json:"total,omitempty"`
}

// CheckpointChanged records that an operator set or reset (Checkpoint
// null) a source's checkpoint while no run was active.
type CheckpointChanged struct {
	Checkpoint json.RawMessage `json:"checkpoint"`
	// Previous is the checkpoint it replaced (null when there was none).
	Previous json.RawMessage `json:"previous"`
}

// Checkpoint carries the connector's resumable position. Every event of the
// attempt published before it is durably stored.
type Checkpoint struct {
	Checkpoint json.RawMessage `json:"checkpoint"`
}

// RunStarted reports that a worker began an attempt of a run.
type RunStarted struct {
	WorkerID  string   `json:"worker_id"`
	Connector string   `json:"connector"`
	Mode      SyncMode `json:"mode"`
	// Resumed is true when the attempt starts from a checkpoint that an
	// earlier attempt of the same run saved.
	Resumed bool `json:"resumed,omitempty"`
}

// RunCompleted ends a run successfully. Checkpoint, when set, is the run's
// final checkpoint.
type RunCompleted struct {
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
	Scanned    uint64          `json:"scanned"`
	// Total is the connector's expected total, as in Progress.
	Total uint64 `json:"total,omitempty"`
}

// RunFailed ends a run with an error, for good: a worker that wants another
// attempt hands the request back (Nak) instead.
type RunFailed struct {
	Error string `json:"error"`
}

// Change is one real change of a document, as the catalog judged it: its
// content, metadata, permissions or attributes differ from what the catalog
// held, it is new, or it is gone. Published by the manager on
// tributary.changes.<source_id>.<created|updated|deleted>; the envelope's
// run_id is the run that caused it.
type Change struct {
	ExternalID string `json:"external_id"`
	// Document is the document as it is now; absent for a deletion.
	Document *Document `json:"document,omitempty"`
	// Fingerprint identifies this version of the document (the catalog's
	// hash of title, content id, metadata, permissions and attributes);
	// absent for a deletion. A status report that names it is refused as
	// stale once the document has changed again.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Reason says why a document was deleted: "deleted_in_source" (the
	// connector reported it), "not_seen_in_full_sync" or "source_deleted";
	// on a change.created, "replay" marks a replayed document.
	Reason string `json:"reason,omitempty"`
}

// The payloads of the three change types.
type (
	// ChangeCreated reports a document new to the catalog.
	ChangeCreated Change
	// ChangeUpdated reports a document whose fingerprint changed.
	ChangeUpdated Change
	// ChangeDeleted reports a document gone from the source.
	ChangeDeleted Change
)

func validateChange(c *Change, needDoc bool) error {
	if err := prefixField("data.", validateExternalID(c.ExternalID)); err != nil {
		return err
	}
	if needDoc && c.Document == nil {
		return &FieldError{Field: "data.document", Msg: "is required"}
	}
	if c.Document != nil && c.Document.ExternalID != c.ExternalID {
		return &FieldError{Field: "data.document.external_id", Msg: "must equal data.external_id"}
	}
	return nil
}

func (p *ChangeCreated) validate() error { return validateChange((*Change)(p), true) }
func (p *ChangeUpdated) validate() error { return validateChange((*Change)(p), true) }
func (p *ChangeDeleted) validate() error { return validateChange((*Change)(p), false) }

// RunCancelled ends a run that was cancelled.
type RunCancelled struct {
	Reason string `json:"reason,omitempty"`
}

// validator is implemented by payloads with rules beyond their JSON shape.
type validator interface{ validate() error }

func (p *SyncRequested) validate() error {
	if !ValidToken(p.Connector) {
		return &FieldError{Field: "data.connector", Msg: "must be 1-128 letters, digits, '_' or '-'"}
	}
	if !p.Mode.Valid() {
		return &FieldError{Field: "data.mode", Msg: fmt.Sprintf("must be %q or %q", ModeFull, ModeIncremental)}
	}
	if len(p.Config) > 0 && !json.Valid(p.Config) {
		return &FieldError{Field: "data.config", Msg: "is not JSON"}
	}
	if len(p.Document) > MaxExternalIDLen {
		return &FieldError{Field: "data.document", Msg: fmt.Sprintf("is longer than %d bytes", MaxExternalIDLen)}
	}
	return nil
}

func (p *DocumentUpserted) validate() error {
	if err := p.Document.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &FieldError{Field: "data.document." + fe.Field, Msg: fe.Msg}
		}
		return err
	}
	return nil
}

func (p *DocumentDeleted) validate() error {
	return prefixField("data.", validateExternalID(p.ExternalID))
}

func (p *DocumentError) validate() error {
	if err := validateExternalID(p.ExternalID); err != nil {
		return prefixField("data.", err)
	}
	if p.Error == "" {
		return &FieldError{Field: "data.error", Msg: "is required"}
	}
	return nil
}

func (p *Checkpoint) validate() error {
	if len(p.Checkpoint) == 0 || bytes.Equal(p.Checkpoint, []byte("null")) {
		return &FieldError{Field: "data.checkpoint", Msg: "is required"}
	}
	return nil
}

func (p *RunStarted) validate() error {
	if p.WorkerID == "" {
		return &FieldError{Field: "data.worker_id", Msg: "is required"}
	}
	return nil
}

func (p *RunFailed) validate() error {
	if p.Error == "" {
		return &FieldError{Field: "data.error", Msg: "is required"}
	}
	return nil
}

func prefixField(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Field: prefix + fe.Field, Msg: fe.Msg}
	}
	return err
}

// newPayload returns a pointer to the zero payload of t, or nil for an
// unknown type.
func newPayload(t Type) any {
	switch t {
	case TypeSyncRequested:
		return &SyncRequested{}
	case TypeSyncCancel:
		return &SyncCancel{}
	case TypeDocumentUpserted:
		return &DocumentUpserted{}
	case TypeDocumentDeleted:
		return &DocumentDeleted{}
	case TypeDocumentError:
		return &DocumentError{}
	case TypeProgress:
		return &Progress{}
	case TypeCheckpoint:
		return &Checkpoint{}
	case TypeRunStarted:
		return &RunStarted{}
	case TypeRunCompleted:
		return &RunCompleted{}
	case TypeRunFailed:
		return &RunFailed{}
	case TypeRunCancelled:
		return &RunCancelled{}
	case TypeCheckpointChanged:
		return &CheckpointChanged{}
	case TypeChangeCreated:
		return &ChangeCreated{}
	case TypeChangeUpdated:
		return &ChangeUpdated{}
	case TypeChangeDeleted:
		return &ChangeDeleted{}
	}
	return nil
}

// typeOf maps a payload value to its event type.
func typeOf(payload any) (Type, bool) {
	switch payload.(type) {
	case *SyncRequested, SyncRequested:
		return TypeSyncRequested, true
	case *SyncCancel, SyncCancel:
		return TypeSyncCancel, true
	case *DocumentUpserted, DocumentUpserted:
		return TypeDocumentUpserted, true
	case *DocumentDeleted, DocumentDeleted:
		return TypeDocumentDeleted, true
	case *DocumentError, DocumentError:
		return TypeDocumentError, true
	case *Progress, Progress:
		return TypeProgress, true
	case *Checkpoint, Checkpoint:
		return TypeCheckpoint, true
	case *RunStarted, RunStarted:
		return TypeRunStarted, true
	case *RunCompleted, RunCompleted:
		return TypeRunCompleted, true
	case *RunFailed, RunFailed:
		return TypeRunFailed, true
	case *RunCancelled, RunCancelled:
		return TypeRunCancelled, true
	case *CheckpointChanged, CheckpointChanged:
		return TypeCheckpointChanged, true
	case *ChangeCreated, ChangeCreated:
		return TypeChangeCreated, true
	case *ChangeUpdated, ChangeUpdated:
		return TypeChangeUpdated, true
	case *ChangeDeleted, ChangeDeleted:
		return TypeChangeDeleted, true
	}
	return "", false
}

// New builds an envelope around payload (one of the payload types of this
// package, as a value or a pointer) with a fresh ULID and the current time.
// It validates the payload as Decode would.
func New(sourceID, runID string, payload any) (*Envelope, error) {
	t, ok := typeOf(payload)
	if !ok {
		return nil, fmt.Errorf("%w: unsupported payload %T", ErrInvalid, payload)
	}
	data, err := marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s payload: %w", t, err)
	}
	if bytes.Equal(data, []byte("null")) {
		return nil, fmt.Errorf("%w: nil %T payload", ErrInvalid, payload)
	}
	if len(data) > MaxEventSize {
		return nil, fmt.Errorf("%w: %s payload of %d bytes is over the %d byte event limit", ErrInvalid, t, len(data), MaxEventSize)
	}
	e := &Envelope{
		ID:       ulid.Make().String(),
		Type:     t,
		SourceID: sourceID,
		RunID:    runID,
		Time:     time.Now().UTC(),
		Data:     data,
	}
	// Validate through the same path as Decode so both ends agree.
	p := newPayload(t)
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("events: re-decode %s payload: %w", t, err)
	}
	if v, ok := p.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	if err := e.validateHeader(); err != nil {
		return nil, err
	}
	e.payload = p
	return e, nil
}

// Encode returns the envelope's JSON. An envelope over MaxEventSize is an
// error wrapping ErrInvalid: no consumer would accept it.
func (e *Envelope) Encode() ([]byte, error) {
	b, err := marshal(e)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", e.Type, err)
	}
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %s event of %d bytes is over the %d byte limit", ErrInvalid, e.Type, len(b), MaxEventSize)
	}
	return b, nil
}

// marshal is json.Marshal without HTML escaping, which would inflate '<',
// '>' and '&' sixfold for no reader's benefit.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Msg encodes the envelope as a NATS message on its subject, with the
// Nats-Msg-Id header set to its id, ready to publish to JetStream.
func (e *Envelope) Msg() (*nats.Msg, error) {
	data, err := e.Encode()
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(e.Subject())
	msg.Data = data
	msg.Header.Set(HeaderMsgID, e.ID)
	return msg, nil
}

// Subject is the subject the envelope is published on.
func (e *Envelope) Subject() string {
	switch e.Type {
	case TypeSyncRequested:
		if p, ok := e.payload.(*SyncRequested); ok {
			return SyncSubject(p.Connector)
		}
		return ""
	case TypeSyncCancel:
		return CancelSubject(e.RunID)
	case TypeChangeCreated, TypeChangeUpdated, TypeChangeDeleted:
		return ChangeSubject(e.SourceID, e.Type)
	}
	return EventSubject(e.SourceID, e.RunID, e.Type)
}

// Payload returns the decoded payload: a pointer to one of the payload types
// of this package, matching Type.
func (e *Envelope) Payload() any { return e.payload }

// MaxEventSize bounds an encoded event; JetStream's default max payload is 1 MiB.
const MaxEventSize = 1 << 20

// Decode parses and validates one encoded envelope and its payload. Every
// error it returns wraps ErrInvalid and names the offending field.
func Decode(b []byte) (*Envelope, error) {
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d byte limit", ErrInvalid, len(b), MaxEventSize)
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := e.validateHeader(); err != nil {
		return nil, err
	}
	p := newPayload(e.Type)
	if p == nil {
		return nil, &FieldError{Field: "type", Msg: fmt.Sprintf("%q is not a known event type", e.Type)}
	}
	if len(e.Data) == 0 || bytes.Equal(e.Data, []byte("null")) {
		return nil, &FieldError{Field: "data", Msg: "is required"}
	}
	if err := json.Unmarshal(e.Data, p); err != nil {
		return nil, fmt.Errorf("%w: data: %w", ErrInvalid, err)
	}
	if v, ok := p.(validator); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	e.payload = p
	return &e, nil
}

func (e *Envelope) validateHeader() error {
	if _, err := ulid.ParseStrict(e.ID); err != nil || strings.ToUpper(e.ID) != e.ID {
		// Upper case only: the id is the Nats-Msg-Id, and two spellings of
		// one ULID would defeat de-duplication.
		return &FieldError{Field: "id", Msg: "must be a ULID in upper case"}
	}
	if e.Type == "" {
		return &FieldError{Field: "type", Msg: "is required"}
	}
	if !ValidToken(e.SourceID) {
		return &FieldError{Field: "source_id", Msg: "must be 1-128 letters, digits, '_' or '-'"}
	}
	if !ValidToken(e.RunID) {
		return &FieldError{Field: "run_id", Msg: "must be 1-128 letters, digits, '_' or '-'"}
	}
	if e.Attempt < 0 {
		return &FieldError{Field: "attempt", Msg: "must not be negative"}
	}
	if e.Time.IsZero() {
		return &FieldError{Field: "time", Msg: "is required"}
	}
	return nil
}
