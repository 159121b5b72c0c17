package connectortest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// fakeT is a suiteT that records failures and skips instead of reporting
// them, so these tests can check that the suite catches a broken
// connector. Fatalf and Skipf end the (sub)test's goroutine, as testing
// does; Run runs each subtest on a goroutine of its own.
type fakeT struct {
	real *testing.T
	name string
	// only, when set, names the subtests Run runs; the others are not run.
	only []string

	mu       sync.Mutex
	failed   bool
	skipped  bool
	msgs     []string
	cleanups []func()
	subs     map[string]*fakeT
}

var _ suiteT = (*fakeT)(nil)

func newFakeT(t *testing.T, only ...string) *fakeT {
	f := &fakeT{real: t, name: t.Name(), only: only, subs: map[string]*fakeT{}}
	t.Cleanup(f.cleanup)
	return f
}

func (f *fakeT) Helper() {}

func (f *fakeT) Logf(format string, args ...any) {
	f.real.Logf("%s: %s", f.name, fmt.Sprintf(format, args...))
}

func (f *fakeT) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.real.Logf("%s: (recorded failure) %s", f.name, msg)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, msg)
}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) Skipf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.real.Logf("%s: (recorded skip) %s", f.name, msg)
	f.mu.Lock()
	f.skipped = true
	f.msgs = append(f.msgs, msg)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// TempDir is removed by the fake's own cleanups, so after those registered
// later (a harness writing into it) have run, as testing does.
func (f *fakeT) TempDir() string {
	dir, err := os.MkdirTemp("", "connectortest-fake-")
	if err != nil {
		f.Fatalf("temp dir: %v", err)
	}
	f.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			f.real.Errorf("remove temp dir: %v", err)
		}
	})
	return dir
}

func (f *fakeT) Context() context.Context { return f.real.Context() }

