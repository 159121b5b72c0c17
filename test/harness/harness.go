// Package harness runs the real Tributary binaries (and real nats-server
// processes) for the black-box tests under test/: it builds them, starts and
// kills them, waits on their log lines, and drives the HTTP API as an
// operator would. Every wait has a deadline; nothing sleeps and hopes.
package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles packages (import path or ./relative to the module root)
// into dir, returning the binary of each package by its last path element.
// race builds them with the race detector.
func Build(dir string, race bool, pkgs ...string) (map[string]string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, pkg := range pkgs {
		name := filepath.Base(strings.TrimSuffix(pkg, "/v2"))
		if strings.Contains(pkg, "nats-server") {
			name = "nats-server"
		}
		bin := filepath.Join(dir, name)
		args := []string{"build", "-o", bin}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %w\n%s", pkg, err, b)
		}
		out[name] = bin
	}
	return out, nil
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("harness: cannot locate the module root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

// Proc is a running process whose log lines a test can wait on. JSON lines
// are parsed; every line is kept raw for the failure log.
type Proc struct {
	t    testing.TB
	Name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	cond  *sync.Cond
	lines []map[string]any
	raw   []string
	done  chan struct{}
}

// Start runs bin with args; the process is stopped (SIGTERM, then SIGKILL
// after 20 s) when the test ends, and its log printed if the test failed.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr // nats-server logs to stderr; anything else joins it
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{t: t, Name: name, cmd: cmd, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			_ = json.Unmarshal(sc.Bytes(), &line)
			p.mu.Lock()
			p.raw = append(p.raw, sc.Text())
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
		p.Stop(syscall.SIGTERM, 20*time.Second)
		if t.Failed() {
			t.Logf("--- %s log ---\n%s", name, p.Log())
		}
	})
	return p
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Log returns everything the process logged so far.
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.raw, "\n")
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends sig and waits up to timeout for the process to exit, then kills
// it. It returns how long the process took to exit.
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) time.Duration {
	began := time.Now()
	if p.Exited() {
		return 0
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return time.Since(began)
}

// WaitLog returns the first JSON log line whose "msg" is msg, waiting up to
// timeout; it fails the test if the process exits first or time runs out.
func (p *Proc) WaitLog(msg string, timeout time.Duration) map[string]any {
	p.t.Helper()
	var found map[string]any
	p.wait(timeout, fmt.Sprintf("log %q", msg), func() bool {
		for _, l := range p.lines {
			if l["msg"] == msg {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// WaitLine waits for a raw log line containing substr.
func (p *Proc) WaitLine(substr string, timeout time.Duration) {
	p.t.Helper()
	p.wait(timeout, fmt.Sprintf("log a line with %q", substr), func() bool {
		for _, l := range p.raw {
			if strings.Contains(l, substr) {
				return true
			}
		}
		return false
	})
}

// wait blocks until found (called with p.mu held) is true.
func (p *Proc) wait(timeout time.Duration, what string, found func() bool) {
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
	for !found() {
		if p.Exited() {
			p.t.Fatalf("%s exited before it would %s:\n%s", p.Name, what, strings.Join(p.raw, "\n"))
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not %s within %s:\n%s", p.Name, what, timeout, strings.Join(p.raw, "\n"))
		}
		p.cond.Wait()
	}
}

// LogCount counts the JSON log lines whose "msg" is msg.
func (p *Proc) LogCount(msg string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// Eventually polls cond every interval until it is true, failing the test
// with what after timeout.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, timeout)
		}
		time.Sleep(interval)
	}
}

// Raw is a JSON body sent verbatim.
type Raw string

func encodeBody(body any) (io.Reader, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case Raw:
		return strings.NewReader(string(b)), nil
	case string:
		return strings.NewReader(b), nil
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(buf), nil
	}
}
