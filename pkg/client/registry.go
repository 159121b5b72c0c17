package client

import (
	"context"
	"net/http"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

// The registry: GET /v1/connectors and GET /v1/workers. Neither is paged.

// Connector is a connector type some worker has registered.
type Connector struct {
	// Manifest is what the connector declared: name, version, sync modes,
	// actions, config schema.
	connector.Manifest
	// Workers counts the live workers hosting it now.
	Workers int `json:"workers"`
	// RegisteredAt is when a worker last registered it.
	RegisteredAt time.Time `json:"registered_at"`
}

// ListConnectors returns every connector type workers have registered, by
// name; a type stays listed after its workers are gone, with Workers 0.
//
// Route: GET /v1/connectors.
func (c *Client) ListConnectors(ctx context.Context) ([]Connector, error) {
	var out list[Connector]
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "connectors"); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// ListWorkers returns the live workers, by id.
//
// Route: GET /v1/workers.
func (c *Client) ListWorkers(ctx context.Context) ([]state.Worker, error) {
	var out list[state.Worker]
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "workers"); err != nil {
		return nil, err
	}
	return out.Items, nil
}
