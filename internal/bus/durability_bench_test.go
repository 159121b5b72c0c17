package bus_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/pkg/events"
)

// BenchmarkDurability measures what fsyncing every JetStream write costs
// (--sync-always, sync_interval: always) against the default lazy flush, for
// the two ways workers publish: documents asynchronously with up to 1,024 in
// flight, and checkpoints and outcomes one at a time.
//
//	go test ./internal/bus -run '^$' -bench Durability -benchtime 20000x
func BenchmarkDurability(b *testing.B) {
	for _, always := range []bool{false, true} {
		name := "sync=interval"
		if always {
			name = "sync=always"
		}
		b.Run(name+"/async", func(b *testing.B) { benchPublish(b, always, true) })
		b.Run(name+"/sync", func(b *testing.B) { benchPublish(b, always, false) })
	}
}

func benchPublish(b *testing.B, always, async bool) {
	ns, err := bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: b.TempDir(), SyncAlways: always})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := bus.EnsureStreams(ctx, js, bus.StreamsConfig{}); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	subject := events.EventSubject("src", "run", events.TypeDocumentUpserted)
	b.SetBytes(int64(len(body)))
	var pending []jetstream.PubAckFuture
	b.ResetTimer()
	for i := range b.N {
		msg := nats.NewMsg(subject)
		msg.Data = body
		msg.Header.Set(events.HeaderMsgID, fmt.Sprint(i))
		if async {
			// As the worker does: at most 1,024 in flight, settle the
			// older half when full.
			if len(pending) == 1024 {
				settle(ctx, b, pending[:512])
				pending = append(pending[:0], pending[512:]...)
			}
			f, err := js.PublishMsgAsync(msg)
			if err != nil {
				b.Fatal(err)
			}
			pending = append(pending, f)
			continue
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	settle(ctx, b, pending)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func settle(ctx context.Context, b *testing.B, fs []jetstream.PubAckFuture) {
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		case <-ctx.Done():
			b.Fatal("publishes not acknowledged")
		}
	}
}
