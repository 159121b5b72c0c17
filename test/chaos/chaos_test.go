// Package chaos proves that no sync is lost: real nats-server processes, a
// real manager and real workers (the built binaries), workers killed with
// SIGKILL at random until every run ends, the manager killed and restarted,
// a NATS node killed. Afterwards the events stream is read back and checked:
// every run completed, every document reached JetStream, no checkpoint ran
// ahead of its documents, and each resumed attempt re-emitted only documents
// after its last checkpoint.
//
// The short profile runs in CI. The full one (20 sources of 2,000 documents):
//
//	go test ./test/chaos -run Chaos -v -chaos.full
//
// or TRIBUTARY_CHAOS=full.
package chaos

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/test/harness"
)

var fullProfile = flag.Bool("chaos.full", false, "run the full chaos profile (20 sources of 2,000 documents)")

// Binaries built once by TestMain, without the race detector so that the
// timing is a production build's.
var bins map[string]string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tributary-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bins, err = harness.Build(dir, false, "./cmd/manager", "./cmd/worker", "github.com/nats-io/nats-server/v2"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	return m.Run()
}

// profile sizes a chaos run.
type profile struct {
	Sources, Docs, CheckpointEvery int
	Pace                           string
	Workers, Concurrency           int
	KillMin, KillMax               time.Duration
	Timeout                        time.Duration
}

func currentProfile() profile {
	if *fullProfile || os.Getenv("TRIBUTARY_CHAOS") == "full" {
		return profile{Sources: 20, Docs: 2000, CheckpointEvery: 500, Pace: "2ms",
			Workers: 3, Concurrency: 4, KillMin: 2 * time.Second, KillMax: 4 * time.Second, Timeout: 10 * time.Minute}
	}
	return profile{Sources: 10, Docs: 1000, CheckpointEvery: 200, Pace: "4ms",
		Workers: 3, Concurrency: 3, KillMin: 2 * time.Second, KillMax: 3 * time.Second, Timeout: 4 * time.Minute}
}

// heartbeat is the --heartbeat-timeout of every process: the bound on how
// long a dead worker keeps a sync.
const heartbeat = 2 * time.Second

// TestChaosWorkerKills kills a random worker every few seconds until every
// run has ended.
func TestChaosWorkerKills(t *testing.T) {
	runChaos(t, scenario{nodes: 1})
}

// TestChaosManagerRestart does the same and also kills the manager with
// SIGKILL once, mid-sync, and starts it again.
func TestChaosManagerRestart(t *testing.T) {
	runChaos(t, scenario{nodes: 1, killManager: true})
}

// TestChaosNATSNodeKill runs on a 3-node NATS cluster with every stream and
// bucket at replication 3, kills workers as above, and kills the node leading
// the events stream mid-sync.
func TestChaosNATSNodeKill(t *testing.T) {
	runChaos(t, scenario{nodes: 3, killNATSNode: true})
}

type scenario struct {
	nodes        int
	killManager  bool
	killNATSNode bool
}

// cluster is everything one chaos run started.
type cluster struct {
	t        *testing.T
	prof     profile
	nats     []*natsNode
	natsURL  string
	replicas int
	dataDir  string // the manager's, across restarts: its credentials key
	api      *harness.API
	manager  *harness.Proc

	mu      sync.Mutex
	workers []*harness.Proc
	ids     []string
	next    int
	kills   map[string]time.Time // worker id → when it was killed
}

func (c *cluster) startManager() {
	c.t.Helper()
	p := harness.Start(c.t, "manager", bins["manager"],
		"--nats-url", c.natsURL, "--worker=false", "--http-addr", "127.0.0.1:0",
		"--data-dir", c.dataDir, "--replicas", fmt.Sprint(c.replicas), "--heartbeat-timeout", heartbeat.String(),
		"--log-format", "json")
	c.manager = p
	ready := p.WaitLog("Tributary manager ready", time.Minute)
	if c.api == nil {
		c.api = &harness.API{T: c.t}
	}
	c.api.Base = ready["http"].(string)
}

func (c *cluster) startWorker(extra ...string) (*harness.Proc, string) {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	id := fmt.Sprintf("chaos-w%02d", c.next)
	c.mu.Unlock()
	// Later flags win: extra may override these.
	args := append([]string{
		"--nats-url", c.natsURL, "--id", id, "--concurrency", fmt.Sprint(c.prof.Concurrency),
		"--heartbeat-timeout", heartbeat.String(), "--shutdown-grace", "5s",
		"--max-attempts", "100", "--retry-backoff", "250ms", "--log-format", "json",
	}, extra...)
	p := harness.Start(c.t, "worker "+id, bins["worker"], args...)
	c.mu.Lock()
	c.workers = append(c.workers, p)
	c.ids = append(c.ids, id)
	c.mu.Unlock()
	return p, id
}

// killWorker kills a random live worker with SIGKILL and starts another.
func (c *cluster) killWorker(rng *rand.Rand) string {
	c.mu.Lock()
	i := rng.IntN(len(c.workers))
	p, id := c.workers[i], c.ids[i]
	c.workers = slices.Delete(c.workers, i, i+1)
	c.ids = slices.Delete(c.ids, i, i+1)
	c.kills[id] = time.Now()
	c.mu.Unlock()
	p.Kill()
	c.startWorker()
	return id
}

