package manager

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// gathered returns the value of the series name{labels} (pairs "k=v" in
// label order) in what reg gathers now, and whether it is there.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(got, ",") == strings.Join(labels, ",") {
				switch {
				case m.Gauge != nil:
					return m.GetGauge().GetValue(), true
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount()), true
				}
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

func (e *env) waitGauge(reg *prometheus.Registry, want float64, name string, labels ...string) {
	e.t.Helper()
	eventually(e.t, waitTimeout, func() bool {
		v, ok := gathered(e.t, reg, name, labels...)
		return ok && v == want
	}, fmt.Sprintf("%s%v to be %v", name, labels, want))
}

// Every way a run ends is counted once, and the runs not yet ended are
// known without listing the runs bucket.
func TestMetricsRunTransitions(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, Config{Metrics: reg})
	e.register(fakeManifest)
	src := e.createSource("s")
	queued := []string{"connector=fake", "status=queued"}
	running := []string{"connector=fake", "status=running"}
	value := func(name string, labels ...string) float64 {
		v, _ := gathered(t, reg, name, labels...)
		return v
	}
	finished := func(status state.RunStatus) float64 {
		return value("tributary_runs_finished_total", "connector=fake", "status="+string(status))
	}

	// Queued, then cancelled before it started (CancelRun).
	run := e.trigger(src.ID)
	e.waitGauge(reg, 1, "tributary_active_runs", queued...)
	if _, err := e.m.CancelRun(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if finished(state.RunCancelled) != 1 {
		t.Fatal("a queued run cancelled is not counted")
	}
	e.waitGauge(reg, 0, "tributary_active_runs", queued...)

	// Running, then ended by the manager (endRun: its worker is gone).
	run = e.trigger(src.ID)
	e.attempt(run, 1).pub(&events.RunStarted{WorkerID: "gone", Connector: "fake", Mode: events.ModeFull})
	e.waitRun(run.ID, "running", func(r *state.Run) bool { return r.Status == state.RunRunning })
	e.waitGauge(reg, 1, "tributary_active_runs", running...)
	if _, err := e.m.CancelRun(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if finished(state.RunCancelled) != 2 {
		t.Fatal("a run ended by the manager is not counted")
	}
	e.waitGauge(reg, 0, "tributary_active_runs", running...)

	// Completed by its worker (the applier), with two documents; events
	// after its end change nothing but count as applied.
	run = e.trigger(src.ID)
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	p.pub(&events.DocumentUpserted{Document: doc("a")})
	p.pub(&events.DocumentUpserted{Document: doc("b")})
	p.pub(&events.RunCompleted{Scanned: 2})
	p.pub(&events.RunFailed{Error: "late"})
	e.waitApplied(e.m)
	if finished(state.RunCompleted) != 1 || finished(state.RunFailed) != 0 || finished(state.RunCancelled) != 2 {
		t.Fatalf("finished: completed %v failed %v cancelled %v", finished(state.RunCompleted), finished(state.RunFailed), finished(state.RunCancelled))
	}
	if c, d := value("tributary_run_duration_seconds", "connector=fake", "status=completed"),
		value("tributary_run_duration_seconds", "connector=fake", "status=cancelled"); c != 1 || d != 2 {
		t.Fatalf("run durations observed: completed %v, cancelled %v", c, d)
	}
	if v := value("tributary_document_changes_total", "connector=fake", "type=created"); v != 2 {
		t.Fatalf("changes created: %v", v)
	}
	for typ, want := range map[events.Type]float64{events.TypeRunStarted: 2, events.TypeDocumentUpserted: 2, events.TypeRunCompleted: 1, events.TypeRunFailed: 1} {
		if v := value("tributary_events_applied_total", "type="+string(typ)); v != want {
			t.Errorf("events applied %s: %v, want %v", typ, v, want)
		}
	}
	if v, _ := gathered(t, reg, "tributary_active_runs", running...); v != 0 {
		t.Fatalf("running: %v", v)
	}

	// A replay republishes both as created, under the source's connector;
	// the source's deletion deletes both.
	if _, err := e.m.ReplaySource(e.ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeleteSource(e.ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	if c, d := value("tributary_document_changes_total", "connector=fake", "type=created"),
		value("tributary_document_changes_total", "connector=fake", "type=deleted"); c != 4 || d != 2 {
		t.Fatalf("changes: created %v deleted %v", c, d)
	}
}

// A manager that starts finds the runs an earlier one left unfinished; its
// metrics leave the registry when it stops, so the next one can register.
func TestMetricsRestart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, Config{Metrics: reg})
	e.register(fakeManifest)
	e.trigger(e.createSource("a").ID)
	e.trigger(e.createSource("b").ID)
	queued := []string{"connector=fake", "status=queued"}
	e.waitGauge(reg, 2, "tributary_active_runs", queued...)

	if _, err := New(e.n.Conn, Config{Metrics: reg}); err == nil {
		t.Fatal("a second manager registered the same metrics")
	}
	if err := e.m.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := gathered(t, reg, "tributary_active_runs", queued...); ok {
		t.Fatal("a stopped manager's metrics are still gathered")
	}
	e.m = e.startManager(Config{Metrics: reg})
	e.waitGauge(reg, 2, "tributary_active_runs", queued...)
}

// A scrape with JetStream unreachable returns within the timeout, without
// what it could not read, and counts the failed reads.
func TestMetricsScrapeTimeout(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, Config{Metrics: reg, MetricsTimeout: 300 * time.Millisecond})
	e.waitGauge(reg, 0, "tributary_source_leases")
	e.n.Server.Shutdown()
	e.n.Server.WaitForShutdown()
	start := time.Now()
	if _, ok := gathered(t, reg, "tributary_source_leases"); ok {
		t.Fatal("leases reported without a server")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a scrape took %s", d)
	}
	for _, read := range []string{"applier_consumer", "change_consumers", "leases", "workers"} {
		var m dto.Metric
		if err := e.m.metrics.readErrors.WithLabelValues(read).Write(&m); err != nil {
			t.Fatal(err)
		}
		if v := m.GetCounter().GetValue(); v != 1 {
			t.Errorf("read errors of %s: %v", read, v)
		}
	}
}
