package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// Worker processes are this binary (or the test binary) started again with
// these variables set: the NATS URL, the worker id and its concurrency.
const (
	envChildURL         = "TRIBUTARY_BENCH_WORKER"
	envChildID          = "TRIBUTARY_BENCH_WORKER_ID"
	envChildConcurrency = "TRIBUTARY_BENCH_WORKER_CONCURRENCY"
)

func isChild() bool { return os.Getenv(envChildURL) != "" }

// runChild runs a worker hosting the synthetic connector until SIGTERM
// (which hands its syncs back, as the worker binary does) or SIGKILL.
func runChild() error {
	conc, _ := strconv.Atoi(os.Getenv(envChildConcurrency))
	nc, err := nats.Connect(os.Getenv(envChildURL), nats.Name("tributary-bench-worker"), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := worker.New(nc, worker.Config{ID: os.Getenv(envChildID), Connectors: []connector.Connector{synthetic.New()},
		Concurrency: conc, HeartbeatTimeout: heartbeatTimeout, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := w.Start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.Stop(sctx)
}

// child is a worker process.
type child struct {
	id  string
	cmd *exec.Cmd
}

// spawnWorker starts a worker process and waits until it pulls requests.
func (e *env) spawnWorker(ctx context.Context, id string, concurrency int) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe) //nolint:gosec // this very binary
	cmd.Env = append(os.Environ(), envChildURL+"="+e.ns.ClientURL(), envChildID+"="+id, fmt.Sprintf("%s=%d", envChildConcurrency, concurrency))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if e.p.Verbose {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{id: id, cmd: cmd}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- errors.New("worker process ended before it was ready")
	}()
	select {
	case err := <-ready:
		if err != nil {
			c.kill()
			return nil, err
		}
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.kill()
		return nil, fmt.Errorf("worker process %s not ready after 30s", id)
	}
	return c, nil
}

// kill kills the process with SIGKILL: nothing is handed back.
func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// stop stops it with SIGTERM, killing it if it takes longer than 10 s.
func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// rss is the process's resident memory in MiB.
func (c *child) rss() float64 { return rssOf(c.cmd.Process.Pid) }

func rssOf(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