func (f *fakeT) Run(name string, fn func(suiteT)) bool {
	if len(f.only) > 0 && !slices.Contains(f.only, name) {
		return true
	}
	sub := &fakeT{real: f.real, name: f.name + "/" + name, subs: map[string]*fakeT{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sub.cleanup()
		fn(sub)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[name] = sub
	if sub.failed {
		f.failed = true
	}
	return !sub.failed
}

func (f *fakeT) cleanup() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// outcome is "pass", "fail" or "skip" for a subtest that ran, "" for one
// that did not, with what it said.
func (f *fakeT) outcome(name string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub, ok := f.subs[name]
	if !ok {
		return "", ""
	}
	msg := strings.Join(sub.msgs, "\n")
	switch {
	case sub.failed:
		return "fail", msg
	case sub.skipped:
		return "skip", msg
	}
	return "pass", msg
}

var checks = []string{"manifest", "config_schema", "full_sync", "incremental_sync", "checkpoint_round_trip", "cancel"}

// notesConformance is a configuration that exercises every check of notes.
var notesConformance = ConformanceConfig{
	Config:         notesConfig{Count: 3},
	InvalidConfigs: []any{map[string]any{"count": -1}, map[string]any{"count": 1, "pace": "soon"}},
	SlowConfig:     notesConfig{Count: 10000, Pace: "50ms"},
}

// A conforming connector passes every check, through the real testing.T.
func TestConformance(t *testing.T) {
	Conformance(t, notes{}, notesConformance)
}

// And through the fake, which must see the same.
func TestFakeSeesAPass(t *testing.T) {
	ft := newFakeT(t)
	conformance(ft, notes{}, notesConformance)
	for _, c := range checks {
		if got, msg := ft.outcome(c); got != "pass" {
			t.Errorf("%s: %s (%s)", c, got, msg)
		}
	}
}

// Each broken connector fails the check made for it, with a message that
// says what is wrong.
func TestConformanceCatchesBrokenConnectors(t *testing.T) {
	var calls atomic.Int64
	for _, tt := range []struct {
		name  string
		c     notes
		cfg   func(ConformanceConfig) ConformanceConfig
		check string
		says  string
	}{
		{name: "invalid manifest", c: notes{noVersion: true}, check: "manifest", says: "version is required"},
		{name: "schema that does not compile", c: notes{badSchema: true}, check: "manifest", says: "does not compile"},
		{name: "manifest that changes", c: notes{changingDesc: true, calls: &calls}, check: "manifest", says: "changed between two calls"},
		{name: "actions without an executor", c: notes{actionsNoExec: true}, check: "manifest", says: "does not implement connector.ActionExecutor"},
		{name: "schema that accepts anything", c: notes{looseSchema: true}, check: "config_schema", says: `the manager accepts Config with "count" of another type`},
		{name: "invalid config it accepts", c: notes{looseSchema: true}, check: "config_schema", says: "the manager accepts ConformanceConfig.InvalidConfigs[0]"},
		{
			name: "valid config it refuses", c: notes{}, check: "config_schema", says: "the manager rejects ConformanceConfig.Config",
			cfg: func(c ConformanceConfig) ConformanceConfig { c.Config = notesConfig{Count: -5}; return c },
		},
		{name: "full sync that fails", c: notes{failFull: true}, check: "full_sync", says: "the full sync ended failed, want completed: full syncs are broken"},
		{name: "incremental sync that fails", c: notes{failIncremental: true}, check: "incremental_sync", says: "incremental syncs are broken"},
		{name: "no checkpoint", c: notes{noCheckpoint: true}, check: "checkpoint_round_trip", says: "left no checkpoint"},
		{name: "ignores cancellation", c: notes{ignoreCancel: 1500 * time.Millisecond}, check: "cancel", says: "after its context was cancelled, want within 1s"},
		{name: "completes when cancelled", c: notes{completeOnCancel: true}, check: "cancel", says: "the cancelled run ended completed"},
		{
			name: "slow config that is fast", c: notes{}, check: "cancel", says: "the sync of SlowConfig ended before it could be cancelled",
			cfg: func(c ConformanceConfig) ConformanceConfig { c.SlowConfig = notesConfig{Count: 0}; return c },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := notesConformance
			if tt.cfg != nil {
				cfg = tt.cfg(cfg)
			}
			ft := newFakeT(t, tt.check)
			conformance(ft, tt.c, cfg)
			got, msg := ft.outcome(tt.check)
			if got != "fail" {
				t.Fatalf("%s: %s, want fail (%s)", tt.check, got, msg)
			}
			if !strings.Contains(msg, tt.says) {
				t.Errorf("%s says %q, want it to say %q", tt.check, msg, tt.says)
			}
		})
	}
}

// A broken connector fails the check made for it and only that one.
func TestConformanceIsPrecise(t *testing.T) {
	cfg := notesConformance
	cfg.SlowConfig = nil
	ft := newFakeT(t)
	conformance(ft, notes{failIncremental: true}, cfg)
	want := map[string]string{
		"manifest": "pass", "config_schema": "pass", "full_sync": "pass",
		"incremental_sync": "fail", "checkpoint_round_trip": "fail", "cancel": "skip",
	}
	for _, c := range checks {
		if got, msg := ft.outcome(c); got != want[c] {
			t.Errorf("%s: %s, want %s (%s)", c, got, want[c], msg)
		}
	}
	if _, msg := ft.outcome("cancel"); !strings.Contains(msg, "no ConformanceConfig.SlowConfig") {
		t.Errorf("cancel skipped saying %q", msg)
	}
}

// A connector that supports only full syncs skips the incremental check.
func TestConformanceFullOnly(t *testing.T) {
	ft := newFakeT(t, "incremental_sync", "checkpoint_round_trip")
	conformance(ft, fullOnly{}, ConformanceConfig{Config: notesConfig{Count: 2}})
	if got, msg := ft.outcome("incremental_sync"); got != "skip" || !strings.Contains(msg, "only full syncs") {
		t.Errorf("incremental_sync: %s (%s)", got, msg)
	}
	if got, msg := ft.outcome("checkpoint_round_trip"); got != "pass" {
		t.Errorf("checkpoint_round_trip: %s (%s)", got, msg)
	}
}

func TestConformanceNeedsAConfig(t *testing.T) {
	ft := newFakeT(t)
	done := make(chan struct{})
	go func() { defer close(done); conformance(ft, notes{}, ConformanceConfig{}) }()
	<-done
	if !ft.failed || !strings.Contains(strings.Join(ft.msgs, ""), "Config is required") {
		t.Errorf("failed %v: %q", ft.failed, ft.msgs)
	}
}

// fullOnly is notes with full syncs only.
type fullOnly struct{ notes }

func (f fullOnly) Manifest() connector.Manifest {
	m := f.notes.Manifest()
	m.SyncModes = nil
	return m
}
