package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// probe is a connector that records when Sync is called and, in block
// mode, when its context is done. Config: {"block": true}.
type probe struct {
	mu   sync.Mutex
	runs map[string]*probeRun
}

type probeRun struct {
	called, ended   time.Time
	calledC, endedC chan struct{}
}

const probeName = "probe"

func newProbe() *probe { return &probe{runs: map[string]*probeRun{}} }

func (p *probe) Manifest() connector.Manifest {
	return connector.Manifest{
		Name: probeName, Version: "1.0.0", Description: "Benchmark probe: records when Sync is called",
		SyncModes:    []connector.SyncMode{connector.Full},
		ConfigSchema: json.RawMessage(`{"type":"object","properties":{"block":{"type":"boolean"}},"additionalProperties":false}`),
	}
}

// run returns the record of a run, made by whichever side comes first.
func (p *probe) run(id string) *probeRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.runs[id]
	if r == nil {
		r = &probeRun{calledC: make(chan struct{}), endedC: make(chan struct{})}
		p.runs[id] = r
	}
	return r
}

func (p *probe) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	now := time.Now()
	r := p.run(req.RunID)
	r.called = now
	close(r.calledC)
	var cfg struct {
		Block bool `json:"block"`
	}
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	if !cfg.Block {
		return sc.Complete(ctx, nil)
	}
	<-ctx.Done()
	r.ended = time.Now()
	close(r.endedC)
	return ctx.Err()
}

func (p *probe) wait(ctx context.Context, c <-chan struct{}, what string) error {
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
	}
}

// probeSources creates n probe sources.
func probeSources(ctx context.Context, e *env, prefix string, n int, block bool) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		s, err := e.c.CreateSource(ctx, client.CreateSourceRequest{Name: fmt.Sprintf("%s-%d", prefix, i), Connector: probeName, Config: map[string]any{"block": block}})
		if err != nil {
			return nil, fmt.Errorf("create source: %w", err)
		}
		ids[i] = s.ID
	}
	return ids, nil
}

// dispatch times POST /v1/sources/{id}/sync returning to the connector's
// Sync being called on an in-process worker, one run at a time, over
// sources taken in turn (a source's previous run has ended before its next).
func dispatch(ctx context.Context, e *env, rep *Report) error {
	pr := newProbe()
	stop, err := e.startWorker(ctx, 4, pr)
	if err != nil {
		return err
	}
	defer stop()
	srcs, err := probeSources(ctx, e, "dispatch", 8, false)
	if err != nil {
		return err
	}
	last := make([]string, len(srcs))
	var lat []time.Duration
	early := 0
	for i := range e.p.DispatchRuns {
		k := i % len(srcs)
		if last[k] != "" {
			if err := e.waitRun(ctx, last[k], 30*time.Second); err != nil {
				return err
			}
		}
		run, err := e.c.SyncSource(ctx, srcs[k], client.SyncRequest{})
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		returned := time.Now()
		last[k] = run.ID
		r := pr.run(run.ID)
		if err := pr.wait(ctx, r.calledC, "Sync"); err != nil {
			return err
		}
		d := r.called.Sub(returned)
		if d < 0 {
			early++
			d = 0
		}
		lat = append(lat, d)
	}
	note := fmt.Sprintf("%d runs, in-process worker, POST answered to Sync called", len(lat))
	if early > 0 {
		note += fmt.Sprintf("; %d Sync calls came before the answer (counted as 0)", early)
	}
	rep.latency("dispatch p50", percentile(lat, 50), 5*time.Millisecond, note)
	rep.latency("dispatch p99", percentile(lat, 99), 20*time.Millisecond, "")
	e.logf("dispatch: p50 %s p99 %s max %s", percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	return nil
}

// cancelLatency times POST /v1/runs/{id}/cancel returning to the running
// sync's context being done.
func cancelLatency(ctx context.Context, e *env, rep *Report) error {
	pr := newProbe()
	stop, err := e.startWorker(ctx, 4, pr)
	if err != nil {
		return err
	}
	defer stop()
	srcs, err := probeSources(ctx, e, "cancel", 4, true)
	if err != nil {
		return err
	}
	last := make([]string, len(srcs))
	var lat []time.Duration
	for i := range e.p.CancelRuns {
		k := i % len(srcs)
		if last[k] != "" {
			if err := e.waitRun(ctx, last[k], 30*time.Second); err != nil {
				return err
			}
		}
		run, err := e.c.SyncSource(ctx, srcs[k], client.SyncRequest{})
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		last[k] = run.ID
		r := pr.run(run.ID)
		if err := pr.wait(ctx, r.calledC, "Sync"); err != nil {
			return err
		}
		if _, err := e.c.CancelRun(ctx, run.ID); err != nil {
			return fmt.Errorf("cancel: %w", err)
		}
		returned := time.Now()
		if err := pr.wait(ctx, r.endedC, "the sync's context to end"); err != nil {
			return err
		}
		lat = append(lat, max(r.ended.Sub(returned), 0))
	}
	rep.latency("cancel p50", percentile(lat, 50), 0, fmt.Sprintf("%d runs, POST /v1/runs/{id}/cancel answered to the sync's context done", len(lat)))
	rep.latency("cancel p99", percentile(lat, 99), 50*time.Millisecond, "")
	e.logf("cancel: p50 %s p99 %s max %s", percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	return nil
}
