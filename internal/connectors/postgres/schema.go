package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Column describes one column in a schema document's attributes.
type Column struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Nullable bool   `json:"nullable"`
}

// syncSchema emits one document per table: its DDL.
func (c *Connector) syncSchema(ctx context.Context, conn *pgx.Conn, cfg *Config, req *connector.SyncRequest, prev *Checkpoint, sc connector.SyncContext) error {
	var rels []relation
	if len(cfg.Tables) > 0 {
		for _, t := range cfg.Tables {
			r, err := lookup(ctx, conn, strings.TrimSpace(t))
			if err != nil {
				return err
			}
			rels = append(rels, *r)
		}
	} else {
		all, _, err := listRelations(ctx, conn, nil, 0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		for _, l := range all {
			if l.readable {
				rels = append(rels, l.relation)
			}
		}
	}
	sc.SetTotal(len(rels))
	done := map[string]bool{}
	cp := Checkpoint{Mode: ModeSchema, SchemaTables: []string{}}
	for i := range rels {
		r := &rels[i]
		sc.IncrementScanned(1)
		ddl, attrs, err := describe(ctx, conn, r)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := sc.EmitError(ctx, r.qualified(), err); err != nil {
				return err
			}
			continue
		}
		cid, err := sc.Content().Save(ctx, ddl, "text/plain; charset=utf-8")
		if err != nil {
			return fmt.Errorf("store the DDL of %s: %w", r.qualified(), err)
		}
		doc := connector.Document{
			ExternalID: r.qualified(),
			Title:      r.qualified(),
			ContentID:  cid,
			Metadata: connector.Metadata{
				MimeType: "application/sql",
				Size:     int64(len(ddl)),
				Path:     r.qualified(),
				Extra:    map[string]any{"ddl": ddl, "kind": kindNames[r.Kind]},
			},
			Permissions: connector.Permissions{Public: true},
			Attributes:  attrs,
		}
		if req.Mode == connector.Incremental {
			err = sc.EmitUpdated(ctx, doc)
		} else {
			err = sc.Emit(ctx, doc)
		}
		if err != nil {
			return err
		}
		done[r.qualified()] = true
		cp.SchemaTables = append(cp.SchemaTables, r.qualified())
	}
	// A full sync's deletions are the manager's sweep; an incremental one
	// reports the tables gone since the previous sync itself.
	if req.Mode == connector.Incremental && prev.Mode == ModeSchema {
		for _, t := range prev.SchemaTables {
			if !done[t] {
				if err := sc.EmitDeleted(ctx, t); err != nil {
					return err
				}
			}
		}
	}
	if len(cp.SchemaTables) > 10000 {
		// Bound the checkpoint: beyond this, incremental syncs report no
		// deletions (full syncs still do).
		sc.Logger().Warn("too many tables to remember; incremental syncs will not report dropped tables", zap.Int("tables", len(cp.SchemaTables)))
		cp.SchemaTables = nil
	}
	return sc.Complete(ctx, &cp)
}

