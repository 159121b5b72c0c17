package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/content"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// handle runs one delivery of a sync request to its end. Whatever happens,
// the request is acked (the run ended and that is stored), nak'ed (hand it to
// another worker, or try again later), termed (it can never run), or, when
// the source lease was lost, left alone: another worker owns it.
func (w *Worker) handle(msg jetstream.Msg, c connector.Connector) {
	log := w.log
	env, err := events.Decode(msg.Data())
	if err != nil {
		// A request that can never be valid: drop it (Term removes it from
		// the work queue) rather than redeliver it forever.
		log.Error("dropping invalid sync request", zap.String("subject", msg.Subject()), zap.Error(err))
		_ = msg.Term()
		return
	}
	req, ok := env.Payload().(*events.SyncRequested)
	if !ok {
		log.Error("dropping non-request on sync subject", zap.String("type", string(env.Type)))
		_ = msg.Term()
		return
	}
	log = log.With(zap.String("source_id", env.SourceID), zap.String("run_id", env.RunID))

	runCtx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	ar := &activeRun{runID: env.RunID, sourceID: env.SourceID, cancel: cancel}
	w.mu.Lock()
	if w.shutdown {
		w.mu.Unlock()
		_ = msg.Nak()
		return
	}
	// Keyed by the delivery, not the run: a redelivery of the same run may
	// reach this worker while an abandoned attempt is still winding down.
	w.active[ar] = struct{}{}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.active, ar)
		w.mu.Unlock()
	}()

	bg, bgCancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
	defer bgCancel()
	retry := func(what string, err error) {
		log.Warn(what+"; the request will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
	}

	// The run may have ended while its request waited: cancelled while
	// queued, its source deleted, or this is a redelivery of a request whose
	// run already finished.
	run, _, err := w.store.Runs.Get(bg, env.RunID)
	switch {
	case errors.Is(err, state.ErrNotFound):
		log.Info("dropping request of unknown run")
		_ = msg.Ack()
		return
	case err != nil:
		retry("read run record", err)
		return
	case run.Status.Terminal():
		log.Info("dropping request of finished run", zap.String("status", string(run.Status)))
		_ = msg.Ack()
		return
	}
	// Attempts are counted from the run.started events in the stream
	// (attempts that started), not from deliveries: a hand-off or a wait for
	// a lease is not an attempt. The stream is read rather than only the run
	// record so that counting holds while the manager is down.
	var prevAttempts int
	if last, err := w.lastRunEvent(bg, env.SourceID, env.RunID, events.TypeRunStarted); err != nil {
		retry("read last attempt", err)
		return
	} else if last != nil {
		prevAttempts = last.Attempt
	}
	prevAttempts = max(prevAttempts, run.Attempt)
	attempt := prevAttempts + 1
	log = log.With(zap.Int("attempt", attempt))
	pub := newPublisher(w.js, env.SourceID, env.RunID, attempt, w.cfg.MaxPendingEvents)

	if cancelled, err := w.cancelRequested(bg, env.RunID); err != nil {
		retry("check cancel", err)
		return
	} else if cancelled || run.CancelRequested {
		w.finish(log, msg, pub, nil, &events.RunCancelled{Reason: "cancelled before start"})
		return
	}

	// One execution per source: take the lease, or wait for it to expire.
	lease, wait, err := w.acquireLease(bg, env.SourceID, env.RunID, attempt)
	if err != nil {
		retry("take source lease", err)
		return
	}
	if lease == nil {
		log.Info("source lease held elsewhere; retrying when it can have expired", zap.Duration("wait", wait))
		_ = msg.NakWithDelay(wait)
		return
	}
	sreq := &connector.SyncRequest{
		SourceID: env.SourceID, RunID: env.RunID, Mode: req.Mode,
		Config: req.Config, Credentials: req.Credentials, Attempt: attempt, Document: req.Document,
	}
	// Resume from this run's last checkpoint in the stream: it is durable
	// and never covers an event that is not, and it does not wait for the
	// manager to have applied it. It is read only now that the lease is
	// held, so no earlier attempt can still be adding to it. A run without
	// one starts from the source's stored checkpoint (the previous run's
	// final one, for incremental syncs).
	lastCP, err := w.lastRunEvent(bg, env.SourceID, env.RunID, events.TypeCheckpoint)
	if err != nil {
		w.releaseLease(lease)
		retry("read last checkpoint", err)
		return
	}
	progressAt := 0 // the last attempt that saved a checkpoint
	if p, ok := payloadOf[*events.Checkpoint](lastCP); ok {
		sreq.Checkpoint = p.Checkpoint
		sreq.Resumed = true
		progressAt = lastCP.Attempt
	} else {
		cp, _, err := w.store.Checkpoints.Get(bg, env.SourceID)
		switch {
		case err == nil:
			sreq.Checkpoint = cp.Checkpoint
			// A retry continues the run it retries (resume_of) as that
			// run's next attempt would.
			sreq.Resumed = (cp.RunID == env.RunID || (req.ResumeOf != "" && cp.RunID == req.ResumeOf)) && !cp.Final
		case !errors.Is(err, state.ErrNotFound):
			w.releaseLease(lease)
			retry("read checkpoint", err)
			return
		}
	}

	// Give up on a run whose attempts keep ending without progress: attempts
	// since the last one that saved a checkpoint. A run that moves forward
	// between crashes, or is handed back at a checkpoint on shutdown, is not
	// stuck, however many attempts it takes.
	stalled := prevAttempts - progressAt
	if stalled >= w.cfg.MaxAttempts {
		reason := fmt.Sprintf("gave up after %d attempts without progress: each attempt's worker stopped before finishing or saving a checkpoint", stalled)
		if run.WorkerID != "" {
			reason += " (the last seen was " + run.WorkerID + ")"
		}
		w.finish(log, msg, pub, lease, &events.RunFailed{Error: reason})
		return
	}
	if delay := w.backoff(stalled+1) - time.Since(run.UpdatedAt); delay > 0 {
		w.releaseLease(lease)
		log.Info("backing off before retrying the run", zap.Duration("delay", delay))
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := pub.sync(bg, &events.RunStarted{
		WorkerID: w.cfg.ID, Connector: req.Connector, Mode: req.Mode, Resumed: sreq.Resumed,
	}); err != nil {
		w.releaseLease(lease)
		retry("publish run.started", err)
		return
	}
	log.Info("sync started", zap.String("mode", string(req.Mode)), zap.Bool("resumed", sreq.Resumed))
	started := time.Now()

	sc := &syncContext{pub: pub, content: &contentStore{store: content.New(w.js, w.obs, w.store.Content)}, log: log, document: req.Document != ""}
	w.mu.Lock()
	ar.sc = sc
	if w.shutdown {
		sc.stopRequested.Store(true)
	}
	w.mu.Unlock()
	stopBeats := w.beat(runCtx, ar, msg, pub, sc, lease, log)
	syncErr := runConnector(runCtx, c, sreq, sc)
	stopBeats()
	out, finalCP, failErr := sc.close()
	log = log.With(zap.Duration("elapsed", time.Since(started)))

	cause := context.Cause(runCtx)
	if !errors.Is(cause, errLeaseLost) {
		// The heartbeats stopped: restart the ack deadline for the time
		// the outcome takes to publish, and report the final scanned count
		// (run.completed carries its own).
		_ = msg.InProgress()
		if out != outcomeCompleted && (syncErr != nil || out == outcomeFailed || sc.handedOff.Load()) {
			w.reportScanned(pub, sc)
		}
	}
	switch {
	case errors.Is(cause, errLeaseLost):
		// Another worker owns the run now. Neither ack nor nak: a late ack
		// would be taken for that worker's delivery.
		log.Warn("source lease lost; abandoning the attempt")
	case out == outcomeCompleted:
		w.finish(log, msg, pub, lease, &events.RunCompleted{Checkpoint: finalCP, Scanned: sc.scanned.Load(), Total: sc.total.Load()})
	case sc.handedOff.Load() || errors.Is(cause, errShutdown):
		// Hand the request back: once barrier returns every event so far is
		// stored, and the next attempt resumes from the last checkpoint.
		fctx, fcancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
		if err := pub.barrier(fctx); err != nil {
			log.Warn("flush events before hand-off", zap.Error(err))
		}
		fcancel()
		w.releaseLease(lease)
		_ = msg.Nak()
		log.Info("sync handed back for another worker")
	case errors.Is(cause, errCancelRequested):
		w.finish(log, msg, pub, lease, &events.RunCancelled{Reason: "cancelled by request"})
	case isBusError(syncErr) || (out == outcomeFailed && isBusError(failErr)):
		// NATS, not the connector, failed (a node failing over, say): try
		// again from the last checkpoint rather than fail the run. Attempts
		// that keep failing without progress still end in MaxAttempts.
		err := syncErr
		if err == nil {
			err = failErr
		}
		fctx, fcancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
		if err := pub.barrier(fctx); err != nil {
			log.Warn("flush events before retry", zap.Error(err))
		}
		fcancel()
		w.releaseLease(lease)
		_ = msg.NakWithDelay(time.Second)
		log.Warn("sync interrupted by a NATS error; handed back for another attempt", zap.Error(err))
	case out == outcomeFailed:
		w.finish(log, msg, pub, lease, &events.RunFailed{Error: failErr.Error()})
	case syncErr == nil:
		w.finish(log, msg, pub, lease, &events.RunCompleted{Checkpoint: finalCP, Scanned: sc.scanned.Load(), Total: sc.total.Load()})
	default:
		w.finish(log, msg, pub, lease, &events.RunFailed{Error: syncErr.Error()})
	}
}

// reportScanned publishes the attempt's final scanned count, so that a run
// that fails, is cancelled or is handed back shows what it read.
func (w *Worker) reportScanned(pub *publisher, sc *syncContext) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
	defer cancel()
	if err := pub.async(ctx, &events.Progress{Scanned: sc.scanned.Load(), Total: sc.total.Load()}); err != nil {
		w.log.Debug("publish final progress", zap.Error(err))
	}
}

