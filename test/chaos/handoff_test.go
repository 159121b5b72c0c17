package chaos

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/test/harness"
)

// TestGracefulHandOff stops a worker with SIGTERM mid-sync: it publishes a
// checkpoint, hands the request back, and another worker resumes from that
// checkpoint within two seconds, re-emitting nothing.
func TestGracefulHandOff(t *testing.T) {
	c := newCluster(t, currentProfile(), 1)
	wa, idA := c.startWorker("--concurrency", "1", "--shutdown-grace", "5s")
	wa.WaitLog("Tributary worker ready", time.Minute)
	c.waitConnector()

	const docs = 3000
	src := c.api.CreateSource("handoff", "synthetic", map[string]any{"count": docs, "pace": "2ms", "checkpoint_every": 100})
	run := c.api.Sync(src.ID, map[string]any{"mode": "full"})
	c.api.WaitRun(run.ID, time.Minute, "running on the first worker", func(r harness.Run) bool {
		return r.Status == "running" && r.WorkerID == idA && r.Scanned >= 300
	})
	wb, idB := c.startWorker("--concurrency", "1")
	wb.WaitLog("Tributary worker ready", time.Minute)

	nc, _ := connect(t, c.natsURL)
	defer nc.Close()
	type started struct {
		at  time.Time
		env *events.Envelope
	}
	got := make(chan started, 4)
	sub, err := nc.Subscribe(events.EventSubject(src.ID, run.ID, events.TypeRunStarted), func(m *nats.Msg) {
		env, err := events.Decode(m.Data)
		if err == nil {
			got <- started{at: time.Now(), env: env}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	sigterm := time.Now()
	exited := make(chan time.Duration, 1)
	go func() { exited <- wa.Stop(syscall.SIGTERM, 20*time.Second) }()
	var next started
	select {
	case next = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt started within 10 s of SIGTERM")
	}
	took := next.at.Sub(sigterm)
	p, _ := next.env.Payload().(*events.RunStarted)
	if p == nil || p.WorkerID != idB || !p.Resumed || next.env.Attempt != 2 {
		t.Fatalf("next attempt: %+v %+v, want attempt 2 resumed on %s", next.env, p, idB)
	}
	if took > 2*time.Second {
		t.Errorf("SIGTERM → resume on another worker took %s, want ≤ 2 s", took)
	}
	if d := <-exited; d > 5*time.Second+time.Second {
		t.Errorf("worker took %s to exit, more than its 5 s grace", d)
	}
	t.Logf("SIGTERM → resumed on another worker: %s", took.Round(time.Millisecond))

	c.api.WaitStatus(run.ID, "completed", 2*time.Minute)
	_, js := connect(t, c.natsURL)
	rep := check(t, readEvents(t, js), map[string]string{run.ID: src.ID}, docs, nil)
	if rep.resumes != 1 || rep.maxReEmitted != 0 {
		t.Errorf("hand-off: %d resumes, %d documents re-emitted; want 1 resume re-emitting nothing", rep.resumes, rep.maxReEmitted)
	}
}

// TestGivesUpWithoutProgress kills the worker of a run before it ever saves
// a checkpoint, again and again: after --max-attempts such attempts the run
// fails with a clear reason instead of staying running.
func TestGivesUpWithoutProgress(t *testing.T) {
	c := newCluster(t, currentProfile(), 1)
	const maxAttempts = 2
	start := func() (*harness.Proc, string) {
		p, id := c.startWorker("--concurrency", "1", "--max-attempts", "2")
		p.WaitLog("Tributary worker ready", time.Minute)
		return p, id
	}
	w, id := start()
	c.waitConnector()
	src := c.api.CreateSource("doomed", "synthetic", map[string]any{"count": 100000, "pace": "20ms", "checkpoint_every": 100000})
	run := c.api.Sync(src.ID, map[string]any{"mode": "full"})
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		c.api.WaitRun(run.ID, time.Minute, "running", func(r harness.Run) bool {
			return r.Status == "running" && r.Attempt == attempt && r.WorkerID == id
		})
		w.Kill()
		w, id = start()
	}
	r := c.api.WaitStatus(run.ID, "failed", time.Minute)
	if !strings.Contains(r.Error, "gave up after 2 attempts without progress") {
		t.Fatalf("run failed with %q", r.Error)
	}
	t.Logf("run failed: %s", r.Error)
}
