package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/state"
)

// memory measures a worker process's resident memory idle and while it
// runs MemorySyncs unpaced syncs of the synthetic connector (1 KiB of
// content a document) at once, and reports the difference per sync. The
// manager's memory at 1,000,000 catalog documents is measured by
// test/memory (an hour-long run); its latest figure is reported here as a
// reference, not measured again.
func memory(ctx context.Context, e *env, rep *Report) error {
	n := e.p.MemorySyncs
	w, err := e.spawnWorker(ctx, "memory", n)
	if err != nil {
		return err
	}
	defer w.stop()
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	idle := w.rss()
	runs := make([]string, n)
	for i := range n {
		src, err := e.c.CreateSource(ctx, client.CreateSourceRequest{Name: fmt.Sprintf("memory-%d", i), Connector: synthetic.Name,
			Config: map[string]any{"count": 100_000_000, "size": 1024}})
		if err != nil {
			return fmt.Errorf("create source: %w", err)
		}
		run, err := e.c.SyncSource(ctx, src.ID, client.SyncRequest{})
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		runs[i] = run.ID
	}
	for _, id := range runs {
		if err := e.waitFor(ctx, 30*time.Second, func(r *state.Run) bool { return r.Status == state.RunRunning }, id); err != nil {
			return err
		}
	}
	peak := idle
	end := time.Now().Add(e.p.MemoryFor)
	for time.Now().Before(end) {
		peak = math.Max(peak, w.rss())
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var docs uint64
	for _, id := range runs {
		if r, err := e.m.GetRun(ctx, id); err == nil {
			docs += r.DocumentsScanned
		}
		if _, err := e.c.CancelRun(ctx, id); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
	}
	for _, id := range runs {
		if err := e.waitRun(ctx, id, 30*time.Second); err != nil {
			return err
		}
	}
	per := (peak - idle) / float64(n)
	e.logf("worker memory: idle %.1f MiB, peak %.1f MiB with %d syncs (%d documents scanned)", idle, peak, n, docs)
	rep.add(Result{Scenario: "worker rss idle", Value: round(idle), Unit: "MiB", Note: "worker process hosting the synthetic connector"})
	rep.add(Result{Scenario: fmt.Sprintf("worker rss peak, %d syncs", n), Value: round(peak), Unit: "MiB",
		Note: fmt.Sprintf("%d unpaced synthetic syncs of 1 KiB documents at once, sampled every 100 ms for %s", n, e.p.MemoryFor)})
	rep.add(Result{Scenario: "worker rss per concurrent sync", Value: round(per), Unit: "MiB", Target: "<= 20 MiB", Met: ptr(per <= 20),
		Note: "(peak - idle) / concurrent syncs"})
	rep.add(Result{Scenario: "manager rss, 1M catalog docs (reference)", Value: 236, Unit: "MiB", Target: "<= 400 MiB", Met: ptr(true),
		Note: "not measured here: test/memory's latest figure (separate nats-server, index loaded; peak 380 MiB); the all-in-one layout holds the server's memory too (511 MiB), see docs/benchmarks.md"})
	return nil
}