// backoff is how long after the previous attempt's last sign of life an
// attempt may start, given how many attempts in a row stalled before it
// (counting itself): at once for the first two, then RetryBackoff doubling
// up to a minute.
func (w *Worker) backoff(attempt int) time.Duration {
	if attempt <= 2 {
		return 0
	}
	d := w.cfg.RetryBackoff << (attempt - 3)
	if d > time.Minute || d <= 0 {
		d = time.Minute
	}
	return d
}

// finish publishes the run's terminal event after every earlier event, acks
// the request and releases the lease. If the event cannot be published the
// request is nak'ed so that it is tried again.
func (w *Worker) finish(log *zap.Logger, msg jetstream.Msg, pub *publisher, lease *heldLease, payload any) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
	defer cancel()
	// Fence: only the lease holder may end the run. An attempt that lost its
	// lease without noticing (its heartbeats stalled) must not report an
	// outcome over the attempt that now owns the run.
	if lease != nil {
		if err := w.refreshLease(ctx, lease); errors.Is(err, errLeaseLost) {
			log.Warn("source lease lost before the outcome; abandoning the attempt", zap.String("outcome", outcomeName(payload)))
			return
		}
	}
	if err := pub.sync(ctx, payload); err != nil {
		log.Error("publish run outcome; the request will be redelivered", zap.Error(err))
		w.releaseLease(lease)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// The outcome is stored; a redelivery finds the run finished and drops it.
		log.Warn("ack sync request", zap.Error(err))
	}
	w.releaseLease(lease)
	log.Info("sync finished", zap.String("outcome", outcomeName(payload)))
}

