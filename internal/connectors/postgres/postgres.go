// Package postgres is the built-in connector for PostgreSQL tables and
// queries. It imports only pkg/connector (and the pgx driver), as a
// third-party connector would.
//
// Configuration:
//
//	{"dsn": "postgres://reader@db.example:5432/shop?sslmode=require",
//	 "tables": ["products", "sales.orders"], "key_column": "id",
//	 "title_column": "name", "cursor_column": "updated_at"}
//
// dsn is a libpq connection string (a URL or key=value pairs). The source's
// config is not secret (the API shows it), so the password belongs in the
// source's credentials, {"password": "…"}, which replaces any password of the
// dsn; the dsn is never logged, and error messages never carry the password.
// Every session is read-only (default_transaction_read_only).
//
// Mode rows (the default) makes one document per row of each table, or of
// the result of query (a SELECT, instead of tables). Its external id is
// <table>/<key> (the table as configured; "query" for a query) where key is
// key_column's value as PostgreSQL prints it; its title is title_column's
// value, else the external id; its content is the row as "column: value"
// lines (NULLs left out); its attributes are the row as JSON (values over
// 4 KiB left out, named in metadata.extra.omitted_attributes). Rows are
// streamed in key order; none is held in memory beyond the one at hand.
//
// Mode schema makes one document per table (or view): external id the
// qualified name, content its DDL rebuilt from the catalog (columns, types,
// defaults, nullability, primary key and other constraints, comments), also
// in metadata.extra.ddl. Without tables it covers every table and view
// outside the system schemas.
//
// Incremental syncs: with cursor_column (an updated_at-style column that
// grows when a row changes), an incremental sync reads the rows whose cursor
// is at or after the greatest value the checkpoint saw, for each table, in
// (cursor, key) order. To be exact about ties, rows that share the greatest
// value but commit later, the checkpoint keeps the keys already read at that
// value and only those are skipped; when they exceed 8 KiB of text (a bulk
// load stamped with one timestamp), it keeps the greatest key instead and
// rows at that value with a smaller key that commit later are missed until a
// full sync. Rows whose change commits with a cursor older than one already
// read (a long transaction that stamped now() early) are missed likewise, as
// are changes that do not move the cursor: stamp the cursor with
// clock_timestamp() in a trigger, or run full syncs now and then. Without
// cursor_column, an incremental sync reads every row again (the catalog
// skips the unchanged ones). An incremental sync reports no deletions.
//
// Deletions: a full sync emits every row, and the manager deletes the
// documents a completed full sync did not see. A full sync reads each table
// in one repeatable-read snapshot and saves a checkpoint every
// checkpoint_every rows (default 1000): a resumed attempt continues after the
// last key it saved, in a new snapshot, so rows emitted before the
// interruption and deleted since stay in the catalog until the next full
// sync. In schema mode an incremental sync emits every table again and
// reports the tables gone since the previous sync as deleted.
//
// Its connection test connects, runs SELECT 1 and checks that the tables
// (or the query) and the named columns exist. The action list_tables lists
// the tables and views the connection can see.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Name is the connector's type name.
const Name = "postgres"

// The modes of a source.
const (
	ModeRows   = "rows"
	ModeSchema = "schema"
)

const (
	defaultCheckpointEvery = 1000
	// QueryLabel stands for the table in the external ids of query mode.
	QueryLabel = "query"
	// maxAttributeSize bounds one attribute value (its JSON).
	maxAttributeSize = 4 << 10
	// maxExternalIDLen is the longest external id the worker accepts
	// (events.MaxExternalIDLen; this package imports only pkg/connector).
	maxExternalIDLen = 1024
	// maxTieBytes bounds the keys a checkpoint keeps for one table.
	maxTieBytes = 8 << 10
)

