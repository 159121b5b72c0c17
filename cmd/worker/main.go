// Command worker hosts the built-in connectors (and the exec connectors
// --exec-connectors declares) and runs the syncs the
// manager requests. Start as many as you like: they share the work.
//
//	go run ./cmd/worker --nats-url nats://127.0.0.1:4222 --concurrency 4
//
// Every flag also reads an environment variable: --nats-url reads
// TRIBUTARY_NATS_URL, and so on. Run with -h for the list.
//
// It is pkg/worker's Main with the built-in connectors: a worker binary
// hosting connectors of your own is the same one line (see
// docs/writing-a-connector.md).
package main

import (
	"github.com/tributary-sync/tributary/internal/connectors/builtin"
	"github.com/tributary-sync/tributary/pkg/worker"
)

func main() {
	worker.Main(builtin.All()...)
}