// newCluster starts NATS (clustered at replication 3 when nodes is 3) and a
// manager without a worker.
func newCluster(t *testing.T, prof profile, nodes int) *cluster {
	c := &cluster{t: t, prof: prof, kills: map[string]time.Time{}, replicas: 1, dataDir: t.TempDir()}
	c.nats = startNATS(t, nodes)
	c.natsURL = urls(c.nats)
	if nodes == 3 {
		c.replicas = 3
	}
	c.startManager()
	return c
}

// waitConnector waits until a worker has registered the synthetic connector.
func (c *cluster) waitConnector() {
	c.t.Helper()
	harness.Eventually(c.t, time.Minute, 50*time.Millisecond, "synthetic connector registered", func() bool {
		var page struct {
			Items []struct {
				Name string `json:"name"`
			} `json:"items"`
		}
		if c.api.Do("GET", "/v1/connectors", nil, &page) != 200 {
			return false
		}
		for _, it := range page.Items {
			if it.Name == "synthetic" {
				return true
			}
		}
		return false
	})
}

func runChaos(t *testing.T, sc scenario) {
	if testing.Short() {
		t.Skip("chaos suite skipped in -short mode")
	}
	prof := currentProfile()
	c := newCluster(t, prof, sc.nodes)
	for range prof.Workers {
		c.startWorker()
	}
	c.waitConnector()

	runs := map[string]string{} // run id → source id
	for i := range prof.Sources {
		src := c.api.CreateSource(fmt.Sprintf("chaos-%02d", i), "synthetic", map[string]any{
			"count": prof.Docs, "size": 64, "pace": prof.Pace, "seed": i + 1,
			"checkpoint_every": prof.CheckpointEvery,
		})
		r := c.api.Sync(src.ID, map[string]any{"mode": "full"})
		runs[r.ID] = src.ID
	}

	began := time.Now()
	rng := rand.New(rand.NewPCG(uint64(began.UnixNano()), 7))
	nextKill := began.Add(prof.KillMin + time.Duration(rng.Int64N(int64(prof.KillMax-prof.KillMin))))
	managerKilled, natsKilled := !sc.killManager, !sc.killNATSNode
	var killed []string
	var managerDown time.Duration
	for {
		if time.Since(began) > prof.Timeout {
			t.Fatalf("runs did not all end within %s", prof.Timeout)
		}
		if done, err := allEnded(c.api, runs); err == nil && done {
			break
		}
		if c.manager.Exited() {
			t.Fatal("the manager exited")
		}
		now := time.Now()
		if now.After(nextKill) {
			killed = append(killed, c.killWorker(rng))
			nextKill = now.Add(prof.KillMin + time.Duration(rng.Int64N(int64(prof.KillMax-prof.KillMin))))
			switch {
			case !natsKilled:
				_, js := connect(t, c.natsURL)
				leader := streamLeader(t, js, "TRIBUTARY_EVENTS")
				for _, nd := range c.nats {
					if nd.name == leader {
						t.Logf("killing NATS node %s (leader of TRIBUTARY_EVENTS)", nd.name)
						nd.proc.Kill()
					}
				}
				natsKilled = true
			case !managerKilled:
				t.Log("killing the manager")
				down := time.Now()
				c.manager.Kill()
				c.startManager()
				managerDown = time.Since(down)
				managerKilled = true
			}
		}
		time.Sleep(100 * time.Millisecond) // the chaos schedule's tick, not a wait for a condition
	}
	elapsed := time.Since(began)
	t.Logf("%d sources × %d documents: all runs ended in %s; %d workers killed", prof.Sources, prof.Docs, elapsed.Round(time.Millisecond), len(killed))
	if sc.killManager {
		t.Logf("manager down for %s (kill to ready)", managerDown.Round(time.Millisecond))
	}
	if !managerKilled || !natsKilled {
		t.Fatalf("the runs ended before the scheduled kill (manager killed %v, NATS node killed %v): make the profile longer", managerKilled, natsKilled)
	}

	for id := range runs {
		if r := c.api.Run(id); r.Status != "completed" {
			t.Errorf("run %s of source %s ended %s: %s", id, r.SourceID, r.Status, r.Error)
		}
	}
	_, js := connect(t, c.natsURL)
	log := readEvents(t, js)
	rep := check(t, log, runs, prof.Docs, c.kills)
	rep.log(t)
	changes := readStream(t, js, events.StreamChanges)
	checkChanges(t, changes, runs, prof.Docs)
	t.Logf("change feed: %d changes, each document of each source created exactly once", len(changes))
	if len(killed) > 0 && rep.resumes == 0 {
		t.Errorf("%d workers killed but no run resumed", len(killed))
	}
}

// allEnded reports whether every run has ended. An error (the manager is
// restarting) is not an answer.
func allEnded(api *harness.API, runs map[string]string) (bool, error) {
	var page struct {
		Items []harness.Run `json:"items"`
	}
	code, err := api.TryDo("GET", "/v1/runs?size=1000", nil, &page)
	if err != nil || code != 200 {
		return false, fmt.Errorf("list runs: %d %w", code, err)
	}
	ended := 0
	for _, r := range page.Items {
		if _, ok := runs[r.ID]; ok && r.Terminal() {
			ended++
		}
	}
	return ended == len(runs), nil
}

// median of ds (sorted in place).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}
