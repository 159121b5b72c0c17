package filesystem_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary-sync/tributary/internal/connectors/filesystem"
	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

func TestConformance(t *testing.T) {
	root := t.TempDir()
	write(t, root, "notes/a.txt", "hello", 1)
	write(t, root, "notes/b.md", "# Title\n\nbody", 2)
	write(t, root, "page.html", "<html><body><p>Visible</p></body></html>", 3)
	// Enough files that a sync takes seconds: the cancellation check
	// cancels it at its first call.
	slow := t.TempDir()
	for i := range 1500 {
		if err := os.WriteFile(filepath.Join(slow, fmt.Sprintf("f%04d.txt", i)), fmt.Appendf(nil, "file %d", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	connectortest.Conformance(t, filesystem.New(), connectortest.ConformanceConfig{
		Config: filesystem.Config{Root: root},
		InvalidConfigs: []any{
			map[string]any{"root": ""},
			map[string]any{"root": root, "max_file_size": 0},
			map[string]any{"root": root, "include": []string{""}},
			map[string]any{"root": root, "exclude": "*.tmp"},
		},
		SlowConfig: filesystem.Config{Root: slow},
	})
}
