package rss_test

import (
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/connectors/rss"
	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

func TestConformance(t *testing.T) {
	day := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	srv := newFeedServer(t, rssFeed("conformance",
		item{guid: "a", title: "A", description: "<p>first</p>", published: day},
		item{guid: "b", title: "B", description: "second", published: day.Add(time.Hour)},
	), "application/rss+xml")
	// A feed that never answers: the cancellation check cancels the fetch.
	hang, _ := hangingServer(t)
	connectortest.Conformance(t, rss.New(), connectortest.ConformanceConfig{
		Config: rss.Config{FeedURL: srv.URL + "/feed"},
		InvalidConfigs: []any{
			map[string]any{"feed_url": ""},
			map[string]any{"feed_url": "ftp://example.com/feed"},
			map[string]any{"feed_url": srv.URL + "/feed", "timeout": "soon"},
		},
		SlowConfig: rss.Config{FeedURL: hang.URL + "/feed", Timeout: "5m"},
	})
}
