package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// ApplierConsumer is the durable consumer through which the manager applies
// run events.
const ApplierConsumer = "manager"

// startApplier consumes the events stream. Messages are applied in batches:
// every run touched by a batch is read once, updated in memory, and written
// back with compare-and-set; only then is the batch acknowledged. A crash in
// between redelivers the batch, and the run's LastEventSeq makes re-applying
// it a no-op for counters and statuses, while checkpoint and active-run writes
// are idempotent.
//
// Events must be applied in stream order, and the consumer acknowledges
// with AckAll. A previous manager that died left messages delivered to it
// and never acknowledged: acknowledging a later one would acknowledge
// them too, unapplied. So a starting manager (which holds the manager lock:
// nobody else consumes) recreates the consumer to deliver again from just
// after its acknowledgement floor, in order.
func (m *Manager) startApplier(ctx context.Context) error {
	cfg := jetstream.ConsumerConfig{
		Durable:       ApplierConsumer,
		Description:   "Tributary manager: applies run events to run and checkpoint records",
		FilterSubject: events.EventSubjectsAll,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 20000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if old, err := m.js.Consumer(ctx, events.StreamEvents, ApplierConsumer); err == nil {
		info, err := old.Info(ctx)
		if err != nil {
			return fmt.Errorf("events consumer: %w", err)
		}
		if floor := info.AckFloor.Stream; info.Delivered.Stream > floor {
			if err := m.js.DeleteConsumer(ctx, events.StreamEvents, ApplierConsumer); err != nil {
				return fmt.Errorf("events consumer: reset: %w", err)
			}
			if floor > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
			}
			m.log.Info("applying events again from the acknowledgement floor",
				zap.Uint64("from_seq", floor+1), zap.Uint64("delivered_seq", info.Delivered.Stream))
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("events consumer: %w", err)
	}
	cons, err := m.js.CreateOrUpdateConsumer(ctx, events.StreamEvents, cfg)
	if err != nil {
		return fmt.Errorf("events consumer: %w", err)
	}
	ch := make(chan jetstream.Msg, 2*m.cfg.ApplyBatch)
	m.applyCtx, m.stopApply = context.WithCancel(context.Background())
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		select {
		case ch <- msg:
		case <-m.applyCtx.Done():
		}
	}, jetstream.PullMaxMessages(2*m.cfg.ApplyBatch))
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	m.consume = cc
	m.applyDone = make(chan struct{})
	go m.applyLoop(ch)
	return nil
}

func (m *Manager) applyLoop(ch <-chan jetstream.Msg) {
	defer close(m.applyDone)
	batch := make([]jetstream.Msg, 0, m.cfg.ApplyBatch)
	for {
		batch = batch[:0]
		select {
		case <-m.applyCtx.Done():
			return
		case msg := <-ch:
			batch = append(batch, msg)
		}
	drain:
		for len(batch) < m.cfg.ApplyBatch {
			select {
			case msg := <-ch:
				batch = append(batch, msg)
			default:
				break drain
			}
		}
		for {
			err := m.applyBatch(m.applyCtx, batch)
			if err == nil {
				// AckAll: acknowledging the last acknowledges the batch.
				if err := batch[len(batch)-1].Ack(); err != nil {
					m.log.Warn("ack events", zap.Error(err))
				}
				break
			}
			if m.applyCtx.Err() != nil {
				return
			}
			m.log.Warn("apply events; retrying", zap.Int("events", len(batch)), zap.Error(err))
			select {
			case <-time.After(500 * time.Millisecond):
			case <-m.applyCtx.Done():
				return
			}
		}
	}
}

// applied is one decoded event and its stream sequence.
type applied struct {
	env       *events.Envelope
	streamSeq uint64
}

func (m *Manager) applyBatch(ctx context.Context, batch []jetstream.Msg) error {
	byRun := map[string][]applied{}
	var order []string
	for _, msg := range batch {
		md, err := msg.Metadata()
		if err != nil {
			m.log.Error("event without metadata; skipped", zap.String("subject", msg.Subject()), zap.Error(err))
			continue
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			// A malformed event can never apply; skipping it keeps the
			// stream moving. It stays in the stream for inspection.
			m.log.Error("invalid event; skipped", zap.String("subject", msg.Subject()),
				zap.Uint64("stream_seq", md.Sequence.Stream), zap.Error(err))
			continue
		}
		if _, ok := byRun[env.RunID]; !ok {
			order = append(order, env.RunID)
		}
		byRun[env.RunID] = append(byRun[env.RunID], applied{env: env, streamSeq: md.Sequence.Stream})
	}
	for _, runID := range order {
		if err := m.applyRun(ctx, runID, byRun[runID]); err != nil {
			return err
		}
	}
	m.metrics.applied(byRun)
	return nil
}

