package manager

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Triggers say why a run exists.
const (
	TriggerManual = "manual"
	// TriggerDocument: the run re-fetches one document.
	TriggerDocument = "document"
)

// deletingPrefix marks the active-run claim a source deletion holds; a
// claim older than deletingClaimTTL is a deletion that stopped half way and
// may be taken over.
const (
	deletingPrefix   = "deleting-"
	deletingClaimTTL = 2 * time.Minute
)

// activeRun returns the queued or running run of a source, or nil.
func (m *Manager) activeRun(ctx context.Context, sourceID string) (*state.Run, error) {
	a, _, err := m.store.Active.Get(ctx, sourceID)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("read active run", err)
	}
	run, _, err := m.store.Runs.Get(ctx, a.RunID)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("read run", err)
	}
	if run.Status.Terminal() {
		return nil, nil
	}
	return run, nil
}

// TriggerSync queues a run of the source and dispatches its request. mode
// may be empty: incremental when the source has a checkpoint and the
// connector supports it, full otherwise. A source has at most one active run:
// a second trigger gets a ConflictError naming the active run.
func (m *Manager) TriggerSync(ctx context.Context, sourceID string, mode events.SyncMode, trigger string) (*state.Run, error) {
	src, err := m.GetSource(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	return m.triggerSync(ctx, src, mode, trigger)
}

// triggerSync is TriggerSync for a source already read.
func (m *Manager) triggerSync(ctx context.Context, src *state.Source, mode events.SyncMode, trigger string) (*state.Run, error) {
	sourceID := src.ID
	man, err := m.Connector(ctx, src.Connector)
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nil, invalid("unknown_connector", fmt.Sprintf("Connector %q of this source is not registered by any worker", src.Connector), "body", "connector")
	} else if err != nil {
		return nil, err
	}
	if mode == "" {
		mode = events.ModeFull
		if _, _, err := m.store.Checkpoints.Get(ctx, sourceID); err == nil && man.Supports(events.ModeIncremental) {
			mode = events.ModeIncremental
		} else if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, unavailable("read checkpoint", err)
		}
	} else if !mode.Valid() {
		return nil, invalid("enum", `Input should be "full" or "incremental"`, "body", "mode")
	} else if !man.Supports(mode) {
		return nil, invalid("unsupported_mode", fmt.Sprintf("Connector %q does not support %s sync", man.Name, mode), "body", "mode")
	}

	return m.startRun(ctx, src, mode, trigger, "")
}

// TriggerRetry marks runs that retry a failed or cancelled run.
const TriggerRetry = "retry"

// CodeNotRetryable is the conflict of retrying a run that did not fail and was not cancelled.
const CodeNotRetryable = "not_retryable"

// RetryRun starts a new run that redoes a failed or cancelled one: same
// mode (and document, for a re-fetch). When it is the source's latest run
// and left a checkpoint that is not final, the retry continues from it as
// a later attempt of that run would, and counts what that run saw as seen.
func (m *Manager) RetryRun(ctx context.Context, id string) (*state.Run, error) {
	old, err := m.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	if old.Status != state.RunFailed && old.Status != state.RunCancelled {
		return nil, &ConflictError{Code: CodeNotRetryable, RunID: old.ID,
			Message: fmt.Sprintf("run %s is %s: only failed and cancelled runs can be retried", old.ID, old.Status)}
	}
	src, err := m.GetSource(ctx, old.SourceID)
	if err != nil {
		return nil, err
	}
	var cont []string
	if old.Document == "" {
		cp, _, err := m.store.Checkpoints.Get(ctx, old.SourceID)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, unavailable("read checkpoint", err)
		}
		// Only while nothing ran since: the checkpoint is then the one
		// the failed run (or a run it continued) left.
		if cp != nil && !cp.Final && src.LastRunID == old.ID && old.Saw(cp.RunID) {
			cont = append(append(cont, old.Continues...), old.ID)
		}
	}
	return m.startRunWith(ctx, src, old.Mode, TriggerRetry, old.Document, func(r *state.Run) {
		r.RetryOf, r.Continues = old.ID, cont
	})
}

// startRun stores a queued run, claims the source for it and dispatches it.
func (m *Manager) startRun(ctx context.Context, src *state.Source, mode events.SyncMode, trigger, document string) (*state.Run, error) {
	return m.startRunWith(ctx, src, mode, trigger, document, nil)
}

