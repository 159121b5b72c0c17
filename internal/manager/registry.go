package manager

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

// RegisteredConnector is a connector type some worker registered.
type RegisteredConnector struct {
	connector.Manifest
	// Workers counts the live workers hosting it.
	Workers      int       `json:"workers"`
	RegisteredAt time.Time `json:"registered_at"`
}

// ListConnectors returns the registered connector types by name.
func (m *Manager) ListConnectors(ctx context.Context) ([]RegisteredConnector, error) {
	conns, err := m.store.Connectors.List(ctx)
	if err != nil {
		return nil, unavailable("list connectors", err)
	}
	workers, err := m.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	hosted := map[string]int{}
	for _, w := range workers {
		for _, c := range w.Connectors {
			hosted[c]++
		}
	}
	out := make([]RegisteredConnector, 0, len(conns))
	for _, e := range conns {
		var man connector.Manifest
		if err := json.Unmarshal(e.Value.Manifest, &man); err != nil {
			m.log.Warn("skipping undecodable connector manifest", zap.String("connector", e.Key))
			continue
		}
		if man.SyncModes == nil {
			man.SyncModes = []connector.SyncMode{} // "full only" is an empty list, not null
		}
		out = append(out, RegisteredConnector{Manifest: man, Workers: hosted[man.Name], RegisteredAt: e.Value.RegisteredAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListWorkers returns the live workers by id.
func (m *Manager) ListWorkers(ctx context.Context) ([]*state.Worker, error) {
	entries, err := m.store.Workers.List(ctx)
	if err != nil {
		return nil, unavailable("list workers", err)
	}
	out := make([]*state.Worker, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Value)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