// applyRun applies one run's events from a batch.
func (m *Manager) applyRun(ctx context.Context, runID string, evs []applied) error {
	// What the catalog made of each event, kept across a retry of the run
	// write below: catalog work is done once per event.
	judged := map[uint64]catalogResult{}
	for {
		run, rev, err := m.store.Runs.Get(ctx, runID)
		if errors.Is(err, state.ErrNotFound) {
			return nil // the run (its source) was deleted
		}
		if err != nil {
			return err
		}
		wasTerminal := run.Status.Terminal()
		if err := m.judgeDocuments(ctx, run, evs, judged); err != nil {
			return err
		}
		var checkpoint *events.Envelope
		var finalCP json.RawMessage
		changed := false
		latest := run.Attempt
		for _, a := range evs {
			// Applied already (a redelivery after a crash before the ack):
			// its checkpoint, if any, was stored before the run record that
			// recorded LastEventSeq, so there is nothing left to do.
			if a.streamSeq <= run.LastEventSeq {
				continue
			}
			run.LastEventSeq, changed = a.streamSeq, true
			// Nothing after the run's end counts, however events are batched.
			if run.Status.Terminal() {
				continue
			}
			// An attempt is stale once a later one started: the worker that
			// ran it lost its lease. Its documents are real and count, but
			// its checkpoints, progress and outcome say nothing about the run.
			if a.env.Type == events.TypeRunStarted {
				latest = max(latest, a.env.Attempt)
			}
			if a.env.Attempt > 0 && a.env.Attempt < latest && !documentEvent(a.env.Type) {
				continue
			}
			res, ok := judged[a.streamSeq]
			if !ok {
				var err error
				if res, err = m.judge(ctx, run, a); err != nil {
					return err
				}
				judged[a.streamSeq] = res
			}
			res.count(run)
			switch p := a.env.Payload().(type) {
			case *events.Checkpoint:
				checkpoint = a.env
			case *events.RunCompleted:
				if len(p.Checkpoint) > 0 {
					checkpoint, finalCP = a.env, p.Checkpoint
				}
			}
			applyEvent(run, a.env)
		}
		if checkpoint != nil {
			if err := m.storeCheckpoint(ctx, run, checkpoint, finalCP); err != nil {
				return err
			}
		}
		if changed {
			run.UpdatedAt = time.Now().UTC()
			if _, err := m.store.Runs.Update(ctx, runID, run, rev); err != nil {
				if errors.Is(err, state.ErrConflict) {
					continue // someone (a cancel) wrote in between: read again
				}
				return err
			}
		}
		if run.Status.Terminal() {
			m.releaseActive(ctx, run.SourceID, run.ID)
			if !wasTerminal {
				m.onRunEnded(ctx, run)
				m.log.Info("run ended", zap.String("run_id", run.ID), zap.String("source_id", run.SourceID),
					zap.String("status", string(run.Status)), zap.Uint64("emitted", run.DocumentsEmitted),
					zap.Uint64("updated", run.DocumentsUpdated), zap.Uint64("deleted", run.DocumentsDeleted))
			}
		}
		return nil
	}
}

// documentEvent reports whether t reports a document (rather than the run).
func documentEvent(t events.Type) bool {
	return t == events.TypeDocumentUpserted || t == events.TypeDocumentDeleted || t == events.TypeDocumentError
}

