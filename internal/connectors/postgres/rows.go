package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Checkpoint is the connector's checkpoint.
type Checkpoint struct {
	// Mode is the config's mode when it was saved.
	Mode string `json:"mode,omitempty"`
	// Tables holds the incremental position of each table (by its label:
	// the table as configured, or "query").
	Tables map[string]*TableState `json:"tables,omitempty"`
	// Full is set in the checkpoints a full sync saves while it runs.
	Full *FullProgress `json:"full,omitempty"`
	// SchemaTables lists the tables a schema-mode sync documented.
	SchemaTables []string `json:"schema_tables,omitempty"`
}

// TableState is the incremental position in one table.
type TableState struct {
	// Sig identifies what the position is about (table, query, key and
	// cursor columns); a position of another signature is ignored.
	Sig string `json:"sig"`
	// Cursor is the greatest cursor value read, as PostgreSQL prints it;
	// nil when no row with a cursor was read.
	Cursor *string `json:"cursor,omitempty"`
	// Keys are the keys of the rows read with that cursor value.
	Keys []string `json:"keys,omitempty"`
	// AfterKey replaces Keys when they grew over 8 KiB: every row at
	// Cursor with a key up to AfterKey was read.
	AfterKey *string `json:"after_key,omitempty"`
}

// FullProgress is where a full sync is.
type FullProgress struct {
	// Table is the label of the table being read; those before it in the
	// config are done.
	Table string `json:"table"`
	// AfterKey is the last key emitted from it.
	AfterKey string `json:"after_key"`
}

// source is one thing rows are read from: a table or the query.
type source struct {
	label string
	from  string // the FROM item
	sig   string
	rows  int64 // estimated, for the total
}

func resolve(ctx context.Context, conn *pgx.Conn, cfg *Config) ([]*source, error) {
	sig := func(label string) string {
		h := sha256.Sum256([]byte(strings.Join([]string{label, cfg.Query, cfg.KeyColumn, cfg.CursorColumn}, "\x00")))
		return hex.EncodeToString(h[:8])
	}
	if cfg.Query != "" {
		cols, err := queryColumns(ctx, conn, cfg.Query)
		if err != nil {
			return nil, err
		}
		if err := checkColumns(cfg, "the query's result", cols); err != nil {
			return nil, err
		}
		return []*source{{label: QueryLabel, from: "(" + cfg.Query + ")", sig: sig(QueryLabel), rows: -1}}, nil
	}
	var out []*source
	for _, t := range cfg.Tables {
		t = strings.TrimSpace(t)
		rel, err := lookup(ctx, conn, t)
		if err != nil {
			return nil, err
		}
		if err := checkColumns(cfg, fmt.Sprintf("table %q", t), rel.Columns); err != nil {
			return nil, err
		}
		var est int64 = -1
		if err := conn.QueryRow(ctx, "SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = $1", rel.OID).Scan(&est); err != nil {
			return nil, fmt.Errorf("size of %q: %w", t, err)
		}
		out = append(out, &source{label: t, from: rel.ident(), sig: sig(t), rows: est})
	}
	return out, nil
}

type rowSync struct {
	cfg  *Config
	conn *pgx.Conn
	sc   connector.SyncContext
	log  *zap.Logger
	cp   Checkpoint
	// since counts rows since the last saved checkpoint.
	since int
}

func ident(col string) string { return "t." + pgx.Identifier{col}.Sanitize() }

func (s *rowSync) run(ctx context.Context, req *connector.SyncRequest, prev *Checkpoint) error {
	srcs, err := resolve(ctx, s.conn, s.cfg)
	if err != nil {
		return err
	}
	s.cp = Checkpoint{Mode: ModeRows, Tables: map[string]*TableState{}}
	for _, src := range srcs {
		if st := prev.Tables[src.label]; st != nil && st.Sig == src.sig && prev.Mode == ModeRows {
			s.cp.Tables[src.label] = st
		}
	}
	if req.Mode == connector.Incremental && s.cfg.CursorColumn != "" {
		return s.incremental(ctx, srcs)
	}
	// A full sync, or an incremental one without a cursor: every row.
	start, after := 0, (*string)(nil)
	if req.Resumed && prev.Full != nil && req.Mode == connector.Full {
		for i, src := range srcs {
			if src.label == prev.Full.Table {
				start, after = i, &prev.Full.AfterKey
				s.log.Info("resuming the full sync", zap.String("table", src.label))
			}
		}
	}
	var total int64
	for _, src := range srcs {
		total += max(src.rows, 0)
	}
	if total > 0 {
		s.sc.SetTotal(int(total))
	}
	for i := start; i < len(srcs); i++ {
		if err := s.full(ctx, srcs[i], after, req.Mode == connector.Incremental); err != nil {
			return err
		}
		after = nil
	}
	s.cp.Full = nil
	return s.sc.Complete(ctx, &s.cp)
}

