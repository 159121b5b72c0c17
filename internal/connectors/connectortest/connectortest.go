// Package connectortest runs a connector against a recording
// connector.SyncContext, for unit tests of connectors that need no NATS.
//
// A Recorder keeps every emit, update, delete, error, checkpoint, completion
// and failure in the order the connector made them. Checkpoints are encoded
// to JSON at the moment they are saved, as the worker does, so a connector
// that keeps mutating its checkpoint value afterwards is recorded faithfully.
//
// It tests one call of Sync in isolation. To run syncs through the real
// worker runtime and manager, and for the conformance suite every connector
// must pass, see the public pkg/connector/connectortest.
package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/extract"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// Kind is the kind of a recorded event.
type Kind string

// The kinds of event a Recorder records.
const (
	Emit       Kind = "emit"
	Update     Kind = "update"
	Delete     Kind = "delete"
	Error      Kind = "error"
	Checkpoint Kind = "checkpoint"
	Complete   Kind = "complete"
	Fail       Kind = "fail"
)

// Event is one recorded call.
type Event struct {
	Kind Kind
	// ID is the external id of an emit, update, delete or error.
	ID string
	// Doc is the document of an emit or update.
	Doc connector.Document
	// Err is the message of an error or a failure.
	Err string
	// Checkpoint is the JSON of a checkpoint or of a completion's final
	// checkpoint (nil when Complete kept the last one).
	Checkpoint json.RawMessage
}

// Content is one item stored through the recorder's ContentStorage.
type Content struct {
	Data        []byte
	ContentType string
	Binary      bool
}

// Recorder is a connector.SyncContext that records what a sync reports. Its
// methods are safe for concurrent use. Like the worker's, its methods return
// ctx.Err() without recording when ctx is done, and connector.ErrRunFinished
// after Complete or Fail.
type Recorder struct {
	// After, when set, runs after each event is recorded, under no lock; a
	// non-nil result is what the SyncContext method returns. Use it to cancel
	// a context or to stop a sync at a chosen point.
	After func(e Event, index int) error

	// IgnoreContext makes calls succeed even when their context is done, as
	// an asynchronous publish that need not wait may. Set it to check that a
	// connector notices cancellation itself rather than through the
	// SyncContext's errors.
	IgnoreContext bool

	log *zap.Logger

	mu       sync.Mutex
	events   []Event
	scanned  int
	total    int
	refused  int
	content  map[string]Content
	finished bool
}

var _ connector.SyncContext = (*Recorder)(nil)

// New returns an empty recorder that logs to tb.
func New(tb testing.TB) *Recorder {
	return &Recorder{log: zaptest.NewLogger(tb), content: map[string]Content{}}
}

func (r *Recorder) record(ctx context.Context, e Event) error {
	r.mu.Lock()
	if err := ctx.Err(); err != nil && !r.IgnoreContext {
		r.refused++
		r.mu.Unlock()
		return err
	}
	if r.finished {
		r.refused++
		r.mu.Unlock()
		return connector.ErrRunFinished
	}
	if e.Kind == Complete || e.Kind == Fail {
		r.finished = true
	}
	r.events = append(r.events, e)
	i := len(r.events) - 1
	after := r.After
	r.mu.Unlock()
	if after != nil {
		return after(e, i)
	}
	return nil
}

func (r *Recorder) emit(ctx context.Context, kind Kind, doc connector.Document) error {
	if err := doc.Validate(); err != nil {
		return fmt.Errorf("emit %q: %w", doc.ExternalID, err)
	}
	return r.record(ctx, Event{Kind: kind, ID: doc.ExternalID, Doc: doc})
}

// Emit implements connector.SyncContext.
func (r *Recorder) Emit(ctx context.Context, doc connector.Document) error {
	return r.emit(ctx, Emit, doc)
}

// EmitUpdated implements connector.SyncContext.
func (r *Recorder) EmitUpdated(ctx context.Context, doc connector.Document) error {
	return r.emit(ctx, Update, doc)
}

// EmitDeleted implements connector.SyncContext.
func (r *Recorder) EmitDeleted(ctx context.Context, externalID string) error {
	if externalID == "" {
		return errors.New("emit deleted: empty external id")
	}
	return r.record(ctx, Event{Kind: Delete, ID: externalID})
}

// EmitError implements connector.SyncContext.
func (r *Recorder) EmitError(ctx context.Context, externalID string, err error) error {
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	return r.record(ctx, Event{Kind: Error, ID: externalID, Err: msg})
}

// IncrementScanned implements connector.SyncContext.
func (r *Recorder) IncrementScanned(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanned += n
}

// SetTotal implements connector.SyncContext.
func (r *Recorder) SetTotal(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = n
}

// SaveCheckpoint implements connector.SyncContext.
func (r *Recorder) SaveCheckpoint(ctx context.Context, checkpoint any) error {
	raw, err := encode(checkpoint)
	if err != nil {
		return err
	}
	if raw == nil {
		return errors.New("save checkpoint: checkpoint is nil")
	}
	return r.record(ctx, Event{Kind: Checkpoint, Checkpoint: raw})
}

// Complete implements connector.SyncContext.
func (r *Recorder) Complete(ctx context.Context, checkpoint any) error {
	raw, err := encode(checkpoint)
	if err != nil {
		return err
	}
	return r.record(ctx, Event{Kind: Complete, Checkpoint: raw})
}

