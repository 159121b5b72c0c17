package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics scrapes the real manager's /metrics around a sync, with auth
// tokens configured: no token is needed, the Go runtime and process
// metrics are there, and the run's documents and end are counted.
func TestMetrics(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	writeFile(t, tokens, "admin-token-0123456789 admin\n")
	s := startManager(t, "--auth-tokens-file", tokens)
	s.Token = "admin-token-0123456789"
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.txt"), "a")
	writeFile(t, filepath.Join(root, "b.txt"), "b")
	src := s.CreateSource("m", "filesystem", map[string]any{"root": root})
	s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)

	want := map[string]float64{
		`tributary_runs_finished_total{connector="filesystem",status="completed"}`:        1,
		`tributary_run_duration_seconds_count{connector="filesystem",status="completed"}`: 1,
		`tributary_document_changes_total{connector="filesystem",type="created"}`:         2,
		`tributary_events_applied_total{type="document.upserted"}`:                        2,
		`tributary_active_runs{connector="filesystem",status="running"}`:                  0,
		`tributary_workers`: 1,
		`tributary_consumer_pending_messages{consumer="manager",stream="TRIBUTARY_EVENTS"}`: 0,
	}
	var got map[string]float64
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got = scrapeMetrics(t, s.Base)
		miss := ""
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				miss = fmt.Sprintf("%s is %v (present: %v), want %v", k, g, ok, v)
				break
			}
		}
		if miss == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the sync: %s", miss)
		}
	}
	for _, k := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
}

// scrapeMetrics reads GET /metrics, without a token, as series → value
// (histograms as their _count).
func scrapeMetrics(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[strings.Replace(key, name, name+"_count", 1)] = float64(m.GetHistogram().GetSampleCount())
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}
