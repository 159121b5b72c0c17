package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

// Binaries built once by TestMain, with the race detector.
var bins map[string]string

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
	if bins, err = harness.Build(dir, true, "./cmd/manager", "./cmd/worker", "./test/indexer"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// system is a manager (with an embedded NATS server) and its API.
type system struct {
	harness.API
	manager *harness.Proc
	nats    string
}

func start(t *testing.T, name string, args ...string) *harness.Proc {
	return harness.Start(t, name, bins[name], append(args, "--log-format", "json")...)
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
	p := start(t, "manager", append(base, args...)...)
	ready := p.WaitLog("Tributary manager ready", time.Minute)
	nats := p.WaitLog("embedded NATS started", time.Second)
	return &system{API: harness.API{T: t, Base: ready["http"].(string)}, manager: p, nats: nats["clients"].(string)}
}

// startWorker runs a separate worker process joined to the manager's NATS.
func (s *system) startWorker(args ...string) *harness.Proc {
	s.T.Helper()
	p := start(s.T.(*testing.T), "worker", append([]string{"--nats-url", s.nats, "--heartbeat-timeout", "3s"}, args...)...)
	p.WaitLog("Tributary worker ready", time.Minute)
	return p
}
