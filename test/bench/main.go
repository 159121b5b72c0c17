// Command bench measures Tributary against raw JetStream on the same
// embedded server, in the same process, in the same run:
//
//	go run ./test/bench                      # the full profile (about 15 minutes)
//	go run ./test/bench --quick --out r.json # the CI smoke profile (under 2 minutes)
//
// It starts the embedded NATS server (internal/bus) with file storage in a
// temporary directory, the manager and its HTTP API in process, and first
// measures the baseline: raw jetstream PublishAsync with bounded pending
// acknowledgements, and a raw durable consumer with explicit acks, for
// messages of the size each scenario's documents have. Then the scenarios
// of docs/benchmarks.md: pipeline throughput (synthetic connector to change
// feed), dispatch and cancel latency, resume after a killed worker,
// 10,000 scheduled sources, and memory. It prints a table, writes the
// results as JSON (--out) and the throughput chart as PNG (--chart).
//
// Worker processes (resume, scale, memory) are this same binary started
// again with TRIBUTARY_BENCH_WORKER set: see child.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if isChild() {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "bench worker:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "the CI smoke profile: fewer documents, runs and sources (under 2 minutes)")
	out := fs.String("out", "", "write the results as JSON to this file")
	chart := fs.String("chart", "", "write the chart of documents/s against document size (PNG) to this file")
	only := fs.String("only", "", "comma-separated scenarios to run (pipeline, dispatch, cancel, resume, scale, memory); default all")
	docs := fs.Int("docs", 0, "documents of the pipeline scenario (default 200,000; 5,000 with --quick)")
	sources := fs.Int("sources", 0, "sources of the scale scenario (default 10,000; 200 with --quick)")
	sizes := fs.String("sizes", "", "comma-separated document sizes in bytes the pipeline scenario measures, each with --docs documents (default 0, 1024 and the chart's)")
	burst := fs.Bool("burst", false, "scale scenario: create the sources at once (every due time in the same few seconds) rather than spread over one interval")
	replot := fs.String("replot", "", "only draw --chart again from this results file (written by --out), running nothing")
	keep := fs.Bool("keep", false, "keep the temporary store directory")
	verbose := fs.Bool("v", false, "log the manager's and workers' warnings")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process (manager, server, in-process workers) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *replot != "" {
		return replotChart(*replot, *chart)
	}
	p := fullProfile()
	if *quick {
		p = quickProfile()
	}
	if *docs > 0 {
		p.PipelineDocs = *docs
	}
	if *sources > 0 {
		p.ScaleSources = *sources
	}
	if *sizes != "" {
		for _, f := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return fmt.Errorf("--sizes: %q is not a size in bytes", f)
			}
			p.Sizes = append(p.Sizes, n)
		}
	}
	if *only != "" {
		p.Only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			p.Only[strings.TrimSpace(s)] = true
		}
	}
	p.Keep, p.Verbose, p.ScaleBurst = *keep, *verbose, *burst
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, p, stdout)
	if rep != nil {
		if werr := writeOutputs(rep, *out, *chart); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

// writeOutputs writes the results as JSON to out and the chart as PNG to
// chart; an empty name skips either.
func writeOutputs(rep *Report, out, chart string) error {
	if out != "" {
		b, err := json.MarshalIndent(rep.Results, "", "  ")
		if err == nil {
			err = os.WriteFile(out, append(b, '\n'), 0o600)
		}
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	if chart != "" && len(rep.Chart) > 0 {
		if err := writeChart(chart, rep.Chart); err != nil {
			return fmt.Errorf("--chart: %w", err)
		}
	}
	return nil
}

// Profile sizes the scenarios.
type Profile struct {
	Name string
	// PipelineDocs are the documents of the two throughput figures
	// (metadata only, 1 KiB); ChartDocs those of each other chart size.
	PipelineDocs int
	ChartDocs    int
	ChartSizes   []int
	// Sizes, when set, are the only document sizes the pipeline scenario
	// measures (each with PipelineDocs documents).
	Sizes []int
	// DispatchRuns and CancelRuns are the runs timed.
	DispatchRuns int
	CancelRuns   int
	// ResumeRuns are the workers killed.
	ResumeRuns int
	// ScaleSources on a schedule of ScaleEvery, watched for ScaleCycles
	// due times each, with ScaleWorkers worker processes.
	ScaleSources int
	ScaleEvery   time.Duration
	ScaleCycles  int
	ScaleWorkers int
	// ScaleBurst creates the sources at once rather than over one
	// interval: every due time falls in the same few seconds.
	ScaleBurst bool
	// MemorySyncs are the concurrent syncs of the worker measured, for
	// MemoryFor.
	MemorySyncs int
	MemoryFor   time.Duration
	// Deadline bounds each scenario's waits.
	Deadline time.Duration

	Only    map[string]bool
	Keep    bool
	Verbose bool
}

func (p *Profile) runs(name string) bool { return p.Only == nil || p.Only[name] }

func fullProfile() Profile {
	return Profile{
		Name:         "full",
		PipelineDocs: 200_000, ChartDocs: 20_000, ChartSizes: []int{256, 4096, 16384},
		DispatchRuns: 1000, CancelRuns: 200, ResumeRuns: 10,
		ScaleSources: 10_000, ScaleEvery: time.Minute, ScaleCycles: 2, ScaleWorkers: 4,
		MemorySyncs: 8, MemoryFor: 15 * time.Second,
		Deadline: 20 * time.Minute,
	}
}

func quickProfile() Profile {
	return Profile{
		Name:         "quick",
		PipelineDocs: 5_000, ChartDocs: 2_000, ChartSizes: []int{4096},
		DispatchRuns: 100, CancelRuns: 20, ResumeRuns: 2,
		ScaleSources: 200, ScaleEvery: 5 * time.Second, ScaleCycles: 2, ScaleWorkers: 2,
		MemorySyncs: 2, MemoryFor: 3 * time.Second,
		Deadline: 90 * time.Second,
	}
}
