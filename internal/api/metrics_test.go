package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tributary-sync/tributary/pkg/events"
)

// scrape is one parsed GET /metrics.
type scrape map[string]*dto.MetricFamily

func (e *env) scrape() scrape {
	e.t.Helper()
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		e.t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("GET /metrics: not the Prometheus text format: %v", err)
	}
	return fams
}

// value is the value of the series of name with exactly these labels
// ("k=v" pairs), and whether it is there.
func (s scrape) value(name string, labels ...string) (float64, bool) {
	f, ok := s[name]
	if !ok {
		return 0, false
	}
	want := strings.Join(labels, ",")
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		if strings.Join(got, ",") != want {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// expect is one series and the value it must reach.
type expect struct {
	name   string
	labels []string
	want   float64
}

// waitMetrics scrapes until every series has its value: counters move
// just after the run record a client sees is written.
func (e *env) waitMetrics(what string, want ...expect) scrape {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, miss := e.scrape(), ""
		for _, w := range want {
			if v, ok := s.value(w.name, w.labels...); !ok || v != w.want {
				miss = fmt.Sprintf("%s%v is %v (present: %v), want %v", w.name, w.labels, v, ok, w.want)
				break
			}
		}
		if miss == "" {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s", what, miss)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A sync moves the counters; the scrape-time gauges read JetStream.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := startWith(t, reg)
	// An indexer that has read nothing yet: its lag is what was published.
	if _, err := events.NewChangeFeed(t.Context(), e.m.JetStream(), events.ChangeFeedConfig{Durable: "test-indexer"}); err != nil {
		t.Fatal(err)
	}
	const (
		evStream = "stream=TRIBUTARY_EVENTS"
		chStream = "stream=TRIBUTARY_CHANGES"
	)
	e.waitMetrics("an idle manager",
		expect{"tributary_workers", nil, 1},
		expect{"tributary_source_leases", nil, 0},
		expect{"tributary_consumer_pending_messages", []string{"consumer=manager", evStream}, 0},
		expect{"tributary_consumer_ack_pending_messages", []string{"consumer=manager", evStream}, 0},
		expect{"tributary_consumer_pending_messages", []string{"consumer=test-indexer", chStream}, 0},
	)

	_, src := e.do("POST", "/v1/sources", `{"name":"c","connector":"counter","config":{"count":5}}`)
	_, run := e.do("POST", "/v1/sources/"+src["id"].(string)+"/sync", "")
	e.waitRun(run["id"].(string), "completed")
	done := []string{"connector=counter", "status=completed"}
	s := e.waitMetrics("after a sync of 5 documents",
		expect{"tributary_runs_finished_total", done, 1},
		expect{"tributary_run_duration_seconds", done, 1},
		expect{"tributary_document_changes_total", []string{"connector=counter", "type=created"}, 5},
		expect{"tributary_events_applied_total", []string{"type=document.upserted"}, 5},
		expect{"tributary_events_applied_total", []string{"type=run.started"}, 1},
		expect{"tributary_events_applied_total", []string{"type=run.completed"}, 1},
		expect{"tributary_active_runs", []string{"connector=counter", "status=queued"}, 0},
		expect{"tributary_active_runs", []string{"connector=counter", "status=running"}, 0},
		expect{"tributary_source_leases", nil, 0},
		expect{"tributary_workers", nil, 1},
		expect{"tributary_consumer_pending_messages", []string{"consumer=manager", evStream}, 0},
		expect{"tributary_consumer_ack_pending_messages", []string{"consumer=manager", evStream}, 0},
		expect{"tributary_consumer_pending_messages", []string{"consumer=test-indexer", chStream}, 5},
		expect{"tributary_consumer_ack_pending_messages", []string{"consumer=test-indexer", chStream}, 0},
	)
	if _, ok := s.value("tributary_document_changes_total", "connector=counter", "type=updated"); ok {
		t.Error("a change type that never happened has a series")
	}
	if _, ok := s.value("tributary_metrics_read_errors_total", "read=workers"); ok {
		t.Error("reads failed")
	}

	// A run in progress holds a lease and counts as running; cancelled, it
	// is counted as such.
	_, src = e.do("POST", "/v1/sources", `{"name":"b","connector":"counter","config":{"count":1,"block":true}}`)
	_, run = e.do("POST", "/v1/sources/"+src["id"].(string)+"/sync", "")
	e.waitRun(run["id"].(string), "running")
	e.waitMetrics("while a run blocks",
		expect{"tributary_active_runs", []string{"connector=counter", "status=running"}, 1},
		expect{"tributary_source_leases", nil, 1},
	)
	if code, _ := e.do("POST", "/v1/runs/"+run["id"].(string)+"/cancel", ""); code != 202 {
		t.Fatalf("cancel: %d", code)
	}
	e.waitRun(run["id"].(string), "cancelled")
	e.waitMetrics("after the cancel",
		expect{"tributary_runs_finished_total", []string{"connector=counter", "status=cancelled"}, 1},
		expect{"tributary_runs_finished_total", done, 1},
		expect{"tributary_active_runs", []string{"connector=counter", "status=running"}, 0},
		expect{"tributary_source_leases", nil, 0},
		expect{"tributary_document_changes_total", []string{"connector=counter", "type=created"}, 6},
	)
}
