// Package connector is Tributary's connector SDK: everything needed to teach
// Tributary to read a new kind of source, in Go.
//
// # A connector in five minutes
//
// A connector is a type with two methods. Manifest says what it is; Sync
// reads the source and reports what it finds:
//
//	type Notes struct{}
//
//	func (Notes) Manifest() connector.Manifest {
//		return connector.Manifest{
//			Name:      "notes",
//			Version:   "1.0.0",
//			SyncModes: []connector.SyncMode{connector.Full, connector.Incremental},
//			ConfigSchema: json.RawMessage(`{
//				"type": "object",
//				"properties": {"url": {"type": "string", "format": "uri"}},
//				"required": ["url"],
//				"additionalProperties": false
//			}`),
//		}
//	}
//
//	func (Notes) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
//		var cfg struct{ URL string `json:"url"` }
//		if err := req.DecodeConfig(&cfg); err != nil {
//			return err
//		}
//		var since struct{ Cursor string `json:"cursor"` }
//		if _, err := req.DecodeCheckpoint(&since); err != nil {
//			return err
//		}
//		for _, n := range fetchNotes(ctx, cfg.URL, since.Cursor) {
//			sc.IncrementScanned(1)
//			id, err := sc.Content().Save(ctx, n.Body, "text/markdown")
//			if err != nil {
//				return err
//			}
//			if err := sc.Emit(ctx, connector.Document{
//				ExternalID: n.ID, Title: n.Title, ContentID: id,
//				Metadata: connector.Metadata{URL: n.URL, UpdatedAt: &n.Updated},
//			}); err != nil {
//				return err
//			}
//		}
//		return sc.Complete(ctx, map[string]string{"cursor": nextCursor})
//	}
//
// Host it on a worker, a binary of one line with package pkg/worker:
//
//	func main() { worker.Main(Notes{}) }
//
// and every source whose "connector" is "notes" syncs through it.
// docs/writing-a-connector.md walks through a complete connector, from an
// empty folder to syncs through the HTTP API.
//
// # The contract
//
//   - Config arrives already valid against ConfigSchema: the manager rejects
//     sources whose config fails it, with one error per violation.
//   - Emit, EmitUpdated, EmitDeleted and EmitError publish asynchronously.
//     SaveCheckpoint and Complete wait until every earlier event is stored in
//     JetStream, so a checkpoint never covers a document that could be lost.
//     Checkpoint often (every few hundred documents) in long syncs: a run
//     that is interrupted resumes from its last checkpoint, on any worker,
//     with SyncRequest.Resumed set.
//   - Cancellation arrives through ctx. Return promptly when it is done.
//   - Returning an error, calling Fail, or panicking fails the run with that
//     message. Returning nil completes it.
//   - When the worker shuts down, SaveCheckpoint returns ErrStopRequested
//     after storing the checkpoint: return, and another worker resumes.
//   - Sync may be called concurrently for different sources: keep per-sync
//     state local to Sync.
//
// # Content
//
// Content goes to the object store, not into events: Save stores text,
// SaveBinary bytes, and both return the content id to put in
// Document.ContentID. Identical content is stored once and keeps its id, so
// an unchanged document looks unchanged. For PDFs, Office files, HTML, CSV
// or JSON, ExtractAndStore stores the text indexers want (and ExtractText
// only returns it); errors.Is(err, ErrUnsupportedContent) tells a type no
// extractor knows, ErrMalformedContent a file that does not parse:
//
//	textID, ex, err := sc.Content().ExtractAndStore(ctx, data, "", "report.pdf")
//	switch {
//	case errors.Is(err, connector.ErrUnsupportedContent), errors.Is(err, connector.ErrMalformedContent):
//		textID, err = sc.Content().SaveBinary(ctx, data, "application/pdf")
//	case ex.Truncated:
//		// the text was cut at 5 MiB
//	}
//
// # Optional abilities
//
// A connector can do more by implementing small extra interfaces; the
// worker notices them when it registers the connector:
//
//   - DocumentSyncer re-fetches one document.
//   - ConnectionTester checks a source's connection for
//     POST /v1/sources/{id}/test-connection: return nil when it works, an
//     error saying what is wrong when it does not.
//   - ActionExecutor runs the actions the manifest declares (Actions), for
//     POST /v1/sources/{id}/actions/{name}.
//
// The manager checks an action's params against its declared Parameters
// first; the result is any JSON-encodable value:
//
//	Actions: []connector.ActionDefinition{{
//		Name: "purge_cache", Description: "Forget the cached listing",
//		Parameters: []connector.ActionParameter{{Name: "older_than_days", Type: "integer", Required: true}},
//	}},
//
//	func (n *Notes) ExecuteAction(ctx context.Context, req *connector.ActionRequest) (any, error) {
//		var p struct{ OlderThanDays int `json:"older_than_days"` }
//		if err := req.DecodeParams(&p); err != nil {
//			return nil, err
//		}
//		removed, err := n.purge(ctx, p.OlderThanDays)
//		return map[string]int{"removed": removed}, err
//	}
//
// Both run on a live worker while the operator waits (30 s by default), with
// the source's config and credentials, and may run concurrently with syncs
// and with each other. Their error messages are shown to operators: keep
// credentials out of them.
//
// # Testing
//
// Package connectortest runs a connector's syncs on an embedded NATS server
// with the real worker runtime and manager, and returns what they did
// (documents, content, checkpoint, counters); its Conformance suite checks
// in one line what every connector must do (a valid manifest, a config
// schema that rejects garbage, full and incremental syncs that complete,
// checkpoints that round-trip, prompt cancellation):
//
//	func TestConformance(t *testing.T) {
//		connectortest.Conformance(t, &Notes{}, connectortest.ConformanceConfig{
//			Config:         map[string]any{"url": srv.URL},
//			InvalidConfigs: []any{map[string]any{"url": ""}},
//		})
//	}
//
// Connectors in other languages speak the same protocol over NATS; see
// docs/protocol.md.
package connector
