package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// handle runs one delivery of a sync request to its end. Whatever happens,
// the request is acked (the run ended and that was published), nak'ed (hand it
// to another worker) or left to redeliver (we could not publish the outcome).
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
	attempt := 1
	if md, err := msg.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	log = log.With(zap.String("source_id", env.SourceID), zap.String("run_id", env.RunID), zap.Int("attempt", attempt))

	runCtx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	w.mu.Lock()
	if w.shutdown {
		w.mu.Unlock()
		_ = msg.Nak()
		return
	}
	w.active[env.RunID] = &activeRun{sourceID: env.SourceID, cancel: cancel}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.active, env.RunID)
		w.mu.Unlock()
	}()

	pub := newPublisher(w.js, env.SourceID, env.RunID, attempt, w.cfg.MaxPendingEvents)
	bg, bgCancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
	defer bgCancel()

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
		log.Warn("read run record; request will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
		return
	case run.Status.Terminal():
		log.Info("dropping request of finished run", zap.String("status", string(run.Status)))
		_ = msg.Ack()
		return
	}
	if cancelled, err := w.cancelRequested(bg, env.RunID); err != nil {
		log.Warn("check cancel; request will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
		return
	} else if cancelled || run.CancelRequested {
		w.finish(log, msg, pub, &events.RunCancelled{Reason: "cancelled before start"})
		return
	}

	sreq := &connector.SyncRequest{
		SourceID: env.SourceID, RunID: env.RunID, Mode: req.Mode,
		Config: req.Config, Credentials: req.Credentials, Attempt: attempt,
	}
	cp, _, err := w.store.Checkpoints.Get(bg, env.SourceID)
	switch {
	case err == nil:
		sreq.Checkpoint = cp.Checkpoint
		sreq.Resumed = cp.RunID == env.RunID && !cp.Final
	case !errors.Is(err, state.ErrNotFound):
		log.Warn("read checkpoint; request will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := pub.sync(bg, &events.RunStarted{
		WorkerID: w.cfg.ID, Connector: req.Connector, Mode: req.Mode, Resumed: sreq.Resumed,
	}); err != nil {
		log.Warn("publish run.started; request will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
		return
	}
	log.Info("sync started", zap.String("mode", string(req.Mode)), zap.Bool("resumed", sreq.Resumed))
	started := time.Now()

	sc := &syncContext{pub: pub, content: &contentStore{obs: w.obs}, log: log}
	stopBeats := w.beat(runCtx, msg, pub, sc, log)
	syncErr := runConnector(runCtx, c, sreq, sc)
	stopBeats()
	out, finalCP, failErr := sc.close()
	log = log.With(zap.Duration("elapsed", time.Since(started)))

	cause := context.Cause(runCtx)
	switch {
	case errors.Is(cause, errShutdown):
		// Hand the request back: events so far are stored once barrier
		// returns, and the next attempt resumes from the last checkpoint.
		if err := pub.barrier(bg); err != nil {
			log.Warn("flush events before hand-off", zap.Error(err))
		}
		_ = msg.Nak()
		log.Info("sync handed back for another worker")
	case errors.Is(cause, errCancelRequested) && out != outcomeCompleted:
		w.finish(log, msg, pub, &events.RunCancelled{Reason: "cancelled by request"})
	case out == outcomeFailed:
		w.finish(log, msg, pub, &events.RunFailed{Error: failErr.Error()})
	case out == outcomeCompleted || syncErr == nil:
		w.finish(log, msg, pub, &events.RunCompleted{Checkpoint: finalCP, Scanned: sc.scanned.Load()})
	default:
		w.finish(log, msg, pub, &events.RunFailed{Error: syncErr.Error()})
	}
}

// finish publishes the run's terminal event after every earlier event, then
// acks the request. If the event cannot be published the request is left
// unacked so that it is redelivered.
func (w *Worker) finish(log *zap.Logger, msg jetstream.Msg, pub *publisher, payload any) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout)
	defer cancel()
	if err := pub.sync(ctx, payload); err != nil {
		log.Error("publish run outcome; request will be redelivered", zap.Error(err))
		_ = msg.NakWithDelay(time.Second)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// The outcome is stored; a redelivery finds the run finished and drops it.
		log.Warn("ack sync request", zap.Error(err))
	}
	t, _ := typeName(payload)
	log.Info("sync finished", zap.String("outcome", t))
}

func typeName(payload any) (string, bool) {
	switch payload.(type) {
	case *events.RunCompleted:
		return "completed", true
	case *events.RunFailed:
		return "failed", true
	case *events.RunCancelled:
		return "cancelled", true
	}
	return "", false
}

// runConnector calls Sync, turning a panic into an error.
func runConnector(ctx context.Context, c connector.Connector, req *connector.SyncRequest, sc *syncContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			sc.log.Error("connector panicked", zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("connector panicked: %v", r)
		}
	}()
	return c.Sync(ctx, req, sc)
}

// beat keeps the request's ack deadline moving, reports progress (the run's
// heartbeat), and re-checks for a cancel the subscription may have missed.
// The returned func stops it.
func (w *Worker) beat(runCtx context.Context, msg jetstream.Msg, pub *publisher, sc *syncContext, log *zap.Logger) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		progress := time.NewTicker(w.cfg.ProgressInterval)
		defer progress.Stop()
		hb := time.NewTicker(w.cfg.HeartbeatTimeout / 3)
		defer hb.Stop()
		var reported uint64
		for {
			select {
			case <-done:
				return
			case <-progress.C:
				if n := sc.scanned.Load(); n != reported {
					reported = n
					if err := sc.checkOpen(); err == nil {
						if err := pub.async(runCtx, &events.Progress{Scanned: n}); err != nil {
							log.Debug("publish progress", zap.Error(err))
						}
					}
				}
			case <-hb.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("extend ack deadline", zap.Error(err))
				}
				ctx, cancel := context.WithTimeout(context.Background(), w.cfg.HeartbeatTimeout/3)
				if ok, err := w.cancelRequested(ctx, pub.runID); err == nil && ok {
					w.mu.Lock()
					if ar := w.active[pub.runID]; ar != nil {
						ar.cancel(errCancelRequested)
					}
					w.mu.Unlock()
				}
				cancel()
			}
		}
	}()
	return func() { close(done); <-stopped }
}
