package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
)

// StreamsConfig says how the streams are created.
type StreamsConfig struct {
	// Replicas of every stream; default 1.
	Replicas int
	// EventsMaxAge is how long run events are kept; default 7 days.
	EventsMaxAge time.Duration
	// DuplicateWindow is JetStream's de-duplication window; default 2 minutes.
	DuplicateWindow time.Duration
}

func (c *StreamsConfig) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.EventsMaxAge <= 0 {
		c.EventsMaxAge = 7 * 24 * time.Hour
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
}

// EnsureStreams creates or updates the streams and the content object store.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg.setDefaults()
	streams := []jetstream.StreamConfig{
		{
			Name:        events.StreamSync,
			Description: "Tributary sync requests, one subject per connector type (work queue)",
			Subjects:    []string{events.SyncSubjectsAll},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
		{
			Name:        events.StreamCancel,
			Description: "Tributary cancel requests, one subject per run",
			Subjects:    []string{events.CancelSubjectsAll},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			MaxAge:      7 * 24 * time.Hour,
			// One cancel per run is all anyone reads.
			MaxMsgsPerSubject: 1,
			Duplicates:        cfg.DuplicateWindow,
		},
		{
			Name:        events.StreamEvents,
			Description: "Tributary run events: tributary.events.<source_id>.<run_id>.<type>",
			Subjects:    []string{events.EventSubjectsAll},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			MaxAge:      cfg.EventsMaxAge,
			Duplicates:  cfg.DuplicateWindow,
		},
		{
			// Kept without an age limit: an indexer may start from the
			// beginning at any time.
			Name:        events.StreamChanges,
			Description: "Tributary change feed for indexers: tributary.changes.<source_id>.<created|updated|deleted>",
			Subjects:    []string{events.ChangeSubjectsAll},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("bus: stream %s: %w", sc.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      events.BucketContent,
		Description: "Tributary document content",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Compression: true,
	}); err != nil {
		return fmt.Errorf("bus: object store %s: %w", events.BucketContent, err)
	}
	return nil
}

// SyncConsumerName is the durable pull consumer that the workers hosting a
// connector share.
func SyncConsumerName(connector string) string { return "sync-" + connector }

// SyncConsumerConfig is the durable consumer of one connector type's sync
// requests. ackWait bounds how long a request stays with a worker that stopped
// heartbeating before JetStream redelivers it. Deliveries are not limited
// here: workers count a run's attempts themselves (hand-offs and lease waits
// are deliveries that are not attempts) and fail the run past the limit.
func SyncConsumerConfig(connector string, ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       SyncConsumerName(connector),
		Description:   "Workers hosting connector " + connector,
		FilterSubject: events.SyncSubject(connector),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: 10000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}
