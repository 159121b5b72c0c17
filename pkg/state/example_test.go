package state_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/pkg/state"
)

// A source has at most one active run: Create is the guard, compare-and-set
// keeps concurrent writers from losing each other's changes, and missing
// records are a typed error.
func Example() {
	ctx := context.Background()

	// An embedded JetStream server, reached in process.
	dir, err := os.MkdirTemp("", "state-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ns, err := bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer ns.WaitForShutdown()
	defer ns.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	// The manager opens the store; workers Bind to it.
	store, err := state.Open(ctx, js, state.Config{})
	if err != nil {
		log.Fatal(err)
	}

	// The first run of a source takes the active slot; a second cannot.
	_, err = store.Active.Create(ctx, "src1", &state.Active{RunID: "run1"})
	fmt.Println("first run:", err)
	_, err = store.Active.Create(ctx, "src1", &state.Active{RunID: "run2"})
	fmt.Println("second run exists:", errors.Is(err, state.ErrExists))

	// A stale revision loses; Mutate re-reads and retries.
	rev, _ := store.Runs.Create(ctx, "run1", &state.Run{ID: "run1", Status: state.RunQueued})
	_, _ = store.Runs.Update(ctx, "run1", &state.Run{ID: "run1", Status: state.RunRunning}, rev)
	_, err = store.Runs.Update(ctx, "run1", &state.Run{ID: "run1", Status: state.RunCancelled}, rev)
	fmt.Println("stale update conflicts:", errors.Is(err, state.ErrConflict))
	run, _, _ := store.Runs.Mutate(ctx, "run1", func(r *state.Run) error {
		r.Status = state.RunCompleted
		r.DocumentsEmitted = 2
		return nil
	})
	fmt.Println("run:", run.Status, run.DocumentsEmitted)

	// Missing records are ErrNotFound.
	_, _, err = store.Runs.Get(ctx, "run404")
	fmt.Println("missing:", errors.Is(err, state.ErrNotFound))

	// Output:
	// first run: <nil>
	// second run exists: true
	// stale update conflicts: true
	// run: completed 2
	// missing: true
}
