// Command indexer is the smallest useful indexer, for the end-to-end tests
// and as an example: it follows Tributary's change feed with its own durable
// consumer and keeps, for every document, its text, writing that view as
// JSON ({"<source_id>/<external_id>": "<text>"}) to --out after each change.
//
//	go run ./test/indexer --nats-url nats://127.0.0.1:4222 --out view.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "indexer:", err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("nats-url", nats.DefaultURL, "NATS URL")
	durable := flag.String("durable", "e2e-indexer", "durable consumer name")
	out := flag.String("out", "view.json", "file the view is written to")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(*url, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	var feed *events.ChangeFeed
	var content jetstream.ObjectStore
	for feed == nil || content == nil { // the manager may not have created them yet
		if feed == nil {
			feed, _ = events.NewChangeFeed(ctx, js, events.ChangeFeedConfig{Durable: *durable})
		}
		if content == nil {
			content, _ = js.ObjectStore(ctx, events.BucketContent)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	view := map[string]string{}
	if err := feed.Consume(func(env *events.Envelope) error {
		key := func(id string) string { return env.SourceID + "/" + id }
		var doc *events.Document
		var version string
		switch p := env.Payload().(type) {
		case *events.ChangeCreated:
			doc, version = p.Document, p.Fingerprint
		case *events.ChangeUpdated:
			doc, version = p.Document, p.Fingerprint
		case *events.ChangeDeleted:
			delete(view, key(p.ExternalID))
			return write(*out, view)
		}
		text := ""
		if doc.ContentID != "" {
			b, err := content.GetBytes(ctx, doc.ContentID)
			if err != nil {
				return err // delivered again
			}
			text = string(b)
		}
		view[key(doc.ExternalID)] = text
		if err := write(*out, view); err != nil {
			return err
		}
		// Tell the manager what became of this version of the document; a
		// document deleted or changed since is no longer this change's
		// business.
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := events.ReportStatus(rctx, nc, env.SourceID, events.StatusReport{ExternalID: doc.ExternalID, Status: events.DocStatusIndexed, Fingerprint: version})
		var se *events.StatusError
		if errors.As(err, &se) && (se.Code == "not_found" || se.Code == "stale") {
			return nil
		}
		return err
	}); err != nil {
		return err
	}
	defer feed.Stop()
	fmt.Fprintln(os.Stderr, `{"msg":"indexer ready"}`)
	<-ctx.Done()
	return nil
}

// write replaces the view file atomically.
func write(path string, view map[string]string) error {
	b, err := json.Marshal(view)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