func (m *Manager) startRunWith(ctx context.Context, src *state.Source, mode events.SyncMode, trigger, document string, init func(*state.Run)) (*state.Run, error) {
	sourceID := src.ID
	now := time.Now().UTC()
	run := &state.Run{
		ID: ulid.Make().String(), SourceID: sourceID, Connector: src.Connector, Mode: mode,
		Status: state.RunQueued, Trigger: trigger, Document: document, CreatedAt: now, UpdatedAt: now,
		RequestID: ulid.Make().String(),
	}
	if init != nil {
		init(run)
	}
	if _, err := m.store.Runs.Create(ctx, run.ID, run); err != nil {
		return nil, unavailable("store run", err)
	}
	if err := m.claimActive(ctx, sourceID, run.ID); err != nil {
		_ = m.store.Runs.Delete(context.WithoutCancel(ctx), run.ID, 0)
		return nil, err
	}
	if why := m.adm.tryTake(waitingRun{runID: run.ID, sourceID: sourceID, connector: src.Connector}); why != "" {
		// Over a limit: it waits, in order, for the admit loop.
		if r, _, err := m.store.Runs.Mutate(ctx, run.ID, func(r *state.Run) error {
			if r.Dispatched || r.Status.Terminal() {
				return errUnchanged
			}
			r.QueueReason = why
			return nil
		}); err == nil {
			run = r
		}
		m.recordLastRun(ctx, sourceID, run.ID)
		m.log.Info("run waits for a slot", zap.String("run_id", run.ID), zap.String("source_id", sourceID), zap.String("reason", why))
		return run, nil
	}
	if err := m.dispatch(ctx, src, run); err != nil {
		// Nothing will run it: end it now so the source is free again.
		m.endRun(context.WithoutCancel(ctx), run.ID, state.RunFailed, "dispatch failed: "+err.Error())
		return nil, err
	}
	m.recordLastRun(ctx, sourceID, run.ID)
	run.Dispatched = true
	return run, nil
}

func (m *Manager) recordLastRun(ctx context.Context, sourceID, runID string) {
	if _, _, err := m.mutateSource(ctx, sourceID, func(s *state.Source) error {
		s.LastRunID = runID
		return nil
	}); err != nil && !errors.Is(err, state.ErrNotFound) {
		m.log.Warn("record last run", zap.String("source_id", sourceID), zap.Error(err))
	}
}

// claimActive makes runID the source's active run, unless another run is
// active. A stale claim (its run ended or is gone) is taken over with
// compare-and-set.
func (m *Manager) claimActive(ctx context.Context, sourceID, runID string) error {
	rec := &state.Active{RunID: runID, CreatedAt: time.Now().UTC()}
	for i := 0; i < 5; i++ {
		_, err := m.store.Active.Create(ctx, sourceID, rec)
		if err == nil {
			return nil
		}
		if !errors.Is(err, state.ErrExists) {
			return unavailable("claim source", err)
		}
		cur, rev, err := m.store.Active.Get(ctx, sourceID)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return unavailable("read active run", err)
		}
		if strings.HasPrefix(cur.RunID, deletingPrefix) && time.Since(cur.CreatedAt) < deletingClaimTTL {
			return &ConflictError{Code: CodeRunActive, Message: fmt.Sprintf("source %s is being deleted", sourceID)}
		}
		if strings.HasPrefix(cur.RunID, opPrefix) && time.Since(cur.CreatedAt) < deletingClaimTTL {
			return &ConflictError{Code: CodeRunActive, Message: fmt.Sprintf("source %s's checkpoint is being changed", sourceID)}
		}
		other, _, err := m.store.Runs.Get(ctx, cur.RunID)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return unavailable("read run", err)
		}
		if err == nil && !other.Status.Terminal() {
			return &ConflictError{Code: CodeRunActive, RunID: other.ID,
				Message: fmt.Sprintf("source %s already has an active run %s (%s)", sourceID, other.ID, other.Status)}
		}
		if _, err := m.store.Active.Update(ctx, sourceID, rec, rev); err == nil {
			return nil
		} else if !errors.Is(err, state.ErrConflict) {
			return unavailable("claim source", err)
		}
	}
	return &ConflictError{Code: CodeRunActive, Message: fmt.Sprintf("source %s is being claimed by another request", sourceID)}
}

