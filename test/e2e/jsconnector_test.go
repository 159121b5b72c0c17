package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/test/harness"
)

// changeFeed reads the source's changes from TRIBUTARY_CHANGES as an
// indexer would, waiting until there are want of them.
func changeFeed(t *testing.T, natsURL, sourceID string, want int) []*events.Envelope {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, events.StreamChanges, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SourceChangeSubjects(sourceID)},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []*events.Envelope
	for len(got) < want {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrTimeout) {
			if ctx.Err() != nil {
				t.Fatalf("change feed of %s: %d changes, want %d: %v", sourceID, len(got), want, got)
			}
			continue
		}
		if err != nil {
			t.Fatalf("change feed: %v", err)
		}
		env, err := events.Decode(msg.Data())
		if err != nil {
			t.Fatalf("change feed: %v", err)
		}
		got = append(got, env)
	}
	return got
}

// changeSummary lists changes as "type external_id reason", sorted (the
// manager judges different documents concurrently).
func changeSummary(envs []*events.Envelope) []string {
	var out []string
	for _, e := range envs {
		var c *events.Change
		switch p := e.Payload().(type) {
		case *events.ChangeCreated:
			c = (*events.Change)(p)
		case *events.ChangeUpdated:
			c = (*events.Change)(p)
		case *events.ChangeDeleted:
			c = (*events.Change)(p)
		}
		s := string(e.Type) + " " + c.ExternalID
		if c.Reason != "" {
			s += " " + c.Reason
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func notesConfig(n int, pace int) map[string]any {
	notes := make([]map[string]any, n)
	for i := range notes {
		notes[i] = map[string]any{"id": fmt.Sprintf("n%04d", i), "text": fmt.Sprintf("note %d", i)}
	}
	return map[string]any{"notes": notes, "pace_ms": pace, "checkpoint_every": 10}
}

// TestJavaScriptConnector runs examples/js-connector, a connector written in
// JavaScript with the official NATS client from docs/protocol.md alone,
// against the real manager with no Go worker: it registers, syncs full and
// incremental (documents in the API and on the change feed), passes a
// connection test, is cancelled mid-run, and hands a run back on SIGTERM to
// a second JS worker, which resumes it from its checkpoint.
func TestJavaScriptConnector(t *testing.T) {
	node, script := harness.InstallJSConnector(t)
	// The connector's own unit tests (node:test, a fake context, no NATS).
	unit := exec.Command(node, "--test")
	unit.Dir = filepath.Dir(script)
	if out, err := unit.CombinedOutput(); err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
	s := startManager(t, "--worker=false")
	startJS := func(name string) (*harness.Proc, string) {
		p := harness.Start(t, name, node, script, "--nats-url", s.nats, "--heartbeat-timeout", "3s", "--shutdown-grace", "5s")
		ready := p.WaitLog("Tributary JS worker ready", time.Minute)
		return p, ready["worker_id"].(string)
	}
	w1, w1ID := startJS("js-worker-1")

	// Registered: the manifest in tributary_connectors, the worker record.
	var conns struct {
		Items []struct {
			Name      string   `json:"name"`
			SyncModes []string `json:"sync_modes"`
			Workers   int      `json:"workers"`
		} `json:"items"`
	}
	s.Must(http.StatusOK, "GET", "/v1/connectors", nil, &conns)
	if len(conns.Items) != 1 || conns.Items[0].Name != "js-notes" || conns.Items[0].Workers != 1 ||
		!slices.Equal(conns.Items[0].SyncModes, []string{"full", "incremental"}) {
		t.Fatalf("connectors: %+v", conns)
	}
	// The manager validates configs against the JS connector's schema.
	s.Must(http.StatusUnprocessableEntity, "POST", "/v1/sources", map[string]any{"name": "bad", "connector": "js-notes", "config": map[string]any{"notes": "x"}}, nil)

	// A full sync.
	src := s.CreateSource("notes", "js-notes", map[string]any{"notes": []map[string]any{
		{"id": "a", "title": "Alpha", "text": "alpha text", "author": "ann"},
		{"id": "b", "title": "Beta", "text": "beta text"},
		{"id": "c", "text": "gamma text"},
	}})
	r := s.Sync(src.ID, nil)
	r = s.WaitStatus(r.ID, "completed", 30*time.Second)
	if r.Mode != "full" || r.WorkerID != w1ID || r.Attempt != 1 || r.Scanned != 3 || r.Emitted != 3 || r.New != 3 || r.Deleted+r.Errors != 0 {
		t.Fatalf("full run: %+v", r)
	}
	var page documentPage
	s.Must(http.StatusOK, "GET", "/v1/sources/"+src.ID+"/documents", nil, &page)
	titles := map[string]string{}
	for _, d := range page.Items {
		titles[d.ExternalID] = d.Title
		if d.ContentID == "" || d.Origin != "sync" {
			t.Fatalf("document: %+v", d)
		}
	}
	if page.Total != 3 || titles["a"] != "Alpha" || titles["b"] != "Beta" || titles["c"] != "c" {
		t.Fatalf("documents after the full sync: %+v", page)
	}
	for _, d := range page.Items {
		if d.ExternalID == "a" {
			if code, _, body := get(t, s.Base+"/v1/sources/"+src.ID+"/documents/"+d.ID+"/content"); code != http.StatusOK || body != "alpha text" {
				t.Fatalf("content of a: %d %q", code, body)
			}
		}
	}
	if got, want := changeSummary(changeFeed(t, s.nats, src.ID, 3)), []string{"change.created a", "change.created b", "change.created c"}; !slices.Equal(got, want) {
		t.Fatalf("change feed after the full sync: %v, want %v", got, want)
	}
	var cp struct {
		RunID string `json:"run_id"`
		Final bool   `json:"final"`
	}
	s.Must(http.StatusOK, "GET", "/v1/sources/"+src.ID+"/checkpoint", nil, &cp)
	if cp.RunID != r.ID || !cp.Final {
		t.Fatalf("checkpoint after the full sync: %+v", cp)
	}

	// A connection test, answered by the JS worker.
	var test struct {
		OK       bool   `json:"ok"`
		WorkerID string `json:"worker_id"`
	}
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/test-connection", nil, &test)
	if !test.OK || test.WorkerID != w1ID {
		t.Fatalf("connection test: %+v", test)
	}

	// Incremental: a changed, b gone, c unchanged, d new.
	s.Must(http.StatusOK, "PATCH", "/v1/sources/"+src.ID, map[string]any{"config": map[string]any{"notes": []map[string]any{
		{"id": "a", "title": "Alpha", "text": "alpha text, edited", "author": "ann"},
		{"id": "c", "text": "gamma text"},
		{"id": "d", "title": "Delta", "text": "delta text"},
	}}}, nil)
	r = s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", 30*time.Second)
	if r.Mode != "incremental" || r.Scanned != 3 || r.Updated != 1 || r.Emitted != 1 || r.Deleted != 1 || r.Changed != 1 || r.New != 1 {
		t.Fatalf("incremental run: %+v", r)
	}
	s.Must(http.StatusOK, "GET", "/v1/sources/"+src.ID+"/documents", nil, &page)
	var ids []string
	for _, d := range page.Items {
		ids = append(ids, d.ExternalID)
	}
	sort.Strings(ids)
	if !slices.Equal(ids, []string{"a", "c", "d"}) {
		t.Fatalf("documents after the incremental sync: %v", ids)
	}
	got := changeSummary(changeFeed(t, s.nats, src.ID, 6)[3:])
	if want := []string{"change.created d", "change.deleted b deleted_in_source", "change.updated a"}; !slices.Equal(got, want) {
		t.Fatalf("change feed after the incremental sync: %v, want %v", got, want)
	}

	// Cancel a slow sync (400 notes, 25 ms each) while it runs.
	slow := s.CreateSource("slow", "js-notes", notesConfig(400, 25))
	r = s.Sync(slow.ID, nil)
	s.WaitRun(r.ID, 30*time.Second, "running with progress", func(r harness.Run) bool { return r.Status == "running" && r.Scanned > 0 })
	began := time.Now()
	s.Must(http.StatusAccepted, "POST", "/v1/runs/"+r.ID+"/cancel", nil, nil)
	r = s.WaitStatus(r.ID, "cancelled", 10*time.Second)
	t.Logf("cancel of the JS connector's sync: %s from POST to cancelled", time.Since(began).Round(time.Millisecond))
	if !r.Cancel || r.Error != "cancelled by request" || r.Scanned == 0 || r.Scanned >= 400 {
		t.Fatalf("cancelled run: %+v", r)
	}

	// Hand-back: SIGTERM the worker mid-sync; a second JS worker resumes
	// the run from its last checkpoint, so every note is scanned once.
	handed := s.CreateSource("handed", "js-notes", notesConfig(200, 10))
	r = s.Sync(handed.ID, nil)
	s.WaitRun(r.ID, 30*time.Second, "past its first checkpoint", func(r harness.Run) bool { return r.Status == "running" && r.Scanned > 20 })
	w1.Stop(syscall.SIGTERM, 20*time.Second)
	w1.WaitLog("sync handed back for another worker", time.Second)
	w1.WaitLog("worker stopped", time.Second)
	_, w2ID := startJS("js-worker-2")
	r = s.WaitStatus(r.ID, "completed", time.Minute)
	if r.Attempt != 2 || r.WorkerID != w2ID || r.Scanned != 200 || r.Emitted < 200 || r.New != 200 {
		t.Fatalf("handed-back run: %+v", r)
	}
	var workers struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	s.Must(http.StatusOK, "GET", "/v1/workers", nil, &workers)
	if len(workers.Items) != 1 || workers.Items[0].ID != w2ID {
		t.Fatalf("workers: the stopped one deletes its record: %+v", workers)
	}
	if strings.Contains(w1.Log(), `"level":"error"`) {
		t.Fatalf("the first JS worker logged errors:\n%s", w1.Log())
	}
}
