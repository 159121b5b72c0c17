package connector_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Greeter emits one document per name in its config.
type Greeter struct{}

func (Greeter) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:      "greeter",
		Version:   "1.0.0",
		SyncModes: []connector.SyncMode{connector.Full},
		ConfigSchema: json.RawMessage(`{"type":"object",
			"properties":{"names":{"type":"array","items":{"type":"string"}}},
			"required":["names"]}`),
	}
}

func (Greeter) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg struct {
		Names []string `json:"names"`
	}
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	for _, n := range cfg.Names {
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

// A connector's manifest is checked by the worker before it registers it.
func ExampleManifest_Validate() {
	m := Greeter{}.Manifest()
	fmt.Println(m.Validate(), m.Supports(connector.Full), m.Supports(connector.Incremental))
	// Output: <nil> true false
}

// Decoding a checkpoint tells a connector whether there is one.
func ExampleSyncRequest_DecodeCheckpoint() {
	req := &connector.SyncRequest{Checkpoint: json.RawMessage(`{"cursor":"abc"}`), Resumed: true}
	var cp struct {
		Cursor string `json:"cursor"`
	}
	ok, err := req.DecodeCheckpoint(&cp)
	fmt.Println(ok, err, cp.Cursor, req.Resumed)
	// Output: true <nil> abc true
}