// dispatch publishes the run's sync request and records that it did.
func (m *Manager) dispatch(ctx context.Context, src *state.Source, run *state.Run) error {
	req, err := m.syncRequestFor(ctx, src)
	if err != nil {
		return err
	}
	req.Mode, req.Trigger, req.Document, req.ResumeOf = run.Mode, run.Trigger, run.Document, run.ResumeOf()
	env, err := events.New(src.ID, run.ID, req)
	if err != nil {
		return fmt.Errorf("build sync request: %w", err)
	}
	env.ID = run.RequestID // stable across re-dispatch, so JetStream de-duplicates it
	msg, err := env.Msg()
	if err != nil {
		return err
	}
	if _, err := m.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(events.StreamSync)); err != nil {
		return unavailable("publish sync request", err)
	}
	if _, _, err := m.store.Runs.Mutate(ctx, run.ID, func(r *state.Run) error {
		r.Dispatched, r.QueueReason = true, ""
		return nil
	}); err != nil && !errors.Is(err, state.ErrNotFound) {
		// The request is out; a later re-dispatch is de-duplicated or dropped
		// by the worker, so this is not fatal.
		m.log.Warn("record dispatch", zap.String("run_id", run.ID), zap.Error(err))
	}
	return nil
}

// syncRequestFor is a sync request for the source, with its credentials
// in clear: they travel to the worker only in the request of a run.
func (m *Manager) syncRequestFor(ctx context.Context, src *state.Source) (*events.SyncRequested, error) {
	req := &events.SyncRequested{Connector: src.Connector, Config: src.Config}
	if !src.HasCredentials {
		return req, nil
	}
	c, _, err := m.store.Credentials.Get(ctx, src.ID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, unavailable("read credentials", err)
	}
	if c != nil {
		if req.Credentials, err = m.unseal(src.ID, c); err != nil {
			return nil, err
		}
	}
	return req, nil
}

// endRun marks a run terminal (if it is not already) and frees its source.
func (m *Manager) endRun(ctx context.Context, runID string, status state.RunStatus, msg string) {
	ended := false
	run, _, err := m.store.Runs.Mutate(ctx, runID, func(r *state.Run) error {
		ended = false
		if r.Status.Terminal() {
			return nil
		}
		now := time.Now().UTC()
		r.Status, r.Error, r.FinishedAt, r.UpdatedAt = status, msg, &now, now
		endAttempt(r, now, string(status), msg)
		ended = true
		return nil
	})
	if err != nil {
		m.log.Warn("end run", zap.String("run_id", runID), zap.Error(err))
		return
	}
	m.releaseActive(ctx, run.SourceID, runID)
	if ended {
		m.onRunEnded(ctx, run)
	}
}

// releaseActive frees the source if runID is still its active run.
func (m *Manager) releaseActive(ctx context.Context, sourceID, runID string) {
	a, rev, err := m.store.Active.Get(ctx, sourceID)
	if err != nil || a.RunID != runID {
		return
	}
	if err := m.store.Active.Delete(ctx, sourceID, rev); err != nil && !errors.Is(err, state.ErrConflict) {
		m.log.Warn("release source", zap.String("source_id", sourceID), zap.Error(err))
	}
}

// GetRun returns one run.
func (m *Manager) GetRun(ctx context.Context, id string) (*state.Run, error) {
	if !events.ValidToken(id) {
		return nil, &NotFoundError{Kind: "run", ID: id}
	}
	run, _, err := m.store.Runs.Get(ctx, id)
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "run", ID: id}
	}
	if err != nil {
		return nil, unavailable("read run", err)
	}
	return run, nil
}

// RunFilter selects runs; empty fields match everything.
type RunFilter struct {
	SourceID string
	Status   state.RunStatus
}

