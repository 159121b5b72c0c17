package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
)

const defaultConnectTimeout = 15 * time.Second

// connect opens a read-only session with the dsn and the credentials'
// password.
func connect(ctx context.Context, cfg *Config, rawCreds json.RawMessage) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, dsnError(err)
	}
	var creds Credentials
	if len(rawCreds) > 0 && string(rawCreds) != "null" {
		if err := json.Unmarshal(rawCreds, &creds); err != nil {
			// The message of a JSON error could quote the secret.
			return nil, errors.New("postgres credentials: want an object like {\"password\": \"…\"}")
		}
	}
	if creds.Password != "" {
		pc.Password = creds.Password
	}
	pc.RuntimeParams["default_transaction_read_only"] = "on"
	if pc.RuntimeParams["application_name"] == "" {
		pc.RuntimeParams["application_name"] = "tributary"
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = defaultConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, redact(fmt.Errorf("connect to postgres (host %s, port %d, database %s): %w", pc.Host, pc.Port, pc.Database, unwrapConnect(err)), pc.Password)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// unwrapConnect drops pgconn's prefix (it repeats user and database) and
// keeps the server's or the network's reason.
func unwrapConnect(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Unwrap() != nil {
		return ce.Unwrap()
	}
	return err
}

// dsnError describes a dsn that does not parse without quoting it: pgx
// masks passwords only on a best-effort basis.
func dsnError(err error) error {
	msg := "dsn is not a PostgreSQL connection string (a postgres:// URL or key=value pairs)"
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		inner := pe.Unwrap()
		var ue *url.Error
		if errors.As(inner, &ue) {
			inner = ue.Err
		}
		if inner != nil && !strings.Contains(inner.Error(), pe.ConnString) {
			msg += ": " + inner.Error()
		}
	}
	return &ConfigError{Msg: msg}
}

// redacted is an error whose message has the password masked.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), password, "********"), err: err}
}

var kvPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// dsnHasPassword reports whether the dsn itself carries a password.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false
		}
		_, has := u.User.Password()
		return has || u.Query().Has("password")
	}
	return kvPassword.MatchString(dsn)
}

func errField(err error) zap.Field { return zap.String("error", err.Error()) }

// relation is a table or view found in the catalog.
type relation struct {
	OID     uint32
	Schema  string
	Name    string
	Kind    string // r, p, v, m or f
	Columns map[string]bool
}

func (r *relation) ident() string { return pgx.Identifier{r.Schema, r.Name}.Sanitize() }

func (r *relation) qualified() string { return r.Schema + "." + r.Name }

var kindNames = map[string]string{"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}

// lookup finds a table as the config names it: search_path applies to
// unqualified names, and quoted names keep their case, as in SQL.
func lookup(ctx context.Context, conn *pgx.Conn, name string) (*relation, error) {
	r := &relation{Columns: map[string]bool{}}
	err := conn.QueryRow(ctx, `SELECT c.oid, n.nspname, c.relname, c.relkind::text
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = pg_catalog.to_regclass($1)`, name).Scan(&r.OID, &r.Schema, &r.Name, &r.Kind)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, configErrorf("table %q does not exist (or is not visible to this user)", name)
	case err != nil:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, configErrorf("table name %q: %s", name, pe.Message)
		}
		return nil, fmt.Errorf("look up table %q: %w", name, err)
	}
	if _, ok := kindNames[r.Kind]; !ok {
		return nil, configErrorf("%q is not a table or view", name)
	}
	rows, err := conn.Query(ctx, `SELECT attname FROM pg_catalog.pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`, r.OID)
	if err != nil {
		return nil, fmt.Errorf("columns of %q: %w", name, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("columns of %q: %w", name, err)
	}
	for _, c := range cols {
		r.Columns[c] = true
	}
	return r, nil
}

// queryColumns returns the columns of the query's result, which checks that
// it parses and plans.
func queryColumns(ctx context.Context, conn *pgx.Conn, query string) (map[string]bool, error) {
	rows, err := conn.Query(ctx, "SELECT * FROM ("+query+") AS t LIMIT 0")
	if err == nil {
		rows.Close()
		err = rows.Err()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return nil, configErrorf("query: %s", pe.Message)
		}
		return nil, fmt.Errorf("query: %w", err)
	}
	cols := map[string]bool{}
	for _, f := range rows.FieldDescriptions() {
		cols[f.Name] = true
	}
	return cols, nil
}

