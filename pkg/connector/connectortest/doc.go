// Package connectortest tests a connector the way Tributary runs it, with
// nothing to install: no Docker, no NATS server, no manager process.
//
// A Harness starts, inside the test, an embedded NATS server with
// JetStream (its files in t.TempDir()), the real worker runtime hosting
// your connector, and the real manager, which applies what the worker
// publishes to runs, checkpoints and the catalog, and validates source
// configs against your manifest's ConfigSchema. Everything stops when the
// test ends.
//
// # One line: the conformance suite
//
// Every connector should pass Conformance. It checks the manifest, that the
// config schema rejects garbage, that full and incremental syncs complete,
// that checkpoints round-trip, and that a cancelled sync stops within a
// second:
//
//	func TestConformance(t *testing.T) {
//		dir := t.TempDir() // a source with something in it
//		os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o644)
//		connectortest.Conformance(t, notes.New(), connectortest.ConformanceConfig{
//			Config:         map[string]any{"root": dir},
//			InvalidConfigs: []any{map[string]any{"root": ""}},
//			SlowConfig:     map[string]any{"root": dir, "pace": "50ms"},
//		})
//	}
//
// A failing check says what the connector should do instead. Without a
// SlowConfig (a config whose sync takes several seconds) the cancellation
// check is skipped, with a message saying so. The checks share one harness
// and take about two seconds in all.
//
// # Your own tests: RunSync
//
// RunSync runs one sync to its end and returns a Result: how the run ended,
// the documents the connector emitted, updated and deleted (whose stored
// content Text and Raw read back), its document errors, the checkpoint it
// left and the run's counters as the manager recorded them:
//
//	h := connectortest.New(t, notes.New())
//	res, err := h.RunSync(ctx, connectortest.Sync{
//		Config:      map[string]any{"url": srv.URL},
//		Credentials: map[string]any{"token": "test"},
//	})
//	if err != nil {
//		t.Fatal(err) // the sync could not run: the config was refused, say
//	}
//	if res.Status != connectortest.StatusCompleted {
//		t.Fatalf("sync %s: %s", res.Status, res.Error)
//	}
//	doc, _ := res.Document("note-1")
//	text, err := doc.Text(ctx)
//
// A harness holds one source. The next RunSync on it continues from the
// checkpoint the previous run left, as a scheduled sync would: run a full
// sync, change the fixture, then check what an incremental one reports.
// Sync.Checkpoint replaces the checkpoint first (as an operator can), and
// Sync.Mode chooses full or incremental. Harness.Documents lists the
// catalog the runs built, Harness.ValidateConfig asks whether the manager
// accepts a config.
//
// StartSync returns a Run to act on while the sync runs: WaitRunning until
// the connector is called, Cancel it, Wait for the Result.
//
// The optional abilities go through the manager and the worker as the API
// does: SyncDocument re-fetches one document (a run, with its Result),
// TestConnection runs the connection test, ExecuteAction an action.
//
// # Without a test
//
// Start and Close run a harness outside a test: in an example, a benchmark,
// or a program trying a connector out.
//
// # Unit tests without the runtime
//
// The harness runs the whole pipeline, which takes a fraction of a second
// per test. For fine-grained unit tests of a connector's Sync (call it
// with a fake SyncContext and inspect every call) the built-in connectors
// use a recording SyncContext kept inside this module
// (internal/connectors/connectortest); a third-party connector can write
// its own fake in a few lines, since connector.SyncContext is an interface.
package connectortest
