package postgres_test

import (
	"testing"

	"github.com/tributary-sync/tributary/internal/connectors/postgres"
	"github.com/tributary-sync/tributary/pkg/connector/connectortest"
)

func TestConformance(t *testing.T) {
	db := fixture(t)
	cfg, creds := rowsConfig(db, nil)
	// A query that sleeps on every row: the cancellation check cancels it
	// mid-query, and pgx cancels it on the server.
	slow, _ := rowsConfig(db, map[string]any{"tables": nil, "cursor_column": nil, "title_column": nil,
		"query": "SELECT id, pg_sleep(5)::text AS pause FROM items"})
	connectortest.Conformance(t, postgres.New(), connectortest.ConformanceConfig{
		Config:      cfg,
		Credentials: creds,
		InvalidConfigs: []any{
			map[string]any{"dsn": ""},
			map[string]any{"dsn": db.DSNWithoutPassword(), "key_column": "id"},
			map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"items"}, "key_column": "id", "mode": "columns"},
		},
		SlowConfig: slow,
	})
}