// describe rebuilds the DDL of a table or view from the catalog.
func describe(ctx context.Context, conn *pgx.Conn, r *relation) (string, map[string]any, error) {
	rows, err := conn.Query(ctx, `SELECT pg_catalog.quote_ident(a.attname), a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
			pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
			pg_catalog.col_description(a.attrelid, a.attnum)
		FROM pg_catalog.pg_attribute a
		LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, r.OID)
	if err != nil {
		return "", nil, fmt.Errorf("columns of %s: %w", r.qualified(), err)
	}
	type col struct {
		name, plain, typ    string
		notNull             bool
		def, comment        *string
		identity, generated string
	}
	var cols []col
	var cl col
	if _, err := pgx.ForEachRow(rows, []any{&cl.name, &cl.plain, &cl.typ, &cl.notNull, &cl.def, &cl.identity, &cl.generated, &cl.comment}, func() error {
		cols = append(cols, cl)
		return nil
	}); err != nil {
		return "", nil, fmt.Errorf("columns of %s: %w", r.qualified(), err)
	}

	rows, err = conn.Query(ctx, `SELECT pg_catalog.quote_ident(conname), pg_catalog.pg_get_constraintdef(oid, true)
		FROM pg_catalog.pg_constraint
		WHERE conrelid = $1 AND contype IN ('p', 'u', 'f', 'c', 'x')
		ORDER BY CASE contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'f' THEN 2 ELSE 3 END, conname`, r.OID)
	if err != nil {
		return "", nil, fmt.Errorf("constraints of %s: %w", r.qualified(), err)
	}
	var cons []string
	var name, def string
	if _, err := pgx.ForEachRow(rows, []any{&name, &def}, func() error {
		cons = append(cons, "CONSTRAINT "+name+" "+def)
		return nil
	}); err != nil {
		return "", nil, fmt.Errorf("constraints of %s: %w", r.qualified(), err)
	}

	rows, err = conn.Query(ctx, `SELECT a.attname
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary
		ORDER BY pg_catalog.array_position(i.indkey::int2[], a.attnum)`, r.OID)
	if err != nil {
		return "", nil, fmt.Errorf("primary key of %s: %w", r.qualified(), err)
	}
	pk, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", nil, fmt.Errorf("primary key of %s: %w", r.qualified(), err)
	}
	if pk == nil {
		pk = []string{}
	}

	var tableComment *string
	var viewDef, partKey *string
	var id string
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
			pg_catalog.obj_description($1, 'pg_class'),
			CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef($1, true) END,
			CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef($1) END
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = $1`, r.OID).Scan(&id, &tableComment, &viewDef, &partKey); err != nil {
		return "", nil, fmt.Errorf("describe %s: %w", r.qualified(), err)
	}

	var b strings.Builder
	switch r.Kind {
	case "v", "m":
		kw := "VIEW"
		if r.Kind == "m" {
			kw = "MATERIALIZED VIEW"
		}
		fmt.Fprintf(&b, "CREATE %s %s AS\n%s\n", kw, id, strings.TrimRight(deref(viewDef), "\n"))
		if !strings.HasSuffix(strings.TrimSpace(b.String()), ";") {
			b.WriteString(";\n")
		}
	default:
		kw := "TABLE"
		if r.Kind == "f" {
			kw = "FOREIGN TABLE"
		}
		fmt.Fprintf(&b, "CREATE %s %s (\n", kw, id)
		var lines []string
		for _, c := range cols {
			l := "    " + c.name + " " + c.typ
			switch {
			case c.generated == "s":
				l += " GENERATED ALWAYS AS (" + deref(c.def) + ") STORED"
			case c.identity == "a":
				l += " GENERATED ALWAYS AS IDENTITY"
			case c.identity == "d":
				l += " GENERATED BY DEFAULT AS IDENTITY"
			case c.def != nil:
				l += " DEFAULT " + *c.def
			}
			if c.notNull {
				l += " NOT NULL"
			}
			lines = append(lines, l)
		}
		for _, c := range cons {
			lines = append(lines, "    "+c)
		}
		b.WriteString(strings.Join(lines, ",\n"))
		b.WriteString("\n)")
		if partKey != nil {
			b.WriteString(" PARTITION BY " + *partKey)
		}
		b.WriteString(";\n")
	}
	if tableComment != nil {
		fmt.Fprintf(&b, "COMMENT ON %s %s IS %s;\n", commentKind(r.Kind), id, literal(*tableComment))
	}
	for _, c := range cols {
		if c.comment != nil {
			fmt.Fprintf(&b, "COMMENT ON COLUMN %s.%s IS %s;\n", id, c.name, literal(*c.comment))
		}
	}

	columns := make([]Column, 0, len(cols))
	for _, c := range cols {
		columns = append(columns, Column{Name: c.plain, Type: c.typ, Nullable: !c.notNull})
	}
	attrs := map[string]any{
		"schema":      r.Schema,
		"table":       r.Name,
		"kind":        kindNames[r.Kind],
		"columns":     columns,
		"primary_key": pk,
	}
	return b.String(), attrs, nil
}

func commentKind(kind string) string {
	switch kind {
	case "v":
		return "VIEW"
	case "m":
		return "MATERIALIZED VIEW"
	case "f":
		return "FOREIGN TABLE"
	}
	return "TABLE"
}

// literal quotes s as an SQL string literal, for the DDL text (never for
// executing).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