// ListRuns returns the runs that match, newest first.
func (m *Manager) ListRuns(ctx context.Context, f RunFilter) ([]*state.Run, error) {
	entries, err := m.store.Runs.List(ctx)
	if err != nil {
		return nil, unavailable("list runs", err)
	}
	out := make([]*state.Run, 0, len(entries))
	for _, e := range entries {
		r := e.Value
		if (f.SourceID == "" || r.SourceID == f.SourceID) && (f.Status == "" || r.Status == f.Status) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

// CancelRun asks a run to stop. A queued run is cancelled at once and never
// starts; a running one is cancelled by its worker within a second.
func (m *Manager) CancelRun(ctx context.Context, id string) (*state.Run, error) {
	run, err := m.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	if run.Status.Terminal() {
		return nil, &ConflictError{Code: CodeRunNotActive, RunID: run.ID,
			Message: fmt.Sprintf("run %s already ended (%s)", run.ID, run.Status)}
	}
	// The cancel request goes out first: whichever worker holds or later
	// takes the request sees it.
	env, err := events.New(run.SourceID, run.ID, &events.SyncCancel{Reason: "cancelled by operator"})
	if err != nil {
		return nil, err
	}
	msg, err := env.Msg()
	if err != nil {
		return nil, err
	}
	if _, err := m.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(events.StreamCancel)); err != nil {
		return nil, unavailable("publish cancel", err)
	}
	var wasQueued bool
	run, _, err = m.store.Runs.Mutate(ctx, id, func(r *state.Run) error {
		wasQueued = false
		if r.Status.Terminal() {
			// The worker may have ended it already, before this write.
			if r.Status == state.RunCancelled {
				r.CancelRequested = true
			}
			return nil
		}
		now := time.Now().UTC()
		r.CancelRequested, r.UpdatedAt = true, now
		if r.Status == state.RunQueued {
			wasQueued = true
			r.Status, r.FinishedAt, r.Error = state.RunCancelled, &now, "cancelled before start"
		}
		return nil
	})
	if err != nil {
		return nil, unavailable("cancel run", err)
	}
	if wasQueued {
		m.releaseActive(ctx, run.SourceID, run.ID)
		m.onRunEnded(ctx, run)
	} else if run.Status == state.RunRunning {
		// A running run that no worker executes (its worker died and no
		// other took it up yet, or no worker hosts its connector any more)
		// would wait for a worker to see the cancel: end it now. A worker
		// that takes it up later finds it ended, or sees the cancel.
		// A worker that just ended the run released the lease after
		// storing its outcome: leave that to the applier.
		if _, _, err := m.store.Leases.Get(ctx, run.SourceID); errors.Is(err, state.ErrNotFound) && !m.outcomeStored(ctx, run) {
			m.endRun(ctx, run.ID, state.RunCancelled, "cancelled while no worker was executing it")
			if r, err := m.GetRun(ctx, run.ID); err == nil {
				run = r
			}
		}
	}
	m.log.Info("run cancel requested", zap.String("run_id", id), zap.String("source_id", run.SourceID))
	return run, nil
}

// SyncDocument re-fetches one document through its connector: a run of
// the source (it takes the source's one active-run slot) in which the
// connector's DocumentSyncer emits that document again, or its deletion.
func (m *Manager) SyncDocument(ctx context.Context, sourceID, docID string) (*state.Run, error) {
	src, doc, err := m.sourceDocument(ctx, sourceID, docID)
	if err != nil {
		return nil, err
	}
	man, err := m.Connector(ctx, src.Connector)
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nil, &ConflictError{Code: CodeNotSupported, Message: fmt.Sprintf("Connector %q of this source is not registered by any worker", src.Connector)}
	} else if err != nil {
		return nil, err
	}
	if !man.DocumentSync {
		return nil, &ConflictError{Code: CodeNotSupported, Message: fmt.Sprintf("Connector %q cannot re-fetch one document; sync the source instead", man.Name)}
	}
	return m.startRun(ctx, src, events.ModeIncremental, TriggerDocument, doc.ExternalID)
}

// StopDocumentSync cancels the running re-fetch of one document.
func (m *Manager) StopDocumentSync(ctx context.Context, sourceID, docID string) (*state.Run, error) {
	doc, err := m.GetDocument(ctx, sourceID, docID)
	if err != nil {
		return nil, err
	}
	run, err := m.activeRun(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	if run == nil || run.Document != doc.ExternalID {
		return nil, &ConflictError{Code: CodeRunNotActive, Message: fmt.Sprintf("no re-fetch of document %s is active", docID)}
	}
	return m.CancelRun(ctx, run.ID)
}

// CancelSource cancels the source's active run.
func (m *Manager) CancelSource(ctx context.Context, sourceID string) (*state.Run, error) {
	if _, err := m.GetSource(ctx, sourceID); err != nil {
		return nil, err
	}
	run, err := m.activeRun(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	if run == nil {
		return nil, &ConflictError{Code: CodeRunNotActive, Message: fmt.Sprintf("source %s has no active run", sourceID)}
	}
	return m.CancelRun(ctx, run.ID)
}

// outcomeStored reports whether a worker stored the run's outcome in the
// events stream (the applier may not have applied it yet). When it cannot
// tell, it says yes: the run is then left to its worker.
func (m *Manager) outcomeStored(ctx context.Context, run *state.Run) bool {
	st, err := m.js.Stream(ctx, events.StreamEvents)
	if err != nil {
		return true
	}
	for _, t := range []events.Type{events.TypeRunCompleted, events.TypeRunFailed, events.TypeRunCancelled} {
		_, err := st.GetLastMsgForSubject(ctx, events.EventSubject(run.SourceID, run.ID, t))
		if err == nil || !errors.Is(err, jetstream.ErrMsgNotFound) {
			return true
		}
	}
	return false
}
