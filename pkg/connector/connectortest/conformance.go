package connectortest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// ConformanceConfig is what Conformance needs to exercise a connector.
type ConformanceConfig struct {
	// Config is a valid source configuration whose full sync completes,
	// preferably in a second or two (a temporary directory, a test server
	// started by the test). Required.
	Config any
	// Credentials go with Config and SlowConfig; nil for none.
	Credentials any
	// InvalidConfigs are configurations the connector's ConfigSchema must
	// reject (a required field missing, a value out of range). Conformance
	// adds generic ones of its own.
	InvalidConfigs []any
	// SlowConfig is a valid configuration whose full sync takes several
	// seconds, used to check that the connector stops when it is
	// cancelled. Nil skips that check, saying so.
	SlowConfig any
	// Options configure each harness the suite starts.
	Options []Option
}

// cancelWithin is how soon Sync must return once its context is done.
const cancelWithin = time.Second

// Conformance checks that c behaves as the worker and the manager expect,
// in subtests of t:
//
//   - manifest: Manifest validates, does not change between calls, and
//     declares a ConfigSchema that compiles (JSON Schema 2020-12); a
//     connector with actions implements connector.ActionExecutor.
//   - config_schema: the manager accepts Config (and SlowConfig) and
//     rejects each of InvalidConfigs, non-objects, Config without each of
//     the schema's top-level required properties, and Config with each
//     top-level value replaced by one of another JSON type.
//   - full_sync: a full sync of Config completes with at least one
//     document, and the content of its
//     documents can be read back.
//   - incremental_sync: after a full sync, an incremental one completes
//     (skipped when the manifest lists only full syncs).
//   - checkpoint_round_trip: the checkpoint stored after a full sync is the
//     one the connector gave, the next sync receives exactly it, and a
//     sync from that checkpoint set by an operator completes too. A
//     connector that supports incremental syncs must leave one.
//   - cancel: a full sync of SlowConfig, cancelled while it runs, returns
//     from Sync within a second of its context being cancelled and ends
//     cancelled (skipped without SlowConfig).
//
// The checks share one harness (server, manager and worker), each with a
// source of its own.
func Conformance(t *testing.T, c connector.Connector, cfg ConformanceConfig) {
	t.Helper()
	conformance(testingT{t}, c, cfg)
}

// suiteT is what the suite needs of a test: *testing.T through testingT,
// or a recording fake in the suite's own tests.
type suiteT interface {
	tb
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Context() context.Context
	Run(name string, f func(suiteT)) bool
}

type testingT struct{ *testing.T }

func (t testingT) Run(name string, f func(suiteT)) bool {
	t.Helper()
	return t.T.Run(name, func(t *testing.T) { f(testingT{t}) })
}

func conformance(t suiteT, c connector.Connector, cfg ConformanceConfig) {
	t.Helper()
	if c == nil {
		t.Fatalf("connectortest: Conformance needs a connector")
		return
	}
	if cfg.Config == nil {
		t.Fatalf("connectortest: ConformanceConfig.Config is required: a valid source configuration")
		return
	}
	// One server, manager and worker for the whole suite, a source of its
	// own for each harness: starting them is most of a check's time. A
	// harness that does not start fails every check that needs one, after
	// the manifest check has said why.
	s := &suite{c: c, cfg: cfg}
	s.base, s.startErr = start(context.Background(), c, t.TempDir(), false, testOptions(t, cfg.Options))
	if s.startErr == nil {
		closeAtEnd(t, s.base)
	}
	t.Run("manifest", s.manifest)
	t.Run("config_schema", s.configSchema)
	t.Run("full_sync", s.fullSync)
	t.Run("incremental_sync", s.incrementalSync)
	t.Run("checkpoint_round_trip", s.checkpointRoundTrip)
	t.Run("cancel", s.cancel)
}

type suite struct {
	c        connector.Connector
	cfg      ConformanceConfig
	base     *Harness
	startErr error
}

// harness returns a harness with a source of its own.
func (s *suite) harness(t suiteT) *Harness {
	t.Helper()
	if s.startErr != nil {
		t.Fatalf("connectortest: the harness did not start: %v", s.startErr)
	}
	return s.base.fork()
}

