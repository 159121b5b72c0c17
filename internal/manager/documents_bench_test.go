package manager

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// BenchmarkListDocuments measures pages of the documents list of one
// source holding 100,000 documents (the figure: p99 under 50 ms),
// after the index is loaded, and reports the load and each query's p50 and
// p99.
//
//	go test ./internal/manager -run '^$' -bench ListDocuments -benchtime 200x
func BenchmarkListDocuments(b *testing.B) {
	const docs = 100_000
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
	src, err := m.CreateSource(ctx, CreateSource{Name: "big", Connector: fakeManifest.Name, Config: json.RawMessage(`{"root":"/data"}`)})
	if err != nil {
		b.Fatal(err)
	}
	// Seed the catalog as the applier would leave it, through async puts.
	_, js := n.Connect(b)
	now := time.Now().UTC()
	for i := range docs {
		ext := fmt.Sprintf("folder-%03d/document-%06d.txt", i%500, i)
		rec := &state.CatalogDoc{SourceID: src.ID, ExternalID: ext, Title: fmt.Sprintf("Document %d", i),
			ContentID: "01KQ0000000000000000000000", Hash: "5c1e", Status: state.DocPending, Origin: state.OriginSync,
			Metadata:    events.Metadata{Path: ext, MimeType: "text/plain", Size: 1024, UpdatedAt: &now},
			Permissions: events.Permissions{Public: true}, FirstSeenRun: "run", LastSeenRun: "run", CreatedAt: now, UpdatedAt: now}
		if i%10 == 0 {
			rec.Status = state.DocIndexed
		}
		v, _ := json.Marshal(rec)
		if _, err := js.PublishAsync("$KV."+events.BucketCatalog+"."+state.CatalogKey(src.ID, ext), v); err != nil {
			b.Fatal(err)
		}
		if i%5000 == 4999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()

	start := time.Now()
	if p, err := m.ListDocuments(ctx, src.ID, DocumentFilter{Page: 1, Size: 50}); err != nil || p.Total != docs {
		b.Fatalf("first list: %v, %v", p, err)
	}
	b.Logf("index of %d documents loaded in %s", docs, time.Since(start).Round(time.Millisecond))

	queries := []struct {
		name string
		f    DocumentFilter
	}{
		{"first-page", DocumentFilter{Page: 1, Size: 50}},
		{"middle-page", DocumentFilter{Page: 1000, Size: 50}},
		{"search", DocumentFilter{Search: "DOCUMENT-0999", Page: 1, Size: 50}},
		{"status", DocumentFilter{Status: state.DocIndexed, Page: 100, Size: 50}},
		{"page-of-1000", DocumentFilter{Page: 50, Size: 1000}},
	}
	for _, q := range queries {
		b.Run(q.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				p, err := m.ListDocuments(ctx, src.ID, q.f)
				if err != nil || len(p.Items) == 0 {
					b.Fatalf("list: %v", err)
				}
				took = append(took, time.Since(t0))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkDocHash measures the catalog's fingerprint of a document, what
// every document event costs to judge before any KV read.
//
//	go test ./internal/manager -run '^$' -bench DocHash -benchmem
func BenchmarkDocHash(b *testing.B) {
	now := time.Now().UTC()
	d := &events.Document{ExternalID: "team/specs/2026/q1-roadmap.md", Title: "Q1 roadmap", ContentID: "01KQ0000000000000000000000",
		Metadata: events.Metadata{Title: "Q1 roadmap", Author: "ada@example.com", UpdatedAt: &now, MimeType: "text/markdown",
			Size: 48213, Path: "team/specs/2026/q1-roadmap.md", Extra: map[string]any{"raw_content_id": "01KQ0000000000000000000001"}},
		Permissions: events.Permissions{Users: []string{"ada", "grace"}, Groups: []string{"eng"}},
		Attributes:  map[string]any{"lang": "en", "labels": []any{"roadmap", "q1"}}}
	for b.Loop() {
		if _, err := docHash(d); err != nil {
			b.Fatal(err)
		}
	}
}
