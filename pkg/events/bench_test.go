package events_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
)

// typicalUpsert is a document.upserted event as a connector emits it: the
// content itself lives in the content store, but a few KB travel with the
// event (a summary and custom attributes) next to the usual metadata.
func typicalUpsert(b *testing.B) *events.Envelope {
	b.Helper()
	created := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	updated := created.Add(36 * time.Hour)
	summary := strings.Repeat("Tributary keeps a search index in step with its sources. ", 60) // ~3.4 KB
	env, err := events.New(testSource, testRun, &events.DocumentUpserted{
		Document: events.Document{
			ExternalID: "drive/team/specs/2026/q1-roadmap.md",
			Title:      "Q1 roadmap",
			ContentID:  "sha256-9f2c6a1e0b4d8e7f3a5c2b1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f",
			Metadata: events.Metadata{
				Title:     "Q1 roadmap",
				Author:    "ada@example.com",
				CreatedAt: &created,
				UpdatedAt: &updated,
				MimeType:  "text/markdown",
				Size:      48213,
				URL:       "https://drive.example.com/d/q1-roadmap",
				Path:      "team/specs/2026/q1-roadmap.md",
				Extra:     map[string]any{"revision": float64(17), "folder_id": "f-123"},
			},
			Permissions: events.Permissions{Users: []string{"ada", "grace"}, Groups: []string{"eng", "product"}},
			Attributes: map[string]any{
				"summary": summary,
				"labels":  []any{"roadmap", "planning", "q1"},
				"lang":    "en",
				"words":   float64(7120),
			},
		},
		Updated: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	env.Attempt, env.Seq = 1, 42
	return env
}

func BenchmarkEncode(b *testing.B) {
	env := typicalUpsert(b)
	enc, err := env.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	enc, err := typicalUpsert(b).Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewEncode is what a worker does per emitted document.
func BenchmarkNewEncode(b *testing.B) {
	env := typicalUpsert(b)
	payload := env.Payload()
	enc, err := env.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := events.New(testSource, testRun, payload)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