// runSync runs a sync and fails the test when it cannot run.
func runSync(t suiteT, h *Harness, sync Sync) *Result {
	t.Helper()
	res, err := h.RunSync(t.Context(), sync)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return res
}

// mustComplete fails the test unless the run completed.
func mustComplete(t suiteT, res *Result, what string) {
	t.Helper()
	if res.Status != StatusCompleted {
		t.Fatalf("%s ended %s, want completed: %s", what, res.Status, res.Error)
	}
	t.Logf("%s completed: %d emitted, %d updated, %d deleted, %d document errors, %d scanned",
		what, res.Counters.Emitted, res.Counters.Updated, res.Counters.Deleted, res.Counters.Errors, res.Counters.Scanned)
}

func (s *suite) manifest(t suiteT) {
	m := s.c.Manifest()
	if err := m.Validate(); err != nil {
		t.Errorf("Manifest().Validate(): %v", err)
	}
	a, _ := json.Marshal(m)
	b, _ := json.Marshal(s.c.Manifest())
	if !bytes.Equal(a, b) {
		t.Errorf("Manifest() changed between two calls: it must not change once the connector exists:\n%s\n%s", a, b)
	}
	if len(m.Actions) > 0 {
		if _, ok := s.c.(connector.ActionExecutor); !ok {
			t.Errorf("the manifest declares %d actions but the connector does not implement connector.ActionExecutor", len(m.Actions))
		}
	}
	if len(m.ConfigSchema) == 0 {
		t.Errorf("the manifest has no ConfigSchema, so the manager accepts any object as config: declare one " +
			`(a connector without settings declares {"type":"object","additionalProperties":false})`)
		return
	}
	if _, err := compileSchema(m.ConfigSchema); err != nil {
		t.Errorf("ConfigSchema does not compile: %v", err)
	}
}

// compileSchema compiles a config schema as the manager does.
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	const url = "tributary://connectortest/config.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

