package events_test

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

// BenchmarkChangeFeed measures how fast an indexer reads the change feed
// through events.ChangeFeed (in order: one change in flight, and batches of
// 256 with ConsumeBatch), next to a raw
// durable JetStream consumer with explicit acks and the default 1,000 in
// flight, on the same stream in the same run. It reports changes/s of each
// and their ratio.
//
//	go test ./pkg/events -run '^$' -bench ChangeFeed -benchtime 20000x
func BenchmarkChangeFeed(b *testing.B) {
	n := testutil.StartNATS(b)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, n.JS, bus.StreamsConfig{}); err != nil {
		b.Fatal(err)
	}
	count := b.N
	for i := range count {
		env, err := events.New("01KQSOURCE0000000000000000", "01KQRUN00000000000000000000", &events.ChangeCreated{
			ExternalID: fmt.Sprintf("doc-%07d", i),
			Document: &events.Document{ExternalID: fmt.Sprintf("doc-%07d", i), Title: "A document",
				ContentID: "01KQCONTENT000000000000000", Metadata: events.Metadata{MimeType: "text/plain", Size: 1024}},
		})
		if err != nil {
			b.Fatal(err)
		}
		msg, err := env.Msg()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.JS.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
		if i%5000 == 4999 {
			<-n.JS.PublishAsyncComplete()
		}
	}
	<-n.JS.PublishAsyncComplete()
	b.ResetTimer()

	// Raw baseline: a durable consumer, explicit acks, 1,000 in flight.
	cons, err := n.JS.CreateConsumer(ctx, events.StreamChanges, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	got := 0
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got++; got == count {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	<-done
	raw := float64(count) / time.Since(start).Seconds()
	cc.Stop()

	feed, err := events.NewChangeFeed(ctx, n.JS, events.ChangeFeedConfig{Durable: "indexer"})
	if err != nil {
		b.Fatal(err)
	}
	done, got = make(chan struct{}), 0
	start = time.Now()
	if err := feed.Consume(func(*events.Envelope) error {
		if got++; got == count {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	<-done
	typed := float64(count) / time.Since(start).Seconds()
	feed.Stop()

	bulk, err := events.NewChangeFeed(ctx, n.JS, events.ChangeFeedConfig{Durable: "bulk", Batch: 256})
	if err != nil {
		b.Fatal(err)
	}
	done, got = make(chan struct{}), 0
	start = time.Now()
	if err := bulk.ConsumeBatch(func(envs []*events.Envelope) error {
		if got += len(envs); got == count {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	<-done
	batched := float64(count) / time.Since(start).Seconds()
	bulk.Stop()
	b.ReportMetric(raw, "raw-changes/s")
	b.ReportMetric(typed, "feed-changes/s")
	b.ReportMetric(typed/raw, "feed-ratio")
	b.ReportMetric(batched, "batch256-changes/s")
	b.ReportMetric(batched/raw, "batch256-ratio")
}