// applyEvent folds one event into the run record.
func applyEvent(run *state.Run, env *events.Envelope) {
	switch p := env.Payload().(type) {
	case *events.RunStarted:
		if env.Attempt > run.Attempt {
			run.ScannedBase = run.DocumentsScanned
			run.Attempt = env.Attempt
			for i := range run.Attempts {
				if a := &run.Attempts[i]; a.EndedAt == nil {
					t := env.Time
					a.EndedAt, a.Outcome = &t, "interrupted"
				}
			}
			run.Attempts = append(run.Attempts, state.Attempt{Number: env.Attempt, WorkerID: p.WorkerID, StartedAt: env.Time})
		}
		run.Status = state.RunRunning
		run.WorkerID = p.WorkerID
		if run.StartedAt == nil {
			t := env.Time
			run.StartedAt = &t
		}
	case *events.DocumentUpserted:
		if p.Updated {
			run.DocumentsUpdated++
		} else {
			run.DocumentsEmitted++
		}
	case *events.DocumentDeleted:
		// Every deletion the connector reported counts, known to the
		// catalog or not; the sweep adds the ones it finds.
		run.DocumentsDeleted++
	case *events.DocumentError:
		run.DocumentsErrors++
	case *events.Progress:
		if n := run.ScannedBase + p.Scanned; n > run.DocumentsScanned {
			run.DocumentsScanned = n
		}
		if p.Total > 0 {
			run.Total = p.Total
		}
	case *events.RunCompleted:
		if n := run.ScannedBase + p.Scanned; n > run.DocumentsScanned {
			run.DocumentsScanned = n
		}
		if p.Total > 0 {
			run.Total = p.Total
		}
		finish(run, env, state.RunCompleted, "")
	case *events.RunFailed:
		finish(run, env, state.RunFailed, p.Error)
	case *events.RunCancelled:
		finish(run, env, state.RunCancelled, p.Reason)
	}
}

func finish(run *state.Run, env *events.Envelope, status state.RunStatus, msg string) {
	t := env.Time
	run.Status, run.FinishedAt = status, &t
	if msg != "" {
		run.Error = msg
	}
	endAttempt(run, t, string(status), msg)
}

// endAttempt closes the run's latest attempt, if one is open.
func endAttempt(run *state.Run, at time.Time, outcome, msg string) {
	if n := len(run.Attempts); n > 0 && run.Attempts[n-1].EndedAt == nil {
		a := &run.Attempts[n-1]
		a.EndedAt, a.Outcome, a.Error = &at, outcome, msg
	}
}

// storeCheckpoint records the run's latest checkpoint for its source, unless
// a newer run already stored one (run ids are ULIDs and sort by time).
func (m *Manager) storeCheckpoint(ctx context.Context, run *state.Run, env *events.Envelope, final json.RawMessage) error {
	cp := &state.Checkpoint{SourceID: run.SourceID, RunID: run.ID, Attempt: env.Attempt, UpdatedAt: env.Time}
	if final != nil {
		cp.Checkpoint, cp.Final = final, true
	} else if p, ok := env.Payload().(*events.Checkpoint); ok {
		cp.Checkpoint = p.Checkpoint
	} else {
		return nil
	}
	for {
		cur, rev, err := m.store.Checkpoints.Get(ctx, run.SourceID)
		switch {
		case errors.Is(err, state.ErrNotFound):
			if _, err := m.store.Checkpoints.Create(ctx, run.SourceID, cp); err == nil || !errors.Is(err, state.ErrExists) {
				return err
			}
			continue
		case err != nil:
			return err
		case cur.RunID != CheckpointSetBy && cur.RunID > run.ID:
			// A later run stored one (run ids sort by time). One an
			// operator set is replaced: runs that may still store
			// checkpoints started after it.
			return nil
		}
		if _, err := m.store.Checkpoints.Update(ctx, run.SourceID, cp, rev); err == nil || !errors.Is(err, state.ErrConflict) {
			return err
		}
	}
}

// catalogResult is what the catalog made of one event.
type catalogResult struct {
	outcome catalogOutcome
	swept   uint64
}

func (r catalogResult) count(run *state.Run) {
	switch r.outcome {
	case outcomeNew:
		run.DocumentsNew++
	case outcomeChanged:
		run.DocumentsChanged++
	case outcomeUnchanged:
		run.DocumentsUnchanged++
	}
	run.DocumentsDeleted += r.swept
}

// judge runs one event through the catalog: documents are compared and
// recorded, deletions applied, and a completed full sync sweeps what it did
// not see.
func (m *Manager) judge(ctx context.Context, run *state.Run, a applied) (catalogResult, error) {
	switch p := a.env.Payload().(type) {
	case *events.DocumentUpserted:
		out, err := m.catalogUpsert(ctx, run, a.env, a.streamSeq)
		return catalogResult{outcome: out}, err
	case *events.DocumentDeleted:
		out, err := m.catalogDelete(ctx, run, a.env.Time, p.ExternalID, ReasonDeletedInSource, causeOfEvent(a.streamSeq))
		return catalogResult{outcome: out}, err
	case *events.RunCompleted:
		if run.Mode != events.ModeFull {
			return catalogResult{}, nil
		}
		n, err := m.sweep(ctx, run, a.env.Time)
		return catalogResult{swept: n}, err
	}
	return catalogResult{}, nil
}