func (s *suite) configSchema(t suiteT) {
	h := s.harness(t)
	ctx := t.Context()
	accept := func(name string, cfg any) {
		t.Helper()
		verr, err := h.validateConfig(ctx, cfg)
		switch {
		case verr != nil:
			t.Errorf("the manager rejects %s: %v", name, verr)
		case err != nil:
			t.Fatalf("%v", err)
		}
	}
	reject := func(name string, cfg any) {
		t.Helper()
		verr, err := h.validateConfig(ctx, cfg)
		switch {
		case err != nil && verr == nil:
			t.Fatalf("%v", err)
		case verr == nil:
			raw, _ := toJSON(cfg)
			t.Errorf("the manager accepts %s: %s", name, raw)
		case !aboutConfig(verr):
			t.Errorf("the manager rejects %s, but not for its config: %v", name, verr)
		}
	}
	accept("ConformanceConfig.Config", s.cfg.Config)
	if s.cfg.SlowConfig != nil {
		accept("ConformanceConfig.SlowConfig", s.cfg.SlowConfig)
	}
	for i, bad := range s.cfg.InvalidConfigs {
		reject(fmt.Sprintf("ConformanceConfig.InvalidConfigs[%d]", i), bad)
	}
	for _, bad := range []json.RawMessage{[]byte(`[]`), []byte(`"config"`), []byte(`42`), []byte(`true`)} {
		reject("a config that is not an object", bad)
	}
	raw, err := toJSON(s.cfg.Config)
	if err != nil {
		t.Fatalf("ConformanceConfig.Config: %v", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		t.Fatalf("ConformanceConfig.Config is not a JSON object: %s", raw)
	}
	for _, req := range requiredProperties(s.c.Manifest().ConfigSchema) {
		if _, ok := obj[req]; !ok {
			continue
		}
		without := maps.Clone(obj)
		delete(without, req)
		reject(fmt.Sprintf("Config without the required %q", req), without)
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		wrong, ok := otherType(obj[k])
		if !ok {
			continue
		}
		bad := maps.Clone(obj)
		bad[k] = wrong
		reject(fmt.Sprintf("Config with %q of another type", k), bad)
	}
}

// aboutConfig reports whether every violation is located in the config.
func aboutConfig(verr *manager.ValidationError) bool {
	for _, d := range verr.Details {
		if len(d.Loc) < 2 || d.Loc[0] != "body" || d.Loc[1] != "config" {
			return false
		}
	}
	return len(verr.Details) > 0
}

// requiredProperties returns the top-level "required" list of a schema.
func requiredProperties(schema json.RawMessage) []string {
	var s struct {
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(schema, &s)
	return s.Required
}

// otherType returns a value of another JSON type than v.
func otherType(v any) (any, bool) {
	switch v.(type) {
	case string:
		return 12345, true
	case float64:
		return "not a number", true
	case bool:
		return "not a boolean", true
	case []any:
		return map[string]any{"not": "an array"}, true
	case map[string]any:
		return "not an object", true
	}
	return nil, false
}

func (s *suite) fullSync(t suiteT) {
	h := s.harness(t)
	res := runSync(t, h, Sync{Config: s.cfg.Config, Credentials: s.cfg.Credentials, Mode: connector.Full})
	mustComplete(t, res, "the full sync")
	if res.Mode != connector.Full {
		t.Errorf("the run's mode is %q, want full", res.Mode)
	}
	for _, e := range res.DocumentErrors {
		t.Logf("document error %q: %s", e.ExternalID, e.Error)
	}
	if len(res.Emitted)+len(res.Updated) == 0 {
		t.Errorf("the full sync emitted no document: give a Config whose source has some, so that the checks mean something")
	}
	// Content the documents name must be there: read some of it back.
	const maxRead = 50
	n := 0
	for _, d := range append(slices.Clone(res.Emitted), res.Updated...) {
		if d.ContentID == "" || n == maxRead {
			continue
		}
		n++
		if _, err := d.Text(t.Context()); err != nil {
			t.Errorf("document %q: %v", d.ExternalID, err)
		}
		if _, err := d.Raw(t.Context()); err != nil {
			t.Errorf("document %q: raw content: %v", d.ExternalID, err)
		}
	}
}

func (s *suite) incrementalSync(t suiteT) {
	if !s.c.Manifest().Supports(connector.Incremental) {
		t.Skipf("the manifest lists only full syncs")
		return
	}
	h := s.harness(t)
	first := runSync(t, h, Sync{Config: s.cfg.Config, Credentials: s.cfg.Credentials, Mode: connector.Full})
	mustComplete(t, first, "the full sync")
	second := runSync(t, h, Sync{Mode: connector.Incremental})
	mustComplete(t, second, "the incremental sync after it")
	if second.Mode != connector.Incremental {
		t.Errorf("the run's mode is %q, want incremental", second.Mode)
	}
}

func (s *suite) checkpointRoundTrip(t suiteT) {
	incremental := s.c.Manifest().Supports(connector.Incremental)
	h := s.harness(t)
	first := runSync(t, h, Sync{Config: s.cfg.Config, Credentials: s.cfg.Credentials, Mode: connector.Full})
	mustComplete(t, first, "the full sync")
	rec := h.record(first.RunID)
	rec.mu.Lock()
	given := rec.given
	rec.mu.Unlock()
	switch {
	case first.Checkpoint == nil && incremental:
		t.Errorf("the connector supports incremental syncs but its full sync left no checkpoint: " +
			"give one to Complete (or SaveCheckpoint) so the next sync knows where to start")
	case given != nil && !jsonEqual(given, first.Checkpoint):
		t.Errorf("the checkpoint stored after the run is %s, but the last one the connector gave was %s", first.Checkpoint, given)
	}

	mode := connector.Full
	if incremental {
		mode = connector.Incremental
	}
	second := runSync(t, h, Sync{Mode: mode})
	if second.Request == nil {
		t.Fatalf("the connector was not called for the second sync (it ended %s: %s)", second.Status, second.Error)
	}
	if !jsonEqual(second.Request.Checkpoint, first.Checkpoint) {
		t.Errorf("the second sync received checkpoint %s, want the first one's final checkpoint %s", second.Request.Checkpoint, first.Checkpoint)
	}
	mustComplete(t, second, fmt.Sprintf("the %s sync from the first one's checkpoint", mode))

	if first.Checkpoint == nil {
		return
	}
	// The same checkpoint, set by an operator on a new source.
	other := s.harness(t)
	third := runSync(t, other, Sync{Config: s.cfg.Config, Credentials: s.cfg.Credentials, Checkpoint: first.Checkpoint, Mode: mode})
	if third.Request == nil {
		t.Fatalf("the connector was not called for a sync from a checkpoint set by an operator (it ended %s: %s)", third.Status, third.Error)
	}
	if !jsonEqual(third.Request.Checkpoint, first.Checkpoint) {
		t.Errorf("a sync from a checkpoint set by an operator received %s, want %s", third.Request.Checkpoint, first.Checkpoint)
	}
	mustComplete(t, third, fmt.Sprintf("the %s sync from a checkpoint set by an operator", mode))
}

// jsonEqual reports whether a and b are the same JSON value (both absent
// counts as equal).
func jsonEqual(a, b json.RawMessage) bool {
	absent := func(r json.RawMessage) bool {
		return len(bytes.TrimSpace(r)) == 0 || string(bytes.TrimSpace(r)) == "null"
	}
	if absent(a) || absent(b) {
		return absent(a) && absent(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// activityWait bounds how long the cancel check waits for the connector's
// first call of its SyncContext before it cancels anyway.
const activityWait = 2 * time.Second

// returnWait bounds how long the cancel check waits for Sync to return
// after the cancellation, to say how late it was.
const returnWait = 10 * time.Second

func (s *suite) cancel(t suiteT) {
	if s.cfg.SlowConfig == nil {
		t.Skipf("no ConformanceConfig.SlowConfig: give a config whose full sync takes several seconds to check that the connector stops when cancelled")
		return
	}
	h := s.harness(t)
	ctx := t.Context()
	run, err := h.StartSync(ctx, Sync{Config: s.cfg.SlowConfig, Credentials: s.cfg.Credentials, Mode: connector.Full})
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := run.WaitRunning(ctx); err != nil {
		t.Fatalf("%v", err)
	}
	rec := run.rec
	rec.mu.Lock()
	returned := rec.returned
	rec.mu.Unlock()
	// Cancel once the sync is at work (or has been a while in silence).
	timer := time.NewTimer(activityWait)
	select {
	case <-rec.activity:
	case <-timer.C:
	case <-returned:
	}
	timer.Stop()
	select {
	case <-returned:
		res, _ := run.Wait(ctx)
		st := "?"
		if res != nil {
			st = string(res.Status)
		}
		t.Fatalf("the sync of SlowConfig ended before it could be cancelled (%s): give a config whose sync takes several seconds", st)
	default:
	}
	if err := run.Cancel(ctx); err != nil {
		var conflict *manager.ConflictError
		if errors.As(err, &conflict) {
			t.Fatalf("the sync of SlowConfig ended before it could be cancelled (%v): give a config whose sync takes several seconds", err)
		}
		t.Fatalf("%v", err)
	}
	timer = time.NewTimer(returnWait)
	defer timer.Stop()
	select {
	case <-returned:
	case <-timer.C:
		t.Fatalf("Sync did not return within %s of the cancellation: return when ctx is done", returnWait)
	}
	rec.mu.Lock()
	doneAt, endedAt, returnAt := rec.ctxDoneAt, rec.endedAt, rec.returnAt
	rec.mu.Unlock()
	switch {
	case doneAt.IsZero():
		t.Fatalf("the sync of SlowConfig ended before it could be cancelled (Sync returned before its context was cancelled): give a config whose sync takes several seconds")
	case !endedAt.IsZero() && endedAt.Before(doneAt):
		t.Fatalf("the sync of SlowConfig ended before it could be cancelled (it called Complete or Fail before its context was cancelled): give a config whose sync takes several seconds")
	}
	if late := returnAt.Sub(doneAt); late > cancelWithin {
		t.Errorf("Sync returned %s after its context was cancelled, want within %s: check ctx.Done() (or the errors of SyncContext calls) in every loop and wait", late.Round(time.Millisecond), cancelWithin)
	} else {
		t.Logf("Sync returned %s after its context was cancelled", late.Round(time.Millisecond))
	}
	res, err := run.Wait(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if res.Status != StatusCancelled {
		t.Errorf("the cancelled run ended %s (%s), want cancelled: when ctx is done, return ctx.Err() or nil without calling Complete", res.Status, res.Error)
	}
}