func outcomeName(payload any) string {
	switch payload.(type) {
	case *events.RunCompleted:
		return "completed"
	case *events.RunFailed:
		return "failed"
	case *events.RunCancelled:
		return "cancelled"
	}
	return fmt.Sprintf("%T", payload)
}

// runConnector calls Sync, turning a panic into an error.
func runConnector(ctx context.Context, c connector.Connector, req *connector.SyncRequest, sc *syncContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			sc.log.Error("connector panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("connector panicked: %v", r)
		}
	}()
	if req.Document != "" {
		ds, ok := c.(connector.DocumentSyncer)
		if !ok {
			return fmt.Errorf("connector %s cannot re-fetch one document", c.Manifest().Name)
		}
		return ds.SyncDocument(ctx, req, sc)
	}
	return c.Sync(ctx, req, sc)
}

// beat keeps the request's ack deadline and the source lease moving, reports
// progress (the run's heartbeat on the events stream), and re-checks for a
// cancel the subscription may have missed. The returned func stops it.
func (w *Worker) beat(runCtx context.Context, ar *activeRun, msg jetstream.Msg, pub *publisher, sc *syncContext, lease *heldLease, log *zap.Logger) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		progress := time.NewTicker(w.cfg.ProgressInterval)
		defer progress.Stop()
		hb := time.NewTicker(w.leaseTTL / 3)
		defer hb.Stop()
		var reported, reportedTotal uint64
		for {
			select {
			case <-done:
				return
			case <-progress.C:
				// Never wait for the publisher here: while JetStream is slow
				// to acknowledge, the connector holds it, and this loop must
				// keep the lease and the ack deadline alive meanwhile.
				if n, total := sc.scanned.Load(), sc.total.Load(); n != reported || total != reportedTotal {
					if ok, err := pub.tryAsync(runCtx, &events.Progress{Scanned: n, Total: total}); err != nil {
						log.Debug("publish progress", zap.Error(err))
					} else if ok {
						reported, reportedTotal = n, total
					}
				}
			case <-hb.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("extend ack deadline", zap.Error(err))
				}
				ctx, cancel := context.WithTimeout(context.Background(), w.leaseTTL/3)
				if err := w.refreshLease(ctx, lease); err != nil {
					if errors.Is(err, errLeaseLost) {
						ar.cancel(errLeaseLost)
					} else {
						log.Warn("refresh source lease", zap.Error(err))
					}
				}
				if ok, err := w.cancelRequested(ctx, pub.runID); err == nil && ok {
					ar.cancel(errCancelRequested)
				}
				cancel()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// lastRunEvent returns the run's last event of type t in the events stream,
// or nil when it has none (or only an undecodable one).
func (w *Worker) lastRunEvent(ctx context.Context, sourceID, runID string, t events.Type) (*events.Envelope, error) {
	raw, err := w.events.GetLastMsgForSubject(ctx, events.EventSubject(sourceID, runID, t))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last %s of run %s: %w", t, runID, err)
	}
	env, err := events.Decode(raw.Data)
	if err != nil {
		w.log.Warn("ignoring undecodable event", zap.String("subject", raw.Subject), zap.Uint64("stream_seq", raw.Sequence), zap.Error(err))
		return nil, nil
	}
	return env, nil
}

// payloadOf returns env's payload as a P, if env is not nil and holds one.
func payloadOf[P any](env *events.Envelope) (P, bool) {
	var zero P
	if env == nil {
		return zero, false
	}
	p, ok := env.Payload().(P)
	return p, ok
}
