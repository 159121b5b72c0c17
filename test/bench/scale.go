package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/events"
)

// scale creates ScaleSources synthetic sources (one document each) on a
// schedule of ScaleEvery, spread over one interval (or all at once with
// ScaleBurst), served by ScaleWorkers worker processes, and
// watches ScaleCycles due times of every source: how late each scheduled
// sync starts (its run.started event) after its due time, the CPU of this
// process (the manager with its embedded NATS server; the workers are
// other processes), and GET /v1/sources latency meanwhile.
func scale(ctx context.Context, e *env, rep *Report) error {
	var workers []*child
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	for i := range e.p.ScaleWorkers {
		w, err := e.spawnWorker(ctx, fmt.Sprintf("scale-%d", i), 8)
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}

	var mu sync.Mutex
	started := map[string][]time.Time{} // source id -> run.started times
	sub, err := e.nc.Subscribe(events.EventSubject("*", "*", events.TypeRunStarted), func(m *nats.Msg) {
		env, err := events.Decode(m.Data)
		if err != nil {
			return
		}
		mu.Lock()
		started[env.SourceID] = append(started[env.SourceID], env.Time)
		mu.Unlock()
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()

	n, every := e.p.ScaleSources, e.p.ScaleEvery
	first := make([]time.Time, n)
	ids := make([]string, n)
	began := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		// Spread over one interval, so that due times are spread as
		// sources made over time have them (--burst creates them at once).
		if !e.p.ScaleBurst {
			if wait := time.Until(began.Add(time.Duration(i) * every / time.Duration(n))); wait > 0 {
				select {
				case <-time.After(wait):
				case <-gctx.Done():
				}
			}
		}
		g.Go(func() error {
			s, err := e.c.CreateSource(gctx, client.CreateSourceRequest{Name: fmt.Sprintf("scale-%05d", i), Connector: synthetic.Name,
				Config: map[string]any{"count": 1}, Schedule: &client.ScheduleRequest{Every: every.String()}})
			if err != nil {
				return fmt.Errorf("create source: %w", err)
			}
			if s.NextRunAt == nil {
				return fmt.Errorf("source %s has no next run", s.ID)
			}
			ids[i], first[i] = s.ID, *s.NextRunAt
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	created := time.Since(began)
	e.logf("scale: %d sources created in %s", n, created.Round(time.Millisecond))
	lastFirst := first[0]
	for _, t := range first {
		if t.After(lastFirst) {
			lastFirst = t
		}
	}
	end := lastFirst.Add(time.Duration(e.p.ScaleCycles-1)*every + 3*time.Second)

	// Listing sources while the schedules fire.
	var lat []time.Duration
	listCtx, stopList := context.WithCancel(ctx)
	listDone := make(chan struct{})
	go func() {
		defer close(listDone)
		for i := 0; listCtx.Err() == nil; i++ {
			t0 := time.Now()
			if _, err := e.c.ListSources(listCtx, client.PageParams{Page: 1 + i%(max(n/50, 1)), Size: 50}); err == nil {
				lat = append(lat, time.Since(t0))
			}
			select {
			case <-listCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	cpu0, wall0 := cpuTime(), time.Now()
	select {
	case <-time.After(time.Until(end)):
	case <-ctx.Done():
		stopList()
		<-listDone
		return ctx.Err()
	}
	cpu := (cpuTime() - cpu0).Seconds() / time.Since(wall0).Seconds()
	stopList()
	<-listDone

	// Each source's due times are first + k×every; the sync of a due time
	// is the first run.started at or after it and before the next.
	var late []time.Duration
	missed := 0
	mu.Lock()
	for i, id := range ids {
		ts := started[id]
		for k := range e.p.ScaleCycles {
			due := first[i].Add(time.Duration(k) * every)
			var hit *time.Time
			for j := range ts {
				if !ts[j].Before(due.Add(-100*time.Millisecond)) && ts[j].Before(due.Add(every)) && (hit == nil || ts[j].Before(*hit)) {
					hit = &ts[j]
				}
			}
			if hit == nil {
				missed++
				late = append(late, every) // as late as it can be
				continue
			}
			late = append(late, max(hit.Sub(due), 0))
		}
	}
	mu.Unlock()
	shape := "created over one interval"
	if e.p.ScaleBurst {
		shape = "created at once"
	}
	note := fmt.Sprintf("%d sources every %s (%s), %d worker processes (8 syncs each), %d due times watched; due time to the run.started event", n, every, shape, len(workers), len(late))
	if missed > 0 {
		note += fmt.Sprintf("; %d due times had no sync start before the next (counted as %s late)", missed, every)
	}
	rep.latency("scale schedule lateness p50", percentile(late, 50), 0, note)
	rep.latency("scale schedule lateness p99", percentile(late, 99), time.Second, "")
	rep.add(Result{Scenario: "scale manager cpu", Value: round(cpu), Unit: "cores", Target: "< 1 core", Met: ptr(cpu < 1),
		Note: fmt.Sprintf("this process (manager, embedded NATS server, API, the benchmark's own listing) over %s", time.Since(wall0).Round(time.Second))})
	rep.latency("scale list sources p99", percentile(lat, 99), 50*time.Millisecond,
		fmt.Sprintf("%d GET /v1/sources pages of 50, one every 100 ms, while the schedules fire; p50 %s", len(lat), percentile(lat, 50).Round(10*time.Microsecond)))
	e.logf("scale: lateness p50 %s p99 %s max %s, %d missed; cpu %.2f cores; list p99 %s",
		percentile(late, 50), percentile(late, 99), percentile(late, 100), missed, cpu, percentile(lat, 99))
	return nil
}

// cpuTime is the user and system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
