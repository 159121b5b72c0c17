package exec_test

import (
	"testing"

	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

// The Python example through the conformance suite: an exec connector is a
// connector like any other to the worker and the manager.
func TestConformance(t *testing.T) {
	connectortest.Conformance(t, loadHello(t), connectortest.ConformanceConfig{
		Config: map[string]any{"count": 5, "checkpoint_every": 2},
		InvalidConfigs: []any{
			map[string]any{"count": -1},
			map[string]any{"count": 1, "pace": "slow"},
			map[string]any{"count": 1, "colour": "red"},
		},
		SlowConfig: map[string]any{"count": 1000, "pace": 0.05},
	})
}
