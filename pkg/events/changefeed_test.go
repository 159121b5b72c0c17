package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/events"
)

func publishChanges(t testing.TB, n *testutil.NATS, from, count int) {
	t.Helper()
	for i := from; i < from+count; i++ {
		id := fmt.Sprintf("doc-%05d", i)
		env, err := events.New(testSource, testRun, &events.ChangeCreated{ExternalID: id, Document: &events.Document{ExternalID: id}})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := env.Msg()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.JS.PublishMsgAsync(msg); err != nil {
			t.Fatal(err)
		}
	}
	<-n.JS.PublishAsyncComplete()
}

// ConsumeBatch hands over changes in order, at most Batch at a time; a
// failed batch comes again, whole and in order; the durable resumes after
// the last acknowledged batch.
func TestChangeFeedBatches(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, n.JS, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	publishChanges(t, n, 0, 25)

	var (
		mu      sync.Mutex
		got     []string
		failed  bool
		maxSize int
	)
	read := func(feed *events.ChangeFeed) {
		t.Helper()
		if err := feed.ConsumeBatch(func(envs []*events.Envelope) error {
			mu.Lock()
			defer mu.Unlock()
			maxSize = max(maxSize, len(envs))
			if !failed {
				failed = true
				return errors.New("index unavailable")
			}
			for _, e := range envs {
				got = append(got, e.Payload().(*events.ChangeCreated).ExternalID)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	feed, err := events.NewChangeFeed(ctx, n.JS, events.ChangeFeedConfig{Durable: "bulk", Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	read(feed)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	testutil.Eventually(t, 10*time.Second, func() bool { return count() == 25 }, "25 changes")
	feed.Stop()

	// More changes; the same durable, read one at a time now.
	publishChanges(t, n, 25, 5)
	feed, err = events.NewChangeFeed(ctx, n.JS, events.ChangeFeedConfig{Durable: "bulk"})
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Consume(func(e *events.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Payload().(*events.ChangeCreated).ExternalID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return count() == 30 }, "30 changes")
	feed.Stop()
	mu.Lock()
	defer mu.Unlock()
	for i, id := range got {
		if want := fmt.Sprintf("doc-%05d", i); id != want {
			t.Fatalf("change %d is %s, want %s (all: %v)", i, id, want, got)
		}
	}
	if maxSize > 10 || maxSize < 2 {
		t.Fatalf("largest batch %d, want 2..10", maxSize)
	}
}
