package exec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/connectors/connectortest"
	"github.com/tributary-sync/tributary/internal/connectors/exec"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// child returns a connector that runs this test binary in the given mode
// (see runChild).
func child(t *testing.T, mode string, edit ...func(*exec.Spec)) *exec.Connector {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := exec.Spec{
		Name: "child", Version: "1.0.0", Command: self,
		// A -race binary sleeps a second at exit unless told not to.
		Env:   map[string]string{childEnv: mode, "GORACE": "atexit_sleep_ms=0"},
		Grace: exec.Duration(2 * time.Second),
	}
	for _, e := range edit {
		e(&s)
	}
	c, err := exec.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func request() *connector.SyncRequest {
	return &connector.SyncRequest{SourceID: "src-1", RunID: "run-1", Mode: connector.Full, Attempt: 1}
}

// syncRec runs one sync against a recorder, bounded by a deadline.
func syncRec(t *testing.T, c *exec.Connector, req *connector.SyncRequest) (*connectortest.Recorder, error) {
	t.Helper()
	rec := connectortest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Sync(ctx, req, rec)
	if ctx.Err() != nil {
		t.Fatalf("sync did not end within the deadline: %v", err)
	}
	return rec, err
}

func python(t *testing.T) {
	t.Helper()
	if _, err := osexec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed: the Python example connector cannot run here")
	}
}

