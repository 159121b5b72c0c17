// Package builtin lists the connectors every worker hosts.
package builtin

import (
	"github.com/tributary-sync/tributary/internal/connectors/filesystem"
	"github.com/tributary-sync/tributary/internal/connectors/postgres"
	"github.com/tributary-sync/tributary/internal/connectors/rss"
	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// All returns a fresh instance of every built-in connector.
func All() []connector.Connector {
	return []connector.Connector{filesystem.New(), postgres.New(), rss.New(), synthetic.New()}
}
