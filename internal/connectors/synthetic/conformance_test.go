package synthetic_test

import (
	"testing"

	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

func TestConformance(t *testing.T) {
	connectortest.Conformance(t, synthetic.New(), connectortest.ConformanceConfig{
		Config: synthetic.Config{Count: 20, Size: 64, ChangeRatio: 0.25, CheckpointEvery: 5},
		InvalidConfigs: []any{
			map[string]any{"count": -1},
			map[string]any{"count": 1, "pace": "soon"},
			map[string]any{"count": 1, "change_ratio": 2},
			map[string]any{"count": 1, "checkpoint_every": 0},
		},
		SlowConfig: synthetic.Config{Count: 100000, Pace: "10ms"},
	})
}
