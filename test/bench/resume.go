package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// resume kills a worker process with SIGKILL in the middle of a sync and
// times the kill to the run's next attempt starting (its run.started event
// published) on a second worker process, heartbeat timeout 2 s.
func resume(ctx context.Context, e *env, rep *Report) error {
	a, err := e.spawnWorker(ctx, "resume-0", 2)
	if err != nil {
		return err
	}
	defer func() { a.stop() }()
	src, err := e.c.CreateSource(ctx, client.CreateSourceRequest{Name: "resume", Connector: synthetic.Name,
		Config: map[string]any{"count": 100_000_000, "pace": "1ms", "checkpoint_every": 100}})
	if err != nil {
		return fmt.Errorf("create source: %w", err)
	}
	var lat []time.Duration
	for i := range e.p.ResumeRuns {
		run, err := e.c.SyncSource(ctx, src.ID, client.SyncRequest{})
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		// Running on a, with a checkpoint or two behind it.
		if err := e.waitFor(ctx, 30*time.Second, func(r *state.Run) bool {
			return r.Status == state.RunRunning && r.WorkerID == a.id && r.DocumentsScanned >= 300
		}, run.ID); err != nil {
			return err
		}
		b, err := e.spawnWorker(ctx, fmt.Sprintf("resume-%d", i+1), 2)
		if err != nil {
			return err
		}
		started := make(chan *events.Envelope, 4)
		sub, err := e.nc.Subscribe(events.EventSubject(src.ID, run.ID, events.TypeRunStarted), func(m *nats.Msg) {
			if env, err := events.Decode(m.Data); err == nil && env.Attempt >= 2 {
				started <- env
			}
		})
		if err != nil {
			return err
		}
		_ = e.nc.Flush()
		killed := time.Now()
		a.kill()
		var took time.Duration
		select {
		case env := <-started:
			took = time.Since(killed)
			if p, ok := env.Payload().(*events.RunStarted); !ok || p.WorkerID != b.id || !p.Resumed {
				_ = sub.Unsubscribe()
				return fmt.Errorf("the next attempt is not a resume on %s: %+v", b.id, env.Payload())
			}
		case <-time.After(30 * time.Second):
			_ = sub.Unsubscribe()
			return errors.New("no second attempt 30 s after the kill")
		case <-ctx.Done():
			_ = sub.Unsubscribe()
			return ctx.Err()
		}
		_ = sub.Unsubscribe()
		lat = append(lat, took)
		e.logf("resume %d: %s", i+1, took.Round(time.Millisecond))
		if _, err := e.c.CancelRun(ctx, run.ID); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		if err := e.waitRun(ctx, run.ID, 30*time.Second); err != nil {
			return err
		}
		a = b
	}
	rep.latency("resume p50", percentile(lat, 50), 3*time.Second,
		fmt.Sprintf("%d worker processes killed with SIGKILL mid-sync; kill to the next attempt's run.started on another worker process; heartbeat timeout %s", len(lat), heartbeatTimeout))
	rep.latency("resume max", percentile(lat, 100), 0, "")
	return nil
}

// waitFor polls the run until cond holds.
func (e *env) waitFor(ctx context.Context, timeout time.Duration, cond func(*state.Run) bool, runID string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		r, err := e.m.GetRun(ctx, runID)
		if err == nil && cond(r) {
			return nil
		}
		if err == nil && r.Status.Terminal() {
			return fmt.Errorf("run %s ended (%s %s)", runID, r.Status, r.Error)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("run %s: %w", runID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
