package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tributary-sync/tributary/pkg/state"
)

// ErrConnectionTest is wrapped by the error Harness.TestConnection returns
// when the connector's connection test failed (rather than the call).
var ErrConnectionTest = errors.New("connection test failed")

// SyncDocument re-fetches one document of the harness's source, as
// POST /v1/sources/{id}/documents/{doc_id}/sync does: a run in which the
// connector's SyncDocument (connector.DocumentSyncer) is called with
// SyncRequest.Document set to externalID. The document must be in the
// catalog (an earlier sync emitted it), and the connector must implement
// DocumentSyncer; otherwise the manager refuses and this is an error. A
// run that fails is a Result, as with RunSync.
func (h *Harness) SyncDocument(ctx context.Context, externalID string) (*Result, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	h.srcMu.Lock()
	sourceID := h.sourceID
	h.srcMu.Unlock()
	if sourceID == "" {
		return nil, errors.New("connectortest: SyncDocument: no source yet: run a sync that emits the document first")
	}
	run, err := h.m.SyncDocument(ctx, sourceID, state.DocID(externalID))
	if err != nil {
		return nil, fmt.Errorf("connectortest: sync document %q: %w", externalID, err)
	}
	r := &Run{h: h, id: run.ID, rec: h.record(run.ID)}
	return r.Wait(ctx)
}

// TestConnection runs the connector's connection test
// (connector.ConnectionTester) on the harness's source through the manager
// and the worker, as POST /v1/sources/{id}/test-connection does. s.Config
// and s.Credentials set the source first, as for RunSync (its Checkpoint
// and Mode are ignored). It returns nil when the test passed, an error
// wrapping ErrConnectionTest with the connector's message when it failed,
// and another error when the test could not run (the connector cannot
// test a connection, say).
func (h *Harness) TestConnection(ctx context.Context, s Sync) error {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	sourceID, err := h.ensureSource(ctx, Sync{Config: s.Config, Credentials: s.Credentials})
	if err != nil {
		return err
	}
	res, err := h.m.TestConnection(ctx, sourceID)
	if err != nil {
		return fmt.Errorf("connectortest: test connection: %w", err)
	}
	if !res.OK {
		return fmt.Errorf("%w: %s", ErrConnectionTest, res.Message)
	}
	return nil
}

// ExecuteAction runs the connector's action name
// (connector.ActionExecutor) on the harness's source through the manager
// and the worker, as POST /v1/sources/{id}/actions/{name} does, and
// returns its JSON result. params is any JSON-encodable value (nil for
// none); the manager checks it against the action's declared parameters
// first. s sets the source's config and credentials as for
// TestConnection. The action's own failure is an error whose message is
// the connector's.
func (h *Harness) ExecuteAction(ctx context.Context, s Sync, name string, params any) (json.RawMessage, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	raw, err := toJSON(params)
	if err != nil {
		return nil, fmt.Errorf("connectortest: params: %w", err)
	}
	sourceID, err := h.ensureSource(ctx, Sync{Config: s.Config, Credentials: s.Credentials})
	if err != nil {
		return nil, err
	}
	res, err := h.m.ExecuteAction(ctx, sourceID, name, raw)
	if err != nil {
		return nil, fmt.Errorf("connectortest: action %s: %w", name, err)
	}
	return res.Result, nil
}
