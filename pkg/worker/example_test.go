package worker_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/nats-io/nats.go"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/worker"
)

// notes stands for your connector.
var notes connector.Connector

// A worker binary hosting your connector is one line: the flags of
// cmd/worker, signal handling and the hand-over on shutdown come with it.
func ExampleMain() {
	worker.Main(notes)
}

// Run is Main for a program that reads its settings itself.
func ExampleRun() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := worker.Run(ctx, worker.Config{
		NATSURL:     os.Getenv("NATS_URL"),
		NATSOptions: []nats.Option{nats.UserCredentials("worker.creds")},
		Concurrency: 8,
	}, notes)
	if err != nil {
		log.Fatal(err)
	}
}
