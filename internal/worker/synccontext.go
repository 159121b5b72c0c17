package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
)

// outcome is how an attempt ended, as the connector reported it.
type outcome int

const (
	outcomeNone outcome = iota
	outcomeCompleted
	outcomeFailed
)

// syncContext implements connector.SyncContext for one attempt.
type syncContext struct {
	pub     *publisher
	content connector.ContentStorage
	log     *zap.Logger

	scanned atomic.Uint64
	total   atomic.Uint64
	// stopRequested is set when the worker shuts down: the next
	// SaveCheckpoint returns ErrStopRequested and sets handedOff.
	stopRequested atomic.Bool
	handedOff     atomic.Bool
	// document is set when the run re-fetches one document: no checkpoints.
	document bool

	mu       sync.Mutex
	finished bool // Complete or Fail called, or the sync returned
	outcome  outcome
	finalCP  json.RawMessage
	failErr  error
}

var _ connector.SyncContext = (*syncContext)(nil)

func (s *syncContext) checkOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return connector.ErrRunFinished
	}
	return nil
}

func (s *syncContext) emit(ctx context.Context, doc connector.Document, updated bool) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := doc.Validate(); err != nil {
		return fmt.Errorf("emit %q: %w", doc.ExternalID, err)
	}
	return s.pub.async(ctx, &events.DocumentUpserted{Document: doc, Updated: updated})
}

func (s *syncContext) Emit(ctx context.Context, doc connector.Document) error {
	return s.emit(ctx, doc, false)
}

func (s *syncContext) EmitUpdated(ctx context.Context, doc connector.Document) error {
	return s.emit(ctx, doc, true)
}

func (s *syncContext) EmitDeleted(ctx context.Context, externalID string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	return s.pub.async(ctx, &events.DocumentDeleted{ExternalID: externalID})
}

func (s *syncContext) EmitError(ctx context.Context, externalID string, err error) error {
	if err2 := s.checkOpen(); err2 != nil {
		return err2
	}
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	return s.pub.async(ctx, &events.DocumentError{ExternalID: externalID, Error: msg})
}

func (s *syncContext) IncrementScanned(n int) {
	if n > 0 {
		s.scanned.Add(uint64(n))
	}
}

func (s *syncContext) SetTotal(n int) {
	if n >= 0 {
		s.total.Store(uint64(n))
	}
}

func (s *syncContext) SaveCheckpoint(ctx context.Context, checkpoint any) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if s.document {
		return errors.New("save checkpoint: a run that re-fetches one document saves no checkpoint")
	}
	raw, err := encodeCheckpoint(checkpoint)
	if err != nil {
		return err
	}
	if raw == nil {
		return errors.New("save checkpoint: checkpoint is nil")
	}
	// sync waits for every earlier event before publishing the checkpoint.
	if err := s.pub.sync(ctx, &events.Checkpoint{Checkpoint: raw}); err != nil {
		return err
	}
	if s.stopRequested.Load() {
		s.handedOff.Store(true)
		return connector.ErrStopRequested
	}
	return nil
}

func (s *syncContext) Complete(_ context.Context, checkpoint any) error {
	raw, err := encodeCheckpoint(checkpoint)
	if err != nil {
		return err
	}
	if s.document {
		raw = nil // the source's checkpoint stays the last sync's
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return connector.ErrRunFinished
	}
	s.finished, s.outcome, s.finalCP = true, outcomeCompleted, raw
	return nil
}

func (s *syncContext) Fail(_ context.Context, err error) error {
	if err == nil {
		err = errors.New("sync failed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return connector.ErrRunFinished
	}
	s.finished, s.outcome, s.failErr = true, outcomeFailed, err
	return nil
}

func (s *syncContext) Content() connector.ContentStorage { return s.content }

func (s *syncContext) Logger() *zap.Logger { return s.log }

// close stops further events and returns what the connector reported.
func (s *syncContext) close() (outcome, json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
	return s.outcome, s.finalCP, s.failErr
}

func encodeCheckpoint(cp any) (json.RawMessage, error) {
	if cp == nil {
		return nil, nil
	}
	if raw, ok := cp.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, errors.New("checkpoint is not valid JSON")
		}
		return raw, nil
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