func checkColumns(cfg *Config, what string, cols map[string]bool) error {
	for _, c := range []struct{ name, col string }{{"key_column", cfg.KeyColumn}, {"title_column", cfg.TitleColumn}, {"cursor_column", cfg.CursorColumn}} {
		if c.col != "" && !cols[c.col] {
			return configErrorf("%s %q: %s has no such column", c.name, c.col, what)
		}
	}
	return nil
}

// TestConnection implements connector.ConnectionTester: it connects, runs
// SELECT 1, and checks the tables (or the query) and the columns the
// config names.
func (c *Connector) TestConnection(ctx context.Context, req *connector.ActionRequest) error {
	cfg, err := decodeConfig(req.Config)
	if err != nil {
		return err
	}
	conn, err := connect(ctx, cfg, req.Credentials)
	if err != nil {
		return err
	}
	defer closeConn(conn)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("SELECT 1: %w", err)
	}
	if cfg.Mode == ModeRows {
		_, err := resolve(ctx, conn, cfg)
		return err
	}
	for _, t := range cfg.Tables {
		if _, err := lookup(ctx, conn, t); err != nil {
			return err
		}
	}
	return nil
}

var actions = []connector.ActionDefinition{{
	Name:        "list_tables",
	Description: "List the tables and views the connection can see (at most 1000), outside the system schemas",
	Parameters: []connector.ActionParameter{
		{Name: "schema", Type: "string", Description: "Only this schema."},
	},
}}

// maxListed bounds list_tables.
const maxListed = 1000

// TableInfo is one entry of list_tables.
type TableInfo struct {
	Schema        string `json:"schema"`
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	EstimatedRows int64  `json:"estimated_rows"`
	Readable      bool   `json:"readable"`
}

// TableList is the result of list_tables.
type TableList struct {
	Tables    []TableInfo `json:"tables"`
	Truncated bool        `json:"truncated"`
}

// ExecuteAction implements connector.ActionExecutor.
func (c *Connector) ExecuteAction(ctx context.Context, req *connector.ActionRequest) (any, error) {
	if req.Action != "list_tables" {
		return nil, fmt.Errorf("unknown action %q", req.Action)
	}
	var in struct {
		Schema *string `json:"schema"`
	}
	if err := req.DecodeParams(&in); err != nil {
		return nil, err
	}
	cfg, err := decodeConfig(req.Config)
	if err != nil {
		return nil, err
	}
	conn, err := connect(ctx, cfg, req.Credentials)
	if err != nil {
		return nil, err
	}
	defer closeConn(conn)
	rels, truncated, err := listRelations(ctx, conn, in.Schema, maxListed)
	if err != nil {
		return nil, err
	}
	out := TableList{Tables: []TableInfo{}, Truncated: truncated}
	for _, r := range rels {
		out.Tables = append(out.Tables, TableInfo{Schema: r.Schema, Name: r.Name, Kind: kindNames[r.Kind], EstimatedRows: r.rows, Readable: r.readable})
	}
	return out, nil
}

type listed struct {
	relation
	rows     int64
	readable bool
}

// listRelations lists the tables and views outside the system schemas (and
// not partitions), by schema and name; limit 0 means all.
func listRelations(ctx context.Context, conn *pgx.Conn, schema *string, limit int) ([]listed, bool, error) {
	q := `SELECT c.oid, n.nspname, c.relname, c.relkind::text, greatest(c.reltuples, 0)::bigint,
			pg_catalog.has_table_privilege(c.oid, 'SELECT')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
		  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
		  AND ($1::text IS NULL OR n.nspname = $1::text)
		ORDER BY n.nspname, c.relname`
	args := []any{schema}
	if limit > 0 {
		q += " LIMIT $2"
		args = append(args, limit+1)
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list tables: %w", err)
	}
	var out []listed
	var l listed
	_, err = pgx.ForEachRow(rows, []any{&l.OID, &l.Schema, &l.Name, &l.Kind, &l.rows, &l.readable}, func() error {
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("list tables: %w", err)
	}
	if limit > 0 && len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}
