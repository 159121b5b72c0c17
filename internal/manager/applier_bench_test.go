package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// BenchmarkApply measures the applier end to end on an embedded server:
// b.N document.upserted events of one run, published as a worker does
// (asynchronously, 1,024 in flight), until the run record counts them all.
// "new" is a first sync (every document is created in the catalog and
// published on the change feed); "unchanged" a second sync of the same
// documents (each only marked seen). It reports documents/s; the
// allocations are the whole process's (manager and server).
//
//	go test ./internal/manager -run '^$' -bench Apply -benchtime 20000x -benchmem
func BenchmarkApply(b *testing.B) {
	for _, mode := range []string{"new", "unchanged"} {
		b.Run(mode, func(b *testing.B) {
			n := testutil.StartNATS(b)
			ctx := context.Background()
			m, err := New(n.Conn, Config{Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Start(ctx); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = m.Stop(ctx) })
			raw, _ := json.Marshal(fakeManifest)
			if _, err := m.Store().Connectors.Put(ctx, fakeManifest.Name, &state.ConnectorInfo{Manifest: raw}); err != nil {
				b.Fatal(err)
			}
			src, err := m.CreateSource(ctx, CreateSource{Name: "bench", Connector: fakeManifest.Name, Config: json.RawMessage(`{"root":"/data"}`)})
			if err != nil {
				b.Fatal(err)
			}
			_, js := n.Connect(b)
			count := b.N
			syncOnce := func(timed bool) {
				run, err := m.TriggerSync(ctx, src.ID, events.ModeFull, TriggerManual)
				if err != nil {
					b.Fatal(err)
				}
				pubs := []any{&events.RunStarted{WorkerID: "w", Connector: fakeManifest.Name, Mode: events.ModeFull}}
				if timed {
					b.StartTimer()
				}
				seq := uint64(0)
				publish := func(p any) {
					env, err := events.New(src.ID, run.ID, p)
					if err != nil {
						b.Fatal(err)
					}
					seq++
					env.Seq, env.Attempt = seq, 1
					msg, err := env.Msg()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := js.PublishMsgAsync(msg); err != nil {
						b.Fatal(err)
					}
					if seq%1024 == 0 {
						<-js.PublishAsyncComplete()
					}
				}
				for _, p := range pubs {
					publish(p)
				}
				for i := range count {
					id := fmt.Sprintf("doc-%07d", i)
					publish(&events.DocumentUpserted{Document: events.Document{ExternalID: id, Title: "Document " + id,
						Metadata:    events.Metadata{MimeType: "text/plain", Size: 1024, Path: id},
						Permissions: events.Permissions{Public: true}}})
				}
				publish(&events.RunCompleted{Scanned: uint64(count)})
				<-js.PublishAsyncComplete()
				deadline := time.Now().Add(10 * time.Minute)
				for {
					r, err := m.GetRun(ctx, run.ID)
					if err == nil && r.Status.Terminal() {
						if got := r.DocumentsNew + r.DocumentsUnchanged; got != uint64(count) {
							b.Fatalf("run %s: %d documents applied, want %d", r.Status, got, count)
						}
						break
					}
					if time.Now().After(deadline) {
						b.Fatal("run not applied")
					}
					time.Sleep(time.Millisecond)
				}
				if timed {
					b.StopTimer()
				}
			}
			b.StopTimer()
			if mode == "unchanged" {
				syncOnce(false)
			}
			b.ReportAllocs()
			syncOnce(true)
			b.ReportMetric(float64(count)/b.Elapsed().Seconds(), "docs/s")
		})
	}
}
