package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// exampleServer starts a whole manager in this process (embedded NATS,
// manager, worker with the synthetic connector, HTTP API) for the examples
// to talk to; in real use the manager runs on its own.
func exampleServer() (*server, func()) {
	dir, err := os.MkdirTemp("", "client-example")
	if err != nil {
		log.Fatal(err)
	}
	s, err := startServer(dir, zap.NewNop())
	if err != nil {
		log.Fatal(err)
	}
	return s, func() { s.Close(); _ = os.RemoveAll(dir) }
}

// Create a source, sync it and follow the run's events to its end.
func Example() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c, err := client.New(client.Config{BaseURL: srv.URL})
	if err != nil {
		log.Fatal(err)
	}
	src, err := c.CreateSource(ctx, client.CreateSourceRequest{
		Name:      "generated",
		Connector: "synthetic",
		Config:    map[string]any{"count": 3},
	})
	if err != nil {
		log.Fatal(err)
	}
	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{Mode: events.ModeFull})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("queued:", run.Status, run.Mode)

	stream, err := c.RunEvents(ctx, run.ID, client.StreamOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for stream.Next() {
		ev := stream.Event()
		switch ev.Type {
		case events.TypeRunStarted, events.TypeRunCompleted:
			fmt.Println(ev.Type)
		case events.TypeDocumentUpserted:
			env, err := ev.Envelope()
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println(ev.Type, env.Payload().(*events.DocumentUpserted).Document.ExternalID)
		}
	}
	if err := stream.Err(); err != nil {
		log.Fatal(err)
	}

	// The manager applies the events a moment later: wait for the run's
	// final record before reading what it did.
	run, err = c.WaitRun(ctx, run.ID, 50*time.Millisecond)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("final:", run.Status, run.DocumentsEmitted, "emitted")

	docs, err := c.ListDocuments(ctx, src.ID, client.ListDocumentsParams{Status: state.DocPending})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pending documents:", docs.Total)
	// Output:
	// queued: queued full
	// run.started
	// document.upserted doc-000000
	// document.upserted doc-000001
	// document.upserted doc-000002
	// run.completed
	// final: completed 3 emitted
	// pending documents: 3
}

// Errors are *client.Error values: a status, the API's code and message,
// and for a 422 every problem found.
func ExampleError() {
	srv, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(client.Config{BaseURL: srv.URL})
	if err != nil {
		log.Fatal(err)
	}

	_, err = c.GetSource(ctx, "nope")
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Code, apiErr.Message)
	}

	_, err = c.CreateSource(ctx, client.CreateSourceRequest{Connector: "synthetic", Config: map[string]any{"count": -1}})
	if errors.As(err, &apiErr) && apiErr.Code == client.CodeValidation {
		for _, d := range apiErr.Detail {
			fmt.Println(d.Field(), d.Type)
		}
	}
	// Output:
	// 404 not_found Source nope does not exist
	// body.name missing
	// body.config.count minimum
}

// Config is checked before any request.
func ExampleNew() {
	_, err := client.New(client.Config{BaseURL: "ftp://127.0.0.1:8420"})
	fmt.Println(err)

	c, err := client.New(client.Config{
		BaseURL: "https://sync.example.com/tributary/",
		Token:   "operator-token-0123456789",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.BaseURL())
	// Output:
	// tributary client: BaseURL "ftp://127.0.0.1:8420": scheme must be http or https
	// https://sync.example.com/tributary
}

// Follow one source's failed documents as they happen, resuming after the
// last event handled if the process restarts.
func ExampleClient_Events() {
	c, err := client.New(client.Config{BaseURL: "http://127.0.0.1:8420"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	lastID := os.Getenv("LAST_EVENT_ID") // kept by the previous process
	stream, err := c.Events(ctx, client.EventsParams{
		SourceID:    "01M840WRQT9A9ZDDNQ5ZSKFMFG",
		Type:        events.TypeDocumentError,
		LastEventID: lastID,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for ev, err := range stream.All() {
		if err != nil {
			log.Fatal(err) // reconnecting failed, or ctx is done
		}
		env, err := ev.Envelope()
		if err != nil {
			continue
		}
		p := env.Payload().(*events.DocumentError)
		fmt.Println(p.ExternalID, p.Error)
		// Store ev.ID to resume after it.
	}
}
