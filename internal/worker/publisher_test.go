package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/events"
)

// rejectingDocs makes the events stream store at most limit documents per
// subject and reject any further ones, while other event types (the
// checkpoint) are still accepted: a stand-in for documents whose publish
// fails. limit 0 lifts the restriction.
func rejectingDocs(t *testing.T, js jetstream.JetStream, limit int64) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if limit > 0 {
		cfg.MaxMsgsPerSubject, cfg.Discard, cfg.DiscardNewPerSubject = limit, jetstream.DiscardNew, true
	} else {
		cfg.MaxMsgsPerSubject, cfg.Discard, cfg.DiscardNewPerSubject = -1, jetstream.DiscardOld, false
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update events stream: %v", err)
	}
}

// newTestPublisher publishes attempt 1 of run "run" of source "src".
func newTestPublisher(t *testing.T) (*testutil.NATS, *publisher) {
	t.Helper()
	n := testutil.StartNATS(t)
	if err := bus.EnsureStreams(context.Background(), n.JS, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	_, js := n.Connect(t)
	return n, newPublisher(js, "src", "run", 1, 1024)
}

// emitDocs publishes count documents asynchronously and waits until
// JetStream answered every one; it returns how many were rejected.
func emitDocs(t *testing.T, p *publisher, count int) int {
	t.Helper()
	for i := 0; i < count; i++ {
		if err := p.async(context.Background(), &events.DocumentUpserted{Document: events.Document{ExternalID: fmt.Sprintf("doc-%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	var fs []jetstream.PubAckFuture
	for _, e := range p.pending {
		fs = append(fs, e.f)
	}
	p.mu.Unlock()
	rejected := 0
	for _, f := range fs {
		// Peek without consuming: the publisher reads these channels itself.
		eventually(t, waitTimeout, func() bool { return len(f.Ok()) > 0 || len(f.Err()) > 0 }, "publish acks")
		if len(f.Err()) > 0 {
			rejected++
		}
	}
	return rejected
}

func TestCheckpointNotPublishedWhileDocumentsUnstored(t *testing.T) {
	t.Parallel()
	n, p := newTestPublisher(t)
	rejectingDocs(t, n.JS, 3)
	if rejected := emitDocs(t, p, 5); rejected != 2 {
		t.Fatalf("%d documents rejected, want 2", rejected)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if err := p.sync(ctx, &events.Checkpoint{Checkpoint: []byte(`{"pos":5}`)}); err == nil {
		t.Fatal("checkpoint published although two of its documents are not stored")
	}
	evs := streamEvents(t, n.JS, events.RunEventSubjects("src", "run"))
	if cps := ofType(evs, events.TypeCheckpoint); len(cps) != 0 {
		t.Fatalf("a checkpoint was stored before its documents: %+v", cps[0].env)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events stored, want the 3 accepted documents", len(evs))
	}
}

func TestCheckpointRepublishesRejectedDocumentsFirst(t *testing.T) {
	t.Parallel()
	n, p := newTestPublisher(t)
	rejectingDocs(t, n.JS, 3)
	if rejected := emitDocs(t, p, 5); rejected != 2 {
		t.Fatalf("%d documents rejected, want 2", rejected)
	}
	rejectingDocs(t, n.JS, 0) // the bus recovers
	if err := p.sync(context.Background(), &events.Checkpoint{Checkpoint: []byte(`{"pos":5}`)}); err != nil {
		t.Fatal(err)
	}
	evs := streamEvents(t, n.JS, events.RunEventSubjects("src", "run"))
	if len(evs) != 6 || evs[5].env.Type != events.TypeCheckpoint {
		t.Fatalf("stream holds %d events, last %s; want 5 documents then the checkpoint", len(evs), evs[len(evs)-1].env.Type)
	}
	seen := map[string]bool{}
	for _, e := range evs[:5] {
		seen[e.env.Payload().(*events.DocumentUpserted).Document.ExternalID] = true
	}
	if len(seen) != 5 {
		t.Fatalf("documents before the checkpoint: %v", seen)
	}
	if evs[5].env.Seq != 6 {
		t.Fatalf("checkpoint seq %d, want 6", evs[5].env.Seq)
	}
}

// Known bug: settleLocked reads each future's one-shot Ok/Err channel; when
// it returns early (an error, or ctx done) the futures it already read stay
// in p.pending, and the next sync/barrier blocks on them until its context
// ends. After one failed SaveCheckpoint (or a cancel during one), the
// attempt can publish nothing more, not even its terminal event.
func TestPublisherWedgedAfterFailedSettle(t *testing.T) {
	t.Parallel()
	n, p := newTestPublisher(t)
	rejectingDocs(t, n.JS, 3)
	if rejected := emitDocs(t, p, 5); rejected != 2 {
		t.Fatalf("%d documents rejected, want 2", rejected)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := p.sync(ctx, &events.Checkpoint{Checkpoint: []byte(`{"pos":5}`)}); err == nil {
		t.Fatal("first sync should fail")
	}
	rejectingDocs(t, n.JS, 0)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if err := p.sync(ctx2, &events.RunFailed{Error: "checkpoint failed"}); err != nil {
		t.Fatalf("publisher cannot publish after one failed sync: %v", err)
	}
}