// loadHello loads examples/exec/connectors.json.
func loadHello(t *testing.T) *exec.Connector {
	t.Helper()
	python(t)
	cs, err := exec.Load(filepath.Join("..", "..", "..", "examples", "exec", "connectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Manifest().Name != "hello" {
		t.Fatalf("loaded %d connectors", len(cs))
	}
	return cs[0]
}

func TestPythonExample(t *testing.T) {
	c := loadHello(t)
	req := request()
	req.Config = json.RawMessage(`{"count":5,"checkpoint_every":2}`)
	rec, err := syncRec(t, c, req)
	if err != nil {
		t.Fatal(err)
	}
	if ids := rec.IDs(connectortest.Emit); !slices.Equal(ids, []string{"hello-0", "hello-1", "hello-2", "hello-3", "hello-4"}) {
		t.Fatalf("emitted %v", ids)
	}
	d := rec.Docs()["hello-3"]
	if d.Title != "Hello 3" || d.Metadata.MimeType != "text/plain" || !d.Permissions.Public {
		t.Fatalf("document: %+v", d)
	}
	if ct, ok := rec.ContentOf(d); !ok || string(ct.Data) != "Hello, world number 3!\n" || ct.Binary {
		t.Fatalf("content: %+v %v", ct, ok)
	}
	if cps := rec.Checkpoints(); len(cps) != 2 || string(cps[0]) != `{"next":2}` || string(cps[1]) != `{"next":4}` {
		t.Fatalf("checkpoints %s", cps)
	}
	if final, ok := rec.Final(); !ok || string(final) != `{"next":5}` {
		t.Fatalf("final %s %v", final, ok)
	}
	if rec.Scanned() != 5 {
		t.Fatalf("scanned %d", rec.Scanned())
	}

	// A resumed attempt continues after its checkpoint.
	req.Resumed, req.Checkpoint = true, json.RawMessage(`{"next":4}`)
	rec, err = syncRec(t, c, req)
	if err != nil {
		t.Fatal(err)
	}
	if ids := rec.IDs(connectortest.Emit); !slices.Equal(ids, []string{"hello-4"}) {
		t.Fatalf("resumed attempt emitted %v", ids)
	}
}

// A child that writes faster than the worker handles its lines blocks in
// its writes (the pipe is full) and goes on when the worker catches up.
func TestBackpressure(t *testing.T) {
	c := loadHello(t)
	req := request()
	req.Config = json.RawMessage(`{"count":3000,"checkpoint_every":1000}`)
	rec := connectortest.New(t)
	rec.After = func(e connectortest.Event, i int) error {
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // a slow bus, now and then
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Sync(ctx, req, rec); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.IDs(connectortest.Emit)); n != 3000 {
		t.Fatalf("%d documents", n)
	}
}

func TestRequestLine(t *testing.T) {
	c := child(t, "echo")
	req := &connector.SyncRequest{
		SourceID: "src-1", RunID: "run-1", Mode: connector.Incremental,
		Config: json.RawMessage(`{"a":1}`), Credentials: json.RawMessage(`{"token":"t0ps3cret"}`),
		Checkpoint: json.RawMessage(`{"pos":7}`), Resumed: true, Attempt: 3,
	}
	rec, err := syncRec(t, c, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(rec.Docs()["request"].Attributes["request"])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"attempt":3,"checkpoint":{"pos":7},"config":{"a":1},"connector":"child","credentials":{"token":"t0ps3cret"},` +
		`"mode":"incremental","protocol":1,"resumed":true,"run_id":"run-1","source_id":"src-1","type":"sync"}`
	if string(got) != want {
		t.Fatalf("request\n got %s\nwant %s", got, want)
	}

	// Without config, credentials or checkpoint: {}, null, null.
	rec, err = syncRec(t, c, request())
	if err != nil {
		t.Fatal(err)
	}
	r := rec.Docs()["request"].Attributes["request"].(map[string]any)
	if cfg, ok := r["config"].(map[string]any); !ok || len(cfg) != 0 || r["credentials"] != nil || r["checkpoint"] != nil || r["resumed"] != false {
		t.Fatalf("empty request: %v", r)
	}
}

func TestEveryMessage(t *testing.T) {
	rec, err := syncRec(t, child(t, "all"), request())
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range rec.Events() {
		kinds = append(kinds, string(e.Kind)+":"+e.ID)
	}
	want := []string{"emit:a", "update:b", "emit:c", "error:d", "checkpoint:", "delete:gone", "error:bad", "complete:"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	docs := rec.Docs()
	if ct, _ := rec.ContentOf(docs["a"]); string(ct.Data) != "alpha" || ct.ContentType != "text/markdown" || ct.Binary {
		t.Fatalf("content of a: %+v", ct)
	}
	if ct, _ := rec.ContentOf(docs["b"]); !ct.Binary || !slices.Equal(ct.Data, []byte{0, 1, 2}) {
		t.Fatalf("content of b: %+v", ct)
	}
	if ct, _ := rec.ContentOf(docs["c"]); strings.TrimSpace(string(ct.Data)) != "Hello there" || ct.Binary {
		t.Fatalf("content of c: %q", ct.Data)
	}
	evs := rec.Events()
	if !strings.Contains(evs[3].Err, "no text extractor") {
		t.Fatalf("error of d: %q", evs[3].Err)
	}
	if evs[6].Err != "unreadable" {
		t.Fatalf("error of bad: %q", evs[6].Err)
	}
	if string(evs[4].Checkpoint) != `{"pos":3}` || string(evs[7].Checkpoint) != `{"pos":4}` {
		t.Fatalf("checkpoints %s %s", evs[4].Checkpoint, evs[7].Checkpoint)
	}
	if rec.Scanned() != 3 {
		t.Fatalf("scanned %d", rec.Scanned())
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("TRIBUTARY_SECRET_KEY", "do-not-leak")
	t.Setenv("EXEC_TEST_PASSED", "yes")
	c := child(t, "env", func(s *exec.Spec) {
		s.PassEnv = []string{"EXEC_TEST_PASSED"}
		s.Env["EXTRA"] = "1"
	})
	rec, err := syncRec(t, c, request())
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, v := range rec.Docs()["env"].Attributes["env"].([]any) {
		env = append(env, v.(string))
	}
	for _, want := range []string{"EXEC_TEST_PASSED=yes", "EXTRA=1", childEnv + "=env", "PATH=" + os.Getenv("PATH")} {
		if !slices.Contains(env, want) {
			t.Errorf("child environment lacks %s: %v", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "TRIBUTARY_SECRET_KEY=") || strings.HasPrefix(kv, "GOFLAGS=") {
			t.Errorf("child environment has %s", kv)
		}
	}
}

// failure checks that a sync failed with an error of type E whose message
// holds every one of wants.
func failure[E error](t *testing.T, err error, wants ...string) E {
	t.Helper()
	var e E
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want a %T", err, err, e)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q lacks %q", err, w)
		}
	}
	return e
}

func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		edit  func(*exec.Spec)
		wants []string
	}{
		{mode: "garbage", wants: []string{"stdout line 2", `not a JSON object: "hello, not JSON"`, "about to print garbage"}},
		{mode: "unknown", wants: []string{"stdout line 1", `unknown message type "bogus"`, "stderr was empty"}},
		{mode: "nodoc", wants: []string{"emit: document: external_id is required"}},
		{mode: "afterdone", wants: []string{"stdout line 2", "a line after done or fail"}},
		{mode: "long", edit: func(s *exec.Spec) { s.MaxLineBytes = 4096 }, wants: []string{"stdout line 1", "a line is longer than 4096 bytes"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			var edits []func(*exec.Spec)
			if tc.edit != nil {
				edits = append(edits, tc.edit)
			}
			began := time.Now()
			rec, err := syncRec(t, child(t, tc.mode, edits...), request())
			_ = failure[*exec.ProtocolError](t, err, tc.wants...)
			// The child waits for stdin to close: it was stopped at once,
			// not after the grace period.
			if took := time.Since(began); took > 1500*time.Millisecond {
				t.Errorf("took %s to fail", took)
			}
			if _, ok := rec.Final(); ok {
				t.Fatal("completed")
			}
		})
	}
}

func TestExitErrors(t *testing.T) {
	t.Run("non-zero before done", func(t *testing.T) {
		_, err := syncRec(t, child(t, "die"), request())
		e := failure[*exec.ExitError](t, err, "exited with status 3 before done or fail", "stderr line 10\n", "stderr line 29")
		// Only the last 20 lines are kept.
		if len(e.Stderr) != 20 || e.Stderr[0] != "stderr line 10" || strings.Contains(err.Error(), "stderr line 9\n") {
			t.Fatalf("stderr %q", e.Stderr)
		}
	})
	t.Run("zero without done", func(t *testing.T) {
		rec, err := syncRec(t, child(t, "nodone"), request())
		_ = failure[*exec.ExitError](t, err, "exited with status 0 before done or fail")
		if len(rec.IDs(connectortest.Emit)) != 1 {
			t.Fatal("the document before the exit was not kept")
		}
	})
	t.Run("non-zero after done", func(t *testing.T) {
		rec, err := syncRec(t, child(t, "donefail"), request())
		_ = failure[*exec.ExitError](t, err, "exited with status 1 after done", "cleanup failed")
		if _, ok := rec.Final(); ok {
			t.Fatal("completed")
		}
	})
	t.Run("lingers after done", func(t *testing.T) {
		began := time.Now()
		_, err := syncRec(t, child(t, "linger", func(s *exec.Spec) { s.Grace = exec.Duration(300 * time.Millisecond) }), request())
		_ = failure[*exec.ExitError](t, err, "killed by signal terminated after done")
		if took := time.Since(began); took < 300*time.Millisecond {
			t.Fatalf("stopped after %s, before the grace period", took)
		}
	})
	t.Run("closes stdout and stays", func(t *testing.T) {
		_, err := syncRec(t, child(t, "closestdout", func(s *exec.Spec) { s.Grace = exec.Duration(300 * time.Millisecond) }), request())
		_ = failure[*exec.ExitError](t, err, "killed by signal terminated before done or fail")
	})
	t.Run("fail", func(t *testing.T) {
		_, err := syncRec(t, child(t, "fail"), request())
		_ = failure[*exec.FailedError](t, err)
		if err.Error() != "source unreachable" {
			t.Fatalf("error %q", err)
		}
	})
	t.Run("missing program", func(t *testing.T) {
		if _, err := exec.New(exec.Spec{Name: "x", Version: "1", Command: "/nonexistent/program"}); err == nil {
			t.Fatal("New accepted a missing program")
		}
	})
}

// alive reports whether pid is a process that has not exited (a zombie
// waiting for a reaper that is not this process counts as exited).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return runtime.GOOS != "linux"
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] != "Z"
}

func pidOf(t *testing.T, rec *connectortest.Recorder) int {
	t.Helper()
	p, ok := rec.Docs()["pid"].Attributes["pid"].(float64)
	if !ok {
		t.Fatal("no pid document")
	}
	return int(p)
}

func TestCancel(t *testing.T) {
	rec := connectortest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec.After = func(e connectortest.Event, i int) error {
		if i == 2 {
			cancel()
		}
		return nil
	}
	began := time.Now()
	err := child(t, "slow", func(s *exec.Spec) { s.Grace = exec.Duration(10 * time.Second) }).Sync(ctx, request(), rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	// SIGTERM ends a Go program at once: far within the grace period.
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	if n := len(rec.Events()); n != 3 {
		t.Fatalf("%d events after the cancel", n)
	}
}

func TestKillAfterGrace(t *testing.T) {
	rec := connectortest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec.After = func(connectortest.Event, int) error { cancel(); return nil }
	const grace = 300 * time.Millisecond
	began := time.Now()
	err := child(t, "ignoreterm", func(s *exec.Spec) { s.Grace = exec.Duration(grace) }).Sync(ctx, request(), rec)
	took := time.Since(began)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if took < grace || took > grace+5*time.Second {
		t.Fatalf("took %s with a grace of %s", took, grace)
	}
	if pid := pidOf(t, rec); alive(pid) {
		t.Fatalf("child %d still runs", pid)
	}
}

func TestStopRequested(t *testing.T) {
	rec := connectortest.New(t)
	rec.After = connectortest.StopAtCheckpoint(2)
	err := child(t, "checkpoints").Sync(context.Background(), request(), rec)
	if !errors.Is(err, connector.ErrStopRequested) {
		t.Fatalf("err %v, want ErrStopRequested", err)
	}
	if cps := rec.Checkpoints(); len(cps) != 2 || string(cps[1]) != `{"pos":2}` {
		t.Fatalf("checkpoints %s", cps)
	}
}

// A child whose own child keeps its stdout open is stopped, with that
// process, once the grace period after its exit has passed.
func TestGrandchildHoldsStdout(t *testing.T) {
	const grace = 300 * time.Millisecond
	rec, err := syncRec(t, child(t, "grandchild", func(s *exec.Spec) { s.Grace = exec.Duration(grace) }), request())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Final(); !ok {
		t.Fatal("not completed")
	}
	pid := pidOf(t, rec)
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Every way a sync ends leaves no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, mode := range []string{"all", "garbage", "die", "nodone", "fail", "long", "afterdone"} {
		_, _ = syncRec(t, child(t, mode, func(s *exec.Spec) { s.MaxLineBytes = 4096 }), request())
	}
	ctx, cancel := context.WithCancel(context.Background())
	rec := connectortest.New(t)
	rec.After = func(connectortest.Event, int) error { cancel(); return nil }
	_ = child(t, "slow").Sync(ctx, request(), rec)
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "bin", "conn.sh")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil { //nolint:gosec // an executable test script
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(dir, "connectors.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cs, err := exec.Load(write(`{"connectors":[{"name":"a","version":"1.2.3","description":"A","sync_modes":["full","incremental"],
		"config_schema":{"type":"object"},"command":"./bin/conn.sh","args":["x"],"env":{"K":"V"},"grace":"1.5s","max_line_bytes":8192}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m, s := cs[0].Manifest(), cs[0].Spec()
	if m.Name != "a" || m.Version != "1.2.3" || m.Description != "A" || !m.Supports(connector.Incremental) || string(m.ConfigSchema) != `{"type":"object"}` {
		t.Fatalf("manifest %+v", m)
	}
	if s.Command != script || s.Dir != dir || time.Duration(s.Grace) != 1500*time.Millisecond || s.MaxLineBytes != 8192 || s.Args[0] != "x" {
		t.Fatalf("spec %+v", s)
	}

	// Defaults; a command found in PATH.
	cs, err = exec.Load(write(`{"connectors":[{"name":"b","version":"1","command":"sh"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := cs[0].Spec(); time.Duration(s.Grace) != exec.DefaultGrace || s.MaxLineBytes != exec.DefaultMaxLineBytes {
		t.Fatalf("defaults %+v", s)
	}

	for body, want := range map[string]string{
		`{"connectors":[]}`: "lists none",
		`{"connectors":[{"name":"a","version":"1","command":"sh","gracee":"1s"}]}`:                             "unknown field",
		`{"connectors":[{"name":"a b","version":"1","command":"sh"}]}`:                                         "manifest name",
		`{"connectors":[{"name":"a","command":"sh"}]}`:                                                         "version is required",
		`{"connectors":[{"name":"a","version":"1"}]}`:                                                          "command is required",
		`{"connectors":[{"name":"a","version":"1","command":"./missing.sh"}]}`:                                 "missing.sh",
		`{"connectors":[{"name":"a","version":"1","command":"sh","grace":"forever"}]}`:                         "invalid duration",
		`{"connectors":[{"name":"a","version":"1","command":"sh","grace":"-1s"}]}`:                             "grace",
		`{"connectors":[{"name":"a","version":"1","command":"sh","max_line_bytes":10}]}`:                       "max_line_bytes",
		`{"connectors":[{"name":"a","version":"1","command":"sh","sync_modes":["sometimes"]}]}`:                "unknown sync mode",
		`{"connectors":[{"name":"a","version":"1","command":"sh","config_schema":{"type":"integr"}}]}`:         "config schema",
		`{"connectors":[{"name":"a","version":"1","command":"sh","env":{"A=B":"c"}}]}`:                         "env name",
		`{"connectors":[{"name":"a","version":"1","command":"sh","dir":"nowhere"}]}`:                           "not a directory",
		`{"connectors":[{"name":"a","version":"1","command":"sh"},{"name":"a","version":"2","command":"sh"}]}`: "declared twice",
		`{"connectors":[{"name":"a","version":"1","command":"sh"}]} {}`:                                        "after the JSON object",
	} {
		if _, err := exec.Load(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s): error %v, want one with %q", body, err, want)
		}
	}
	if _, err := exec.Load(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}