const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["dsn"],
  "additionalProperties": false,
  "properties": {
    "dsn": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "libpq connection string: postgres://user@host:port/db?sslmode=… or key=value pairs. Put the password in the source's credentials ({\"password\": \"…\"}), not here: the config is not secret."},
    "mode": {"enum": ["rows", "schema"], "description": "rows (default): one document per row; schema: one document per table, its DDL."},
    "tables": {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": true, "items": {"type": "string", "minLength": 1, "maxLength": 300}, "description": "Tables or views to read, optionally schema-qualified (schema.table); quote mixed-case names as in SQL. In schema mode, default: every table and view."},
    "query": {"type": "string", "minLength": 1, "maxLength": 65536, "description": "A SELECT whose rows are the documents, instead of tables (rows mode only)."},
    "key_column": {"type": "string", "minLength": 1, "maxLength": 63, "description": "The column that identifies a row; external ids are <table>/<key>. Required in rows mode."},
    "title_column": {"type": "string", "minLength": 1, "maxLength": 63, "description": "The column whose value is the document title. Default: the external id."},
    "cursor_column": {"type": "string", "minLength": 1, "maxLength": 63, "description": "An updated_at-style column that grows when a row changes; incremental syncs read the rows at or after the greatest value seen."},
    "checkpoint_every": {"type": "integer", "minimum": 1, "description": "Save a resumable checkpoint every this many rows. Default 1000."}
  },
  "if": {"required": ["mode"], "properties": {"mode": {"const": "schema"}}},
  "then": {"not": {"required": ["query"]}},
  "else": {"required": ["key_column"], "oneOf": [{"required": ["tables"]}, {"required": ["query"]}]}
}`

// Config is the source configuration.
type Config struct {
	DSN             string   `json:"dsn"`
	Mode            string   `json:"mode,omitempty"`
	Tables          []string `json:"tables,omitempty"`
	Query           string   `json:"query,omitempty"`
	KeyColumn       string   `json:"key_column,omitempty"`
	TitleColumn     string   `json:"title_column,omitempty"`
	CursorColumn    string   `json:"cursor_column,omitempty"`
	CheckpointEvery int      `json:"checkpoint_every,omitempty"`
}

// Credentials are the source's credentials.
type Credentials struct {
	// Password replaces the dsn's password.
	Password string `json:"password,omitempty"`
}

// ConfigError is a configuration that cannot work: the worker's schema check
// passed but the values do not make sense, or the database has no such
// table or column.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return "postgres config: " + e.Msg }

func configErrorf(format string, args ...any) error {
	return &ConfigError{Msg: fmt.Sprintf(format, args...)}
}

func decodeConfig(raw json.RawMessage) (*Config, error) {
	var cfg Config
	if len(raw) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return nil, &ConfigError{Msg: "does not decode: " + err.Error()}
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func (c *Config) validate() error {
	if c.Mode == "" {
		c.Mode = ModeRows
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = defaultCheckpointEvery
	}
	c.Query = strings.TrimRight(strings.TrimSpace(c.Query), "; \t\r\n")
	switch {
	case strings.TrimSpace(c.DSN) == "":
		return configErrorf("dsn is required")
	case c.Mode != ModeRows && c.Mode != ModeSchema:
		return configErrorf("mode %q is not rows or schema", c.Mode)
	case c.Mode == ModeSchema && c.Query != "":
		return configErrorf("schema mode reads tables, not a query")
	case c.Mode == ModeRows && len(c.Tables) > 0 && c.Query != "":
		return configErrorf("give tables or a query, not both")
	case c.Mode == ModeRows && len(c.Tables) == 0 && c.Query == "":
		return configErrorf("rows mode needs tables or a query")
	case c.Mode == ModeRows && c.KeyColumn == "":
		return configErrorf("rows mode needs key_column")
	}
	seen := map[string]bool{}
	for _, t := range c.Tables {
		t = strings.TrimSpace(t)
		if t == "" || seen[t] {
			return configErrorf("table names must be non-empty and unique")
		}
		seen[t] = true
	}
	return nil
}

// Connector reads PostgreSQL.
type Connector struct{}

// New returns the PostgreSQL connector.
func New() *Connector { return &Connector{} }

// Manifest implements connector.Connector.
func (*Connector) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:         Name,
		Version:      "1.0.0",
		Description:  "PostgreSQL tables or a query, one document per row; or their schema, one document per table",
		SyncModes:    []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(configSchema),
		Actions:      actions,
	}
}

// Sync implements connector.Connector.
func (c *Connector) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	cfg, err := decodeConfig(req.Config)
	if err != nil {
		return err
	}
	var prev Checkpoint
	if _, err := req.DecodeCheckpoint(&prev); err != nil {
		// A checkpoint of another shape (an older version) is no position:
		// start over.
		sc.Logger().Warn("checkpoint does not decode; reading everything", errField(err))
		prev = Checkpoint{}
	}
	if dsnHasPassword(cfg.DSN) {
		sc.Logger().Warn("the dsn carries a password; the source's config is not secret: put the password in its credentials")
	}
	conn, err := connect(ctx, cfg, req.Credentials)
	if err != nil {
		return err
	}
	defer closeConn(conn)

	if cfg.Mode == ModeSchema {
		return c.syncSchema(ctx, conn, cfg, req, &prev, sc)
	}
	s := &rowSync{cfg: cfg, conn: conn, sc: sc, log: sc.Logger()}
	return s.run(ctx, req, &prev)
}
