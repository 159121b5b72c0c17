package events_test

import (
	"errors"
	"fmt"

	"github.com/tributary-sync/tributary/pkg/events"
)

// A producer (a worker, or a connector written against the protocol) builds
// an event with New, numbers it, encodes it and publishes it on its subject
// with the Nats-Msg-Id header set to its id. A consumer (an indexer) decodes
// it and switches on the payload.
func Example() {
	// Producer side.
	env, err := events.New("src1", "run1", &events.DocumentUpserted{
		Document: events.Document{
			ExternalID: "notes/a.txt",
			Title:      "a.txt",
			ContentID:  "c1",
			Metadata:   events.Metadata{MimeType: "text/plain", Size: 6},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	env.Attempt, env.Seq = 1, 1 // the attempt, and the event's place in it
	data, err := env.Encode()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("publish on", env.Subject(), "with", events.HeaderMsgID, "set to the id:", len(env.ID) == 26)

	// Consumer side: subscribe to events.EventSubjectsAll, then per message:
	got, err := events.Decode(data)
	if err != nil {
		fmt.Println("skip invalid event:", err)
		return
	}
	switch p := got.Payload().(type) {
	case *events.DocumentUpserted:
		fmt.Println("index", p.Document.ExternalID, p.Document.Metadata.MimeType, "from source", got.SourceID)
	case *events.DocumentDeleted:
		fmt.Println("remove", p.ExternalID)
	}
	fmt.Println("seq", got.Seq, "terminal:", got.Type.Terminal())
	// Output:
	// publish on tributary.events.src1.run1.document.upserted with Nats-Msg-Id set to the id: true
	// index notes/a.txt text/plain from source src1
	// seq 1 terminal: false
}

// Decode says which field of a bad event is wrong; every error it returns
// wraps ErrInvalid, so a consumer can tell a bad message (log and skip it)
// from a transport failure (retry).
func ExampleDecode_invalid() {
	_, err := events.Decode([]byte(`{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","type":"document.deleted",
		"source_id":"src1","run_id":"run1","seq":3,"time":"2026-11-23T10:00:00Z","data":{}}`))
	var fe *events.FieldError
	if errors.As(err, &fe) {
		fmt.Println("field:", fe.Field)
	}
	fmt.Println("invalid:", errors.Is(err, events.ErrInvalid))
	fmt.Println(err)
	// Output:
	// field: data.external_id
	// invalid: true
	// data.external_id is required
}
