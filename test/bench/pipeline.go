package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
)

// baselinePending bounds the raw publisher's unacknowledged messages, as
// the worker bounds a sync's (worker.Config.MaxPendingEvents, 1,024).
const baselinePending = 1024

// rawStream is the stream the baseline publishes to and reads from.
const rawStream = "BENCH_RAW"

// eventSize is the encoded size of the document.upserted event the
// synthetic connector's document i of the given content size makes: with
// the content (stored apart, in the object store) it is what one document
// puts through JetStream, so the baseline publishes messages of
// eventSize+size bytes.
func eventSize(size int) int {
	doc := events.Document{
		ExternalID: synthetic.ID(123456), Title: "Synthetic document 123456",
		Metadata:    events.Metadata{MimeType: "text/plain", Size: int64(size), Path: synthetic.ID(123456), Extra: map[string]any{"version": 0}},
		Permissions: events.Permissions{Public: true},
	}
	if size > 0 {
		doc.ContentID = "sha256-" + strings.Repeat("0", 64)
	}
	env, err := events.New("01KQSOURCE0000000000000000", "01KQRUN0000000000000000000", &events.DocumentUpserted{Document: doc})
	if err != nil {
		return 512
	}
	env.Attempt, env.Seq = 1, 123456
	b, err := env.Encode()
	if err != nil {
		return 512
	}
	return len(b)
}

// rawRates publishes n messages of msgSize bytes with PublishAsync (at most
// baselinePending unacknowledged) to a file stream, then reads them with a
// durable consumer acknowledging each, and returns both rates in
// messages/s.
func rawRates(ctx context.Context, e *env, msgSize, n int) (pub, recv float64, err error) {
	_ = e.js.DeleteStream(ctx, rawStream)
	st, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: rawStream, Subjects: []string{"bench.raw.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, 0, fmt.Errorf("baseline stream: %w", err)
	}
	defer func() { _ = e.js.DeleteStream(context.Background(), rawStream) }()
	body := make([]byte, msgSize)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	subject := fmt.Sprintf("bench.raw.%d", msgSize)
	began := time.Now()
	for range n {
		if _, err := e.js.PublishAsync(subject, body, jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, 0, fmt.Errorf("baseline publish: %w", err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	pub = float64(n) / time.Since(began).Seconds()
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	if int(info.State.Msgs) != n {
		return 0, 0, fmt.Errorf("baseline: %d of %d messages stored", info.State.Msgs, n)
	}

	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return 0, 0, err
	}
	done := make(chan struct{})
	var got int
	began = time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got++; got == n {
			close(done)
		}
	})
	if err != nil {
		return 0, 0, err
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	recv = float64(n) / time.Since(began).Seconds()
	return pub, recv, nil
}

// timedSynthetic is the synthetic connector, recording when each run
// emitted its first document.
type timedSynthetic struct {
	*synthetic.Connector
	mu    sync.Mutex
	first map[string]time.Time
}

func (t *timedSynthetic) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	return t.Connector.Sync(ctx, req, &timedSC{SyncContext: sc, t: t, run: req.RunID})
}

func (t *timedSynthetic) firstEmit(runID string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.first[runID]
	return at, ok
}

type timedSC struct {
	connector.SyncContext
	t    *timedSynthetic
	run  string
	once sync.Once
}

func (s *timedSC) Emit(ctx context.Context, doc connector.Document) error {
	s.once.Do(func() {
		s.t.mu.Lock()
		if _, ok := s.t.first[s.run]; !ok {
			s.t.first[s.run] = time.Now()
		}
		s.t.mu.Unlock()
	})
	return s.SyncContext.Emit(ctx, doc)
}

