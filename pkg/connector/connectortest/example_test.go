package connectortest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

// Greeter emits one greeting per name in its config. An incremental sync
// greets only the names added since the checkpoint.
type Greeter struct{}

func (Greeter) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:      "greeter",
		Version:   "1.0.0",
		SyncModes: []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(`{"type":"object","required":["names"],"additionalProperties":false,
			"properties":{"names":{"type":"array","items":{"type":"string","minLength":1}}}}`),
	}
}

func (Greeter) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg struct {
		Names []string `json:"names"`
	}
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	var cp struct {
		Greeted int `json:"greeted"`
	}
	if _, err := req.DecodeCheckpoint(&cp); err != nil {
		return err
	}
	start := 0
	if req.Mode == connector.Incremental {
		start = min(cp.Greeted, len(cfg.Names))
	}
	for _, n := range cfg.Names[start:] {
		if err := ctx.Err(); err != nil {
			return err
		}
		sc.IncrementScanned(1)
		id, err := sc.Content().Save(ctx, "Hello, "+n+"!", "text/plain")
		if err != nil {
			return err
		}
		if err := sc.Emit(ctx, connector.Document{ExternalID: n, Title: "Greeting for " + n, ContentID: id}); err != nil {
			return err
		}
	}
	return sc.Complete(ctx, map[string]int{"greeted": len(cfg.Names)})
}

// Run a connector's syncs and look at what they did. In a test, New(t, …)
// replaces Start and Close.
func Example() {
	ctx := context.Background()
	h, err := connectortest.Start(ctx, Greeter{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = h.Close() }()

	res, err := h.RunSync(ctx, connectortest.Sync{Config: map[string]any{"names": []string{"Ada", "Grace"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Mode, len(res.Emitted), "new:", res.Counters.New, "checkpoint:", string(res.Checkpoint))
	doc, _ := res.Document("Grace")
	text, _ := doc.Text(ctx)
	fmt.Println(doc.Title+":", text)

	// The same source again, with one more name: the manager picks an
	// incremental sync from the checkpoint the first run left.
	res, err = h.RunSync(ctx, connectortest.Sync{Config: map[string]any{"names": []string{"Ada", "Grace", "Linus"}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Mode, "received:", string(res.Request.Checkpoint), "emitted:", res.Emitted[0].ExternalID)

	// The manager validates configs against the manifest's schema.
	fmt.Println(h.ValidateConfig(ctx, map[string]any{"names": "Ada"}))
	// Output:
	// completed full 2 new: 2 checkpoint: {"greeted":2}
	// Greeting for Grace: Hello, Grace!
	// completed incremental received: {"greeted":2} emitted: Linus
	// validation failed: [body config names]: got string, want array
}

// A connector's test file runs the conformance suite in one line.
func TestGreeterConformance(t *testing.T) {
	connectortest.Conformance(t, Greeter{}, connectortest.ConformanceConfig{
		Config:         map[string]any{"names": []string{"Ada", "Grace"}},
		InvalidConfigs: []any{map[string]any{"names": []string{""}}, map[string]any{"names": []string{"Ada"}, "colour": "red"}},
	})
}
