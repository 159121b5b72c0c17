package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is one figure. Baseline and Ratio are set where the figure has a
// raw JetStream counterpart measured in the same run; Target is the issue's
// goal, as text, and Met whether the figure reached it.
type Result struct {
	Scenario string   `json:"scenario"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	Baseline *float64 `json:"baseline,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   string   `json:"target,omitempty"`
	Met      *bool    `json:"met,omitempty"`
	Note     string   `json:"note,omitempty"`
}

// Report is a whole run's results and the chart's points.
type Report struct {
	Profile string
	Machine string
	Results []Result
	Chart   []ChartPoint
}

// ChartPoint is the pipeline's and the raw baseline's rate at one size.
type ChartPoint struct {
	Size     int
	Pipeline float64 // documents/s
	Raw      float64 // messages/s
}

func (r *Report) add(res Result) { r.Results = append(r.Results, res) }

// rate adds a throughput figure against its baseline, with a target ratio.
func (r *Report) rate(scenario string, value, baseline, minRatio float64, note string) {
	ratio := value / baseline
	res := Result{Scenario: scenario, Value: round(value), Unit: "docs/s", Baseline: ptr(round(baseline)), Ratio: ptr(math.Round(ratio*1000) / 1000), Note: note}
	if minRatio > 0 {
		res.Target = fmt.Sprintf("ratio >= %.2f", minRatio)
		res.Met = ptr(ratio >= minRatio)
	}
	r.add(res)
}

// latency adds a duration figure in milliseconds, with an upper bound.
func (r *Report) latency(scenario string, d, limit time.Duration, note string) {
	res := Result{Scenario: scenario, Value: ms(d), Unit: "ms", Note: note}
	if limit > 0 {
		res.Target = fmt.Sprintf("<= %s", limit)
		res.Met = ptr(d <= limit)
	}
	r.add(res)
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*100) / 100 }

func round(v float64) float64 {
	if math.Abs(v) >= 100 {
		return math.Round(v)
	}
	return math.Round(v*100) / 100
}

func ptr[T any](v T) *T { return &v }

// percentile returns the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Run runs the profile's scenarios and returns their results, also when one
// fails (the error says which).
func Run(ctx context.Context, p Profile, out io.Writer) (*Report, error) {
	rep := &Report{Profile: p.Name, Machine: machine()}
	fmt.Fprintf(out, "Tributary benchmark, %s profile, on %s\n", p.Name, rep.Machine)
	e, err := startEnv(ctx, p, out)
	if err != nil {
		return nil, err
	}
	defer e.close()
	steps := []struct {
		name string
		fn   func(context.Context, *env, *Report) error
	}{
		{"pipeline", pipeline},
		{"dispatch", dispatch},
		{"cancel", cancelLatency},
		{"resume", resume},
		{"memory", memory},
		{"scale", scale},
	}
	var errs []error
	for _, s := range steps {
		if !p.runs(s.name) {
			continue
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		e.logf("scenario %s", s.name)
		sctx, cancel := context.WithTimeout(ctx, p.Deadline)
		began := time.Now()
		err := s.fn(sctx, e, rep)
		cancel()
		if err != nil {
			e.logf("scenario %s failed: %v", s.name, err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		e.logf("scenario %s done in %s", s.name, time.Since(began).Round(100*time.Millisecond))
	}
	printTable(out, rep)
	return rep, errors.Join(errs...)
}

func printTable(out io.Writer, rep *Report) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tvalue\tunit\tbaseline\tratio\ttarget\tmet")
	for _, r := range rep.Results {
		base, ratio, met := "", "", ""
		if r.Baseline != nil {
			base = fmt.Sprint(*r.Baseline)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprint(*r.Ratio)
		}
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Value, r.Unit, base, ratio, r.Target, met)
	}
	_ = tw.Flush()
	var notes []string
	for _, r := range rep.Results {
		if r.Note != "" {
			notes = append(notes, fmt.Sprintf("  %s: %s", r.Scenario, r.Note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(out, "\nnotes:")
		fmt.Fprintln(out, strings.Join(notes, "\n"))
	}
}
