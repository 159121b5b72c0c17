// Command notes-connector is a Tributary worker hosting the notes
// connector (docs/writing-a-connector.md):
//
//	go run ./examples/notes-connector --nats-url nats://127.0.0.1:4222
package main

import (
	"github.com/tributary-sync/tributary/examples/notes-connector/notes"
	"github.com/tributary-sync/tributary/pkg/worker"
)

func main() {
	worker.Main(notes.New())
}