// Fail implements connector.SyncContext.
func (r *Recorder) Fail(ctx context.Context, err error) error {
	msg := "sync failed"
	if err != nil {
		msg = err.Error()
	}
	return r.record(ctx, Event{Kind: Fail, Err: msg})
}

// Content implements connector.SyncContext.
func (r *Recorder) Content() connector.ContentStorage { return storage{r} }

// Logger implements connector.SyncContext.
func (r *Recorder) Logger() *zap.Logger { return r.log }

type storage struct{ r *Recorder }

func (s storage) Save(ctx context.Context, text, contentType string) (string, error) {
	if contentType == "" {
		contentType = "text/plain"
	}
	return s.put(ctx, Content{Data: []byte(text), ContentType: contentType})
}

func (s storage) SaveBinary(ctx context.Context, data []byte, contentType string) (string, error) {
	return s.put(ctx, Content{Data: slices.Clone(data), ContentType: contentType, Binary: true})
}

// ExtractText uses the worker's extractor, so connectors see real text.
func (s storage) ExtractText(_ context.Context, data []byte, mimeType, filename string) (connector.Extracted, error) {
	return extract.ForConnector(data, mimeType, filename)
}

// ExtractAndStore implements connector.ContentStorage.
func (s storage) ExtractAndStore(ctx context.Context, data []byte, mimeType, filename string) (string, connector.Extracted, error) {
	ex, err := s.ExtractText(ctx, data, mimeType, filename)
	if err != nil {
		return "", ex, err
	}
	id, err := s.Save(ctx, ex.Text, "text/plain; charset=utf-8")
	return id, ex, err
}

func (s storage) put(ctx context.Context, c Content) (string, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if err := ctx.Err(); err != nil && !s.r.IgnoreContext {
		s.r.refused++
		return "", err
	}
	id := fmt.Sprintf("content-%d", len(s.r.content)+1)
	s.r.content[id] = c
	return id, nil
}

func encode(cp any) (json.RawMessage, error) {
	if cp == nil {
		return nil, nil
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}

// Events returns a copy of the recorded events, in order.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Scanned returns the sum of IncrementScanned calls.
func (r *Recorder) Scanned() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.scanned
}

// Refused returns how many calls were refused because their context was
// done or the run had finished. A connector that stops promptly on
// cancellation makes at most one such call.
func (r *Recorder) Refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// ContentOf returns the content a document references.
func (r *Recorder) ContentOf(doc connector.Document) (Content, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.content[doc.ContentID]
	return c, ok
}

// IDs returns, in order, the external ids of the events of the given kinds.
func (r *Recorder) IDs(kinds ...Kind) []string {
	var out []string
	for _, e := range r.Events() {
		if slices.Contains(kinds, e.Kind) {
			out = append(out, e.ID)
		}
	}
	return out
}

// Docs returns the documents emitted or updated, by external id; a later one
// replaces an earlier one.
func (r *Recorder) Docs() map[string]connector.Document {
	out := map[string]connector.Document{}
	for _, e := range r.Events() {
		if e.Kind == Emit || e.Kind == Update {
			out[e.ID] = e.Doc
		}
	}
	return out
}

// Checkpoints returns the JSON of every saved checkpoint, in order.
func (r *Recorder) Checkpoints() []json.RawMessage {
	var out []json.RawMessage
	for _, e := range r.Events() {
		if e.Kind == Checkpoint {
			out = append(out, e.Checkpoint)
		}
	}
	return out
}

// Final returns the checkpoint the sync completed with and whether it
// completed at all.
func (r *Recorder) Final() (json.RawMessage, bool) {
	for _, e := range r.Events() {
		if e.Kind == Complete {
			return e.Checkpoint, true
		}
	}
	return nil, false
}

// LastCheckpoint returns the checkpoint a resumed attempt would receive: the
// completion's when there is one, else the last saved, else nil.
func (r *Recorder) LastCheckpoint() json.RawMessage {
	var last json.RawMessage
	for _, e := range r.Events() {
		if (e.Kind == Checkpoint || e.Kind == Complete) && e.Checkpoint != nil {
			last = e.Checkpoint
		}
	}
	return last
}

// CheckpointsBehindData checks that no checkpoint runs ahead of the data: for
// every saved or final checkpoint, each external id that covered says it
// covers was emitted, updated or deleted before it, or is in baseline (what
// earlier runs or attempts already reported). It returns the first violation.
func (r *Recorder) CheckpointsBehindData(covered func(json.RawMessage) ([]string, error), baseline ...string) error {
	seen := map[string]bool{}
	for _, id := range baseline {
		seen[id] = true
	}
	for i, e := range r.Events() {
		switch e.Kind {
		case Emit, Update, Delete:
			seen[e.ID] = true
		case Checkpoint, Complete:
			if e.Checkpoint == nil {
				continue
			}
			ids, err := covered(e.Checkpoint)
			if err != nil {
				return fmt.Errorf("event %d: %w", i, err)
			}
			for _, id := range ids {
				if !seen[id] {
					return fmt.Errorf("event %d: %s %s covers %q, which was not reported before it", i, e.Kind, e.Checkpoint, id)
				}
			}
		}
	}
	return nil
}

// StopAtCheckpoint returns an After hook that makes the n-th SaveCheckpoint
// (from 1) return connector.ErrStopRequested after storing it, as a worker
// that is shutting down does.
func StopAtCheckpoint(n int) func(Event, int) error {
	var mu sync.Mutex
	seen := 0
	return func(e Event, _ int) error {
		if e.Kind != Checkpoint {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			return connector.ErrStopRequested
		}
		return nil
	}
}
