package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries built once by TestMain.
var (
	managerBin string
	workerBin  string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tributary-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	managerBin = filepath.Join(dir, "manager")
	workerBin = filepath.Join(dir, "worker")
	for bin, pkg := range map[string]string{managerBin: "./cmd/manager", workerBin: "./cmd/worker"} {
		cmd := exec.Command("go", "build", "-race", "-o", bin, pkg)
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// proc is a running binary whose JSON log lines the test can wait on.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	cond  *sync.Cond
	done  chan struct{}
}

func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--log-format", "json")...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			_ = json.Unmarshal(sc.Bytes(), &line)
			p.mu.Lock()
			p.raw.Write(sc.Bytes())
			p.raw.WriteByte('\n')
			if line != nil {
				p.lines = append(p.lines, line)
			}
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			p.mu.Lock()
			t.Logf("--- %s log ---\n%s", name, p.raw.String())
			p.mu.Unlock()
		}
	})
	return p
}

// stop signals the process and waits for it to exit (killing it after 20 s).
func (p *proc) stop(sig syscall.Signal) {
	if p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitLog returns the first log line whose msg is msg, waiting up to timeout.
func (p *proc) waitLog(msg string, timeout time.Duration) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for _, l := range p.lines {
			if l["msg"] == msg {
				return l
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s exited before logging %q:\n%s", p.name, msg, p.raw.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not log %q within %s:\n%s", p.name, msg, timeout, p.raw.String())
		}
		p.cond.Wait()
	}
}

// system is a manager (with an embedded NATS server) and its API.
type system struct {
	t       *testing.T
	manager *proc
	api     string
	nats    string
}

// startManager runs the manager on random ports with its store in a temp dir.
func startManager(t *testing.T, args ...string) *system {
	t.Helper()
	base := []string{
		"--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0",
		"--nats-listen", "127.0.0.1:-1",
		"--heartbeat-timeout", "3s",
	}
	p := start(t, "manager", managerBin, append(base, args...)...)
	ready := p.waitLog("Tributary manager ready", time.Minute)
	nats := p.waitLog("embedded NATS started", time.Second)
	return &system{t: t, manager: p, api: ready["http"].(string), nats: nats["clients"].(string)}
}

// startWorker runs a separate worker process joined to the manager's NATS.
func (s *system) startWorker(args ...string) *proc {
	s.t.Helper()
	p := start(s.t, "worker", workerBin, append([]string{"--nats-url", s.nats, "--heartbeat-timeout", "3s"}, args...)...)
	p.waitLog("Tributary worker ready", time.Minute)
	return p
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (s *system) do(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, s.api+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); len(data) > 0 && !strings.HasPrefix(ct, "application/json") {
		s.t.Fatalf("%s %s: content type %q, body %s", method, path, ct, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// must sends a request and fails the test unless it answers want.
func (s *system) must(want int, method, path string, body any, out any) {
	s.t.Helper()
	var raw json.RawMessage
	got := s.do(method, path, body, &raw)
	if got != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatal(err)
		}
	}
}

type source struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Connector string          `json:"connector"`
	Config    json.RawMessage `json:"config"`
}

type run struct {
	ID         string `json:"id"`
	SourceID   string `json:"source_id"`
	Mode       string `json:"mode"`
	Status     string `json:"status"`
	Attempt    int    `json:"attempt"`
	WorkerID   string `json:"worker_id"`
	Scanned    int    `json:"documents_scanned"`
	Emitted    int    `json:"documents_emitted"`
	Updated    int    `json:"documents_updated"`
	Deleted    int    `json:"documents_deleted"`
	Errors     int    `json:"documents_errors"`
	Error      string `json:"error"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	Cancel     bool   `json:"cancel_requested"`
}

func (s *system) createSource(name, connector string, config any) source {
	s.t.Helper()
	var src source
	s.must(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": name, "connector": connector, "config": config}, &src)
	return src
}

func (s *system) sync(sourceID string, body any) run {
	s.t.Helper()
	var r run
	s.must(http.StatusAccepted, "POST", "/v1/sources/"+sourceID+"/sync", body, &r)
	return r
}

func (s *system) run(id string) run {
	s.t.Helper()
	var r run
	s.must(http.StatusOK, "GET", "/v1/runs/"+id, nil, &r)
	return r
}

// waitRun polls the run until cond holds, failing after timeout.
func (s *system) waitRun(id string, timeout time.Duration, what string, cond func(run) bool) run {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		r := s.run(id)
		if cond(r) {
			return r
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("run %s: not %s within %s: %+v", id, what, timeout, r)
		case <-tick.C:
		}
	}
}

func (s *system) waitStatus(id, status string, timeout time.Duration) run {
	s.t.Helper()
	return s.waitRun(id, timeout, status, func(r run) bool {
		if terminal(r.Status) && r.Status != status {
			s.t.Fatalf("run %s ended %s, want %s: %+v", id, r.Status, status, r)
		}
		return r.Status == status
	})
}

func terminal(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled"
}