// pipeline measures documents/s from the synthetic connector's first emit
// to the last change an indexer receives from the change feed, through the
// whole pipeline (content stored, event published, manager applies to run
// and catalog, change published), at each document size, next to the raw
// publish rate for messages of the same size.
func pipeline(ctx context.Context, e *env, rep *Report) error {
	syn := &timedSynthetic{Connector: synthetic.New(), first: map[string]time.Time{}}
	stop, err := e.startWorker(ctx, 4, syn)
	if err != nil {
		return err
	}
	defer stop()
	type point struct {
		size, docs int
		target     float64
	}
	points := []point{{0, e.p.PipelineDocs, 0.40}, {1024, e.p.PipelineDocs, 0.25}}
	for _, s := range e.p.ChartSizes {
		points = append(points, point{s, e.p.ChartDocs, 0})
	}
	if e.p.Sizes != nil {
		points = points[:0]
		for _, s := range e.p.Sizes {
			pt := point{s, e.p.PipelineDocs, 0}
			switch s {
			case 0:
				pt.target = 0.40
			case 1024:
				pt.target = 0.25
			}
			points = append(points, pt)
		}
	}
	for i, pt := range points {
		msg := eventSize(pt.size) + pt.size
		pub, recv, err := rawRates(ctx, e, msg, pt.docs)
		if err != nil {
			return err
		}
		e.logf("baseline %d-byte messages: publish %.0f/s, receive %.0f/s", msg, pub, recv)
		cpu0, wall0 := cpuTime(), time.Now()
		rate, runTook, err := pipelineOnce(ctx, e, syn, i, pt.size, pt.docs)
		if err != nil {
			return err
		}
		cores := (cpuTime() - cpu0).Seconds() / time.Since(wall0).Seconds()
		e.logf("pipeline %d docs of %d bytes: %.0f docs/s (ratio %.3f; the run itself took %s; %.2f cores busy)", pt.docs, pt.size, rate, rate/pub, runTook.Round(time.Millisecond), cores)
		name := fmt.Sprintf("pipeline size=%dB docs=%d", pt.size, pt.docs)
		rep.add(Result{Scenario: fmt.Sprintf("baseline publish %dB", msg), Value: round(pub), Unit: "msgs/s",
			Note: fmt.Sprintf("raw PublishAsync, %d pending at most, file storage", baselinePending)})
		rep.add(Result{Scenario: fmt.Sprintf("baseline receive %dB", msg), Value: round(recv), Unit: "msgs/s",
			Note: "raw durable consumer, explicit ack of each"})
		rep.rate(name, rate, pub, pt.target, fmt.Sprintf("first emit to last change received on the feed; baseline: raw publish of %d-byte messages (event %d + content %d)", msg, msg-pt.size, pt.size))
		rep.Chart = append(rep.Chart, ChartPoint{Size: pt.size, Pipeline: rate, Raw: pub})
	}
	return nil
}

func pipelineOnce(ctx context.Context, e *env, syn *timedSynthetic, idx, size, n int) (float64, time.Duration, error) {
	src, err := e.c.CreateSource(ctx, client.CreateSourceRequest{
		Name: fmt.Sprintf("pipeline-%d", idx), Connector: synthetic.Name,
		Config: map[string]any{"count": n, "size": size},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("create source: %w", err)
	}
	feed, err := events.NewChangeFeed(ctx, e.js, events.ChangeFeedConfig{Durable: fmt.Sprintf("bench-pipeline-%d", idx), SourceID: src.ID, Batch: 1024})
	if err != nil {
		return 0, 0, err
	}
	var got int
	var last time.Time
	done := make(chan struct{})
	if err := feed.ConsumeBatch(func(envs []*events.Envelope) error {
		for _, env := range envs {
			if env.Type == events.TypeChangeCreated {
				got++
			}
		}
		if got >= n && last.IsZero() {
			last = time.Now()
			close(done)
		}
		return nil
	}); err != nil {
		return 0, 0, err
	}
	defer feed.Stop()
	run, err := e.c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		return 0, 0, fmt.Errorf("sync: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		r, _ := e.m.GetRun(context.Background(), run.ID)
		return 0, 0, fmt.Errorf("%d of %d changes received (run %+v): %w", got, n, r, ctx.Err())
	}
	if err := e.waitRun(ctx, run.ID, time.Minute); err != nil {
		return 0, 0, err
	}
	first, ok := syn.firstEmit(run.ID)
	if !ok {
		return 0, 0, errors.New("the connector's first emit was not recorded")
	}
	r, err := e.m.GetRun(ctx, run.ID)
	if err != nil {
		return 0, 0, err
	}
	if r.DocumentsNew != uint64(n) {
		return 0, 0, fmt.Errorf("run %s: %d new documents, want %d (status %s %s)", r.ID, r.DocumentsNew, n, r.Status, r.Error)
	}
	took := last.Sub(first)
	var runTook time.Duration
	if r.StartedAt != nil && r.FinishedAt != nil {
		runTook = r.FinishedAt.Sub(*r.StartedAt)
	}
	return float64(n) / took.Seconds(), runTook, nil
}