// full reads every row of src in one snapshot, in key order, after the key
// after when resuming.
func (s *rowSync) full(ctx context.Context, src *source, after *string, asUpdates bool) error {
	tx, err := s.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.queryErr(ctx, src, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	key := ident(s.cfg.KeyColumn)
	cursor := "NULL::text"
	var st *TableState
	if s.cfg.CursorColumn != "" {
		cursor = "(" + ident(s.cfg.CursorColumn) + ")::text"
		st = &TableState{Sig: src.sig}
		if err := tx.QueryRow(ctx, "SELECT (max("+ident(s.cfg.CursorColumn)+"))::text FROM "+src.from+" AS t").Scan(&st.Cursor); err != nil {
			return s.queryErr(ctx, src, err)
		}
	}
	q := "SELECT row_to_json(t.*)::text, (" + key + ")::text, " + cursor + " FROM " + src.from + " AS t"
	var args []any
	if after != nil {
		q += " WHERE " + key + " > $1"
		args = append(args, *after)
	}
	q += " ORDER BY " + key
	tie := tieTracker{st: st}
	err = s.scan(ctx, tx, src, q, args, func(r row) error {
		if st != nil && r.cursor != nil && st.Cursor != nil && *r.cursor == *st.Cursor {
			tie.add(*r.key)
		}
		if err := s.emit(ctx, src, r, asUpdates); err != nil {
			return err
		}
		if r.key != nil {
			return s.progress(ctx, &FullProgress{Table: src.label, AfterKey: *r.key})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if st != nil {
		s.cp.Tables[src.label] = st
	}
	return nil
}

// incremental reads, table after table, the rows at or after each table's
// position, in (cursor, key) order.
func (s *rowSync) incremental(ctx context.Context, srcs []*source) error {
	for _, src := range srcs {
		if err := s.incrementalOne(ctx, src); err != nil {
			return err
		}
	}
	return s.sc.Complete(ctx, &s.cp)
}

func (s *rowSync) incrementalOne(ctx context.Context, src *source) error {
	key, cur := ident(s.cfg.KeyColumn), ident(s.cfg.CursorColumn)
	q := "SELECT row_to_json(t.*)::text, (" + key + ")::text, (" + cur + ")::text FROM " + src.from + " AS t"
	var args []any
	prev := s.cp.Tables[src.label]
	seen := map[string]bool{}
	st := &TableState{Sig: src.sig}
	switch {
	case prev == nil || prev.Cursor == nil:
		// Everything: the first incremental sync of this table.
	case prev.AfterKey != nil:
		q += " WHERE " + cur + " > $1 OR (" + cur + " = $1 AND " + key + " > $2)"
		args = append(args, *prev.Cursor, *prev.AfterKey)
		st.Cursor, st.AfterKey = prev.Cursor, prev.AfterKey
	default:
		q += " WHERE " + cur + " >= $1"
		args = append(args, *prev.Cursor)
		for _, k := range prev.Keys {
			seen[k] = true
		}
		st.Cursor, st.Keys = prev.Cursor, slices.Clone(prev.Keys)
	}
	q += " ORDER BY " + cur + ", " + key
	s.cp.Tables[src.label] = st
	tie := tieTracker{st: st}
	for _, k := range st.Keys {
		tie.bytes += len(k)
	}
	return s.scan(ctx, s.conn, src, q, args, func(r row) error {
		if r.cursor != nil && st.Cursor != nil && *r.cursor == *st.Cursor && r.key != nil && seen[*r.key] {
			return nil // read by an earlier sync
		}
		if err := s.emit(ctx, src, r, true); err != nil {
			return err
		}
		if r.cursor != nil && r.key != nil {
			if st.Cursor == nil || *r.cursor != *st.Cursor {
				c := *r.cursor
				st.Cursor, st.Keys, st.AfterKey, tie.bytes = &c, nil, nil, 0
			}
			tie.add(*r.key)
		}
		return s.progress(ctx, nil)
	})
}

// tieTracker adds keys read at the state's cursor value, switching to
// AfterKey when they grow too many.
type tieTracker struct {
	st    *TableState
	bytes int
}

func (t *tieTracker) add(key string) {
	if t.st == nil || len(key) > maxExternalIDLen {
		// Such a row is an error, not a document: reading it again costs
		// little, and its key would swell the checkpoint.
		return
	}
	if t.st.AfterKey != nil || t.bytes+len(key) > maxTieBytes {
		k := key
		t.st.AfterKey, t.st.Keys = &k, nil
		return
	}
	t.st.Keys = append(t.st.Keys, key)
	t.bytes += len(key)
}

// progress saves a checkpoint every checkpoint_every rows.
func (s *rowSync) progress(ctx context.Context, full *FullProgress) error {
	s.since++
	if s.since < s.cfg.CheckpointEvery {
		return nil
	}
	s.since = 0
	s.cp.Full = full
	return s.sc.SaveCheckpoint(ctx, &s.cp)
}

type row struct {
	json   string
	key    *string
	cursor *string
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// scan streams the rows of q to fn.
func (s *rowSync) scan(ctx context.Context, db querier, src *source, q string, args []any, fn func(row) error) error {
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return s.queryErr(ctx, src, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.json, &r.key, &r.cursor); err != nil {
			return s.queryErr(ctx, src, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.queryErr(ctx, src, err)
	}
	return nil
}

func (s *rowSync) queryErr(ctx context.Context, src *source, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("read %s: %w", src.label, err)
}

// emit makes the row's document and reports it.
func (s *rowSync) emit(ctx context.Context, src *source, r row, updated bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.sc.IncrementScanned(1)
	if r.key == nil {
		return s.sc.EmitError(ctx, src.label, fmt.Errorf("a row of %s has a NULL %s", src.label, s.cfg.KeyColumn))
	}
	id := src.label + "/" + *r.key
	if len(id) > maxExternalIDLen {
		return s.sc.EmitError(ctx, src.label, fmt.Errorf("the key of a row of %s makes an external id over %d bytes", src.label, maxExternalIDLen))
	}
	doc, content, err := rowDocument(s.cfg, src.label, id, *r.key, r.json)
	if err != nil {
		return s.sc.EmitError(ctx, id, err)
	}
	cid, err := s.sc.Content().Save(ctx, content, "text/plain; charset=utf-8")
	if err != nil {
		return fmt.Errorf("store content of %s: %w", id, err)
	}
	doc.ContentID = cid
	if updated {
		return s.sc.EmitUpdated(ctx, doc)
	}
	return s.sc.Emit(ctx, doc)
}

type field struct {
	name  string
	value json.RawMessage
}

// decodeRow decodes a JSON object keeping the order of its fields.
func decodeRow(raw string) ([]field, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("row is not a JSON object")
	}
	var out []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("decode row: %w", err)
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("decode row: %w", err)
		}
		out = append(out, field{name: name, value: v})
	}
	return out, nil
}

// text is a JSON value as a line of content shows it: strings bare, NULL
// as "", anything else as compact JSON.
func text(v json.RawMessage) string {
	if bytes.Equal(v, []byte("null")) {
		return ""
	}
	var s string
	if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, v) == nil {
		return b.String()
	}
	return string(v)
}

// rowDocument makes a row's document and its content.
func rowDocument(cfg *Config, label, id, key, raw string) (connector.Document, string, error) {
	fields, err := decodeRow(raw)
	if err != nil {
		return connector.Document{}, "", err
	}
	var content strings.Builder
	attrs := make(map[string]any, len(fields))
	var omitted []string
	title := ""
	var updatedAt *time.Time
	for _, f := range fields {
		t := text(f.value)
		if !bytes.Equal(f.value, []byte("null")) {
			content.WriteString(f.name)
			content.WriteString(": ")
			content.WriteString(t)
			content.WriteByte('\n')
		}
		if f.name == cfg.TitleColumn {
			title = t
		}
		if f.name == cfg.CursorColumn {
			if ts, err := time.Parse(time.RFC3339Nano, t); err == nil {
				updatedAt = &ts
			}
		}
		if len(f.value) > maxAttributeSize {
			omitted = append(omitted, f.name)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(f.value))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return connector.Document{}, "", fmt.Errorf("decode column %s: %w", f.name, err)
		}
		attrs[f.name] = v
	}
	if title == "" {
		title = id
	}
	title = truncate(title, maxTitleLen)
	extra := map[string]any{"table": label, "key": key}
	if len(omitted) > 0 {
		extra["omitted_attributes"] = omitted
	}
	doc := connector.Document{
		ExternalID: id,
		Title:      title,
		Metadata: connector.Metadata{
			MimeType:  "text/plain",
			Size:      int64(content.Len()),
			Path:      id,
			UpdatedAt: updatedAt,
			Extra:     extra,
		},
		Permissions: connector.Permissions{Public: true},
		Attributes:  attrs,
	}
	return doc, content.String(), nil
}

// maxTitleLen bounds a title, in bytes.
const maxTitleLen = 1000

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
