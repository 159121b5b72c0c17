package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the benchmark's worker processes,
// as the benchmark binary does.
func TestMain(m *testing.M) {
	if isChild() {
		if err := runChild(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tinyProfile is the quick profile shrunk to a smoke check: every scenario
// runs end to end on a handful of documents, runs and sources.
func tinyProfile() Profile {
	return Profile{
		Name:         "tiny",
		PipelineDocs: 300, ChartDocs: 100, ChartSizes: []int{4096},
		DispatchRuns: 5, CancelRuns: 3, ResumeRuns: 1,
		ScaleSources: 10, ScaleEvery: 2 * time.Second, ScaleCycles: 1, ScaleWorkers: 1,
		MemorySyncs: 1, MemoryFor: 500 * time.Millisecond,
		Deadline: 2 * time.Minute,
	}
}

// TestQuickSmoke runs every scenario on tiny sizes and checks that each
// reports its figures and that the JSON and the chart are written. It
// checks no timing: the figures of a test run on a shared machine mean
// nothing.
func TestQuickSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes and runs every scenario (about 30 s)")
	}
	var out bytes.Buffer
	rep, err := Run(context.Background(), tinyProfile(), &out)
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jsonPath, chartPath := filepath.Join(dir, "results.json"), filepath.Join(dir, "chart.png")
	if err := writeOutputs(rep, jsonPath, chartPath); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var results []map[string]any
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	for _, want := range []string{"baseline publish", "pipeline size=0B", "pipeline size=1024B", "dispatch p99", "cancel p99",
		"resume p50", "worker rss per concurrent sync", "scale schedule lateness p99", "scale list sources p99"} {
		found := false
		for _, r := range results {
			name, _ := r["scenario"].(string)
			if strings.HasPrefix(name, want) {
				found = true
				for _, k := range []string{"value", "unit"} {
					if _, ok := r[k]; !ok {
						t.Errorf("%s: no %s", name, k)
					}
				}
				if strings.HasPrefix(name, "pipeline") {
					for _, k := range []string{"baseline", "ratio"} {
						if _, ok := r[k]; !ok {
							t.Errorf("%s: no %s", name, k)
						}
					}
				}
			}
		}
		if !found {
			t.Errorf("no result %q in %s", want, raw)
		}
	}
	f, err := os.Open(chartPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("chart: %v", err)
	}
}
