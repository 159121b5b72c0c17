// Package client is the Go client of Tributary's HTTP API: the manager's
// sources, documents, runs, live events, connectors, workers, health and
// administration, with typed requests, answers and errors. docs/api.md is
// the reference of the API itself; each method here names its route.
//
// # Connecting
//
// Make one Client and share it; it is safe for concurrent use:
//
//	c, err := client.New(client.Config{
//		BaseURL: "http://127.0.0.1:8420",
//		Token:   os.Getenv("TRIBUTARY_TOKEN"), // when the manager has a tokens file
//	})
//
// Every method takes a context first; Config.Timeout (30 s by default)
// bounds each call on top of it, except event streams and document
// content, which last as long as their context. Config.HTTPClient brings
// your own transport (TLS, proxies, tracing).
//
// # Sources, runs and documents
//
// A source is one external thing to keep in sync, read by one connector
// type. Syncing it queues a run; the run goes queued → running →
// completed, failed or cancelled:
//
//	src, err := c.CreateSource(ctx, client.CreateSourceRequest{
//		Name:      "notes",
//		Connector: "filesystem",
//		Config:    map[string]any{"root": "/srv/notes"},
//	})
//	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
//	run, err = c.GetRun(ctx, run.ID)
//
// Sources and runs come back as Source and Run, the records the
// manager keeps, whose JSON is the API's. Documents come back as Document,
// the catalog's view; ListDocuments, GetDocumentContent, CreateDocument and
// friends read and change them.
//
// # Lists
//
// Lists of sources, runs, documents and run errors are paged: pass a
// PageParams (zero values are the server's defaults, page 1 of 50) and
// read a Page, whose Total counts every match. Connectors and workers come
// whole, as slices.
//
// # Errors
//
// Any answer that is not 2xx is an *Error. Branch on it with errors.As, or
// with HasCode and StatusOf:
//
//	_, err := c.SyncSource(ctx, id, client.SyncRequest{})
//	var apiErr *client.Error
//	switch {
//	case errors.As(err, &apiErr) && apiErr.Code == client.CodeRunActive:
//		// a run is going on already: apiErr.RunID
//	case errors.As(err, &apiErr) && apiErr.Status == 422:
//		for _, d := range apiErr.Detail {
//			fmt.Println(d.Field(), d.Msg) // body.mode Input should be "full" or "incremental"
//		}
//	case err != nil:
//		// the network, a timeout, the context
//	}
//
// A 422 lists every problem found in Detail (the API's "detail" entries,
// with Code set to CodeValidation by the client); other errors carry the
// API's code and message, and RunID on conflicts about a run.
//
// # Live events
//
// RunEvents follows one run from its first event to its final one
// (run.completed, run.failed or run.cancelled); Events follows everything
// published from now on, optionally of one source and one event type.
// Both are Server-Sent Events, read with an EventStream:
//
//	stream, err := c.RunEvents(ctx, run.ID, client.StreamOptions{})
//	if err != nil {
//		return err // 404: no such run
//	}
//	defer stream.Close()
//	for stream.Next() {
//		ev := stream.Event() // ev.ID, ev.Type, ev.Data (the event's envelope)
//	}
//	return stream.Err() // nil after the run's final event
//
// Each event's ID is its sequence in the manager's events stream. When the
// connection drops, the stream reconnects by itself, with backoff, and
// sends the ID of the last event it received as Last-Event-ID: the server
// resumes right after it, so no event is lost or repeated (the stream also
// drops any event whose sequence it has passed). An event cut off by the
// drop is discarded and comes again whole. Reconnection gives up after
// Config.MaxReconnectAttempts failures in a row, or at once when the server
// refuses with a 4xx; the stream then ends with that error.
//
// The server ends a run's stream by closing it after the final event,
// which on the wire looks like any dropped connection; the client tells
// them apart by the event: after a final event the stream ends, Err nil,
// and before it the stream reconnects. Keep-alive comments, sent every
// 15 s by the manager, are read and ignored.
//
// The manager applies events to its records a moment after workers
// publish them, so when a run's stream ends GetRun may still say running
// for a little while; WaitRun polls until the record has ended too.
//
// To resume in another process, keep EventStream.LastEventID (or the last
// Event.ID you handled) and pass it as StreamOptions.LastEventID or
// EventsParams.LastEventID.
//
// The Server-Sent Events parser follows the WHATWG HTML standard (see
// sse.go for the details it handles, and the one place where it follows
// browsers instead) and is fuzzed against a plain reference implementation.
package client
