package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary-sync/tributary/internal/connectors/connectortest"
	"github.com/tributary-sync/tributary/internal/connectors/postgres"
	"github.com/tributary-sync/tributary/internal/testutil/pgtest"
	"github.com/tributary-sync/tributary/pkg/connector"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

// fixture is a database with a table items of three rows.
func fixture(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.Need(t, pg).NewDatabase(t)
	db.Exec(t, `CREATE TABLE items (
		id integer PRIMARY KEY,
		title text NOT NULL,
		body text,
		price numeric(10,2),
		tags text[],
		data jsonb,
		updated_at timestamptz NOT NULL DEFAULT now()
	)`)
	db.Exec(t, `INSERT INTO items (id, title, body, price, tags, data, updated_at) VALUES
		(1, 'First', 'hello', 9.99, '{a,b}', '{"k": 1}', '2024-01-01T00:00:00Z'),
		(2, 'Second', NULL, 0, '{}', NULL, '2024-01-02T00:00:00Z'),
		(3, 'Third', 'line one
line two', NULL, NULL, '[1,2]', '2024-01-03T00:00:00Z')`)
	return db
}

type sync struct {
	cfg        map[string]any
	creds      any
	mode       connector.SyncMode
	checkpoint json.RawMessage
	resumed    bool
	after      func(connectortest.Event, int) error
}

func (s sync) run(ctx context.Context, t *testing.T) (*connectortest.Recorder, error) {
	t.Helper()
	cfg, err := json.Marshal(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := &connector.SyncRequest{SourceID: "src", RunID: "run", Mode: s.mode, Config: cfg, Checkpoint: s.checkpoint, Resumed: s.resumed, Attempt: 1}
	if req.Mode == "" {
		req.Mode = connector.Full
	}
	if s.creds != nil {
		if req.Credentials, err = json.Marshal(s.creds); err != nil {
			t.Fatal(err)
		}
	}
	rec := connectortest.New(t)
	rec.After = s.after
	return rec, postgres.New().Sync(ctx, req, rec)
}

func (s sync) must(t *testing.T) *connectortest.Recorder {
	t.Helper()
	rec, err := s.run(t.Context(), t)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if _, ok := rec.Final(); !ok {
		t.Fatal("sync returned nil without Complete")
	}
	return rec
}

func rowsConfig(db *pgtest.Database, extra map[string]any) (map[string]any, map[string]any) {
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"items"}, "key_column": "id",
		"title_column": "title", "cursor_column": "updated_at"}
	for k, v := range extra {
		if v == nil {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	return cfg, map[string]any{"password": db.Server.Password}
}

func content(t *testing.T, rec *connectortest.Recorder, doc connector.Document) string {
	t.Helper()
	c, ok := rec.ContentOf(doc)
	if !ok {
		t.Fatalf("%s: no content", doc.ExternalID)
	}
	return string(c.Data)
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func checkpointOf(t *testing.T, raw json.RawMessage) postgres.Checkpoint {
	t.Helper()
	var cp postgres.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatalf("checkpoint %s: %v", raw, err)
	}
	return cp
}

func TestFullSyncRows(t *testing.T) {
	db := fixture(t)
	cfg, creds := rowsConfig(db, nil)
	rec := sync{cfg: cfg, creds: creds}.must(t)

	if got := rec.IDs(connectortest.Emit); !slices.Equal(got, []string{"items/1", "items/2", "items/3"}) {
		t.Fatalf("emitted %v", got)
	}
	if n := rec.Scanned(); n != 3 {
		t.Errorf("scanned %d", n)
	}
	docs := rec.Docs()
	d1 := docs["items/1"]
	if d1.Title != "First" || d1.Metadata.MimeType != "text/plain" || !d1.Permissions.Public {
		t.Errorf("doc 1: %+v", d1)
	}
	want := "id: 1\ntitle: First\nbody: hello\nprice: 9.99\ntags: [\"a\",\"b\"]\ndata: {\"k\":1}\nupdated_at: 2024-01-01T00:00:00+00:00\n"
	if got := content(t, rec, d1); got != want {
		t.Errorf("content of 1:\n%s\nwant:\n%s", got, want)
	}
	if d1.Metadata.Size != int64(len(want)) {
		t.Errorf("size %d, want %d", d1.Metadata.Size, len(want))
	}
	if d1.Metadata.UpdatedAt == nil || !d1.Metadata.UpdatedAt.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("updated_at %v", d1.Metadata.UpdatedAt)
	}
	if d1.Metadata.Extra["table"] != "items" || d1.Metadata.Extra["key"] != "1" {
		t.Errorf("extra %v", d1.Metadata.Extra)
	}
	attrs, _ := json.Marshal(d1.Attributes)
	if string(attrs) != `{"body":"hello","data":{"k":1},"id":1,"price":9.99,"tags":["a","b"],"title":"First","updated_at":"2024-01-01T00:00:00+00:00"}` {
		t.Errorf("attributes %s", attrs)
	}
	// NULLs are left out of the content, kept in the attributes.
	d2 := docs["items/2"]
	if got := content(t, rec, d2); strings.Contains(got, "body") || strings.Contains(got, "data") {
		t.Errorf("content of 2 shows NULLs:\n%s", got)
	}
	if v, ok := d2.Attributes["body"]; !ok || v != nil {
		t.Errorf("attribute body of 2: %v %v", v, ok)
	}
	if got := content(t, rec, docs["items/3"]); !strings.Contains(got, "body: line one\nline two\n") {
		t.Errorf("content of 3:\n%s", got)
	}

	final, _ := rec.Final()
	cp := checkpointOf(t, final)
	st := cp.Tables["items"]
	if st == nil || st.Cursor == nil || *st.Cursor != "2024-01-03 00:00:00+00" || !slices.Equal(st.Keys, []string{"3"}) || cp.Full != nil {
		t.Fatalf("final checkpoint %s", final)
	}

	// Without title_column the title is the external id; a schema-qualified
	// table keeps its name in the ids.
	cfg, _ = rowsConfig(db, map[string]any{"title_column": nil, "tables": []string{"public.items"}})
	rec = sync{cfg: cfg, creds: creds}.must(t)
	if d := rec.Docs()["public.items/2"]; d.Title != "public.items/2" {
		t.Errorf("untitled: %+v", d)
	}
}

func TestIncremental(t *testing.T) {
	db := fixture(t)
	cfg, creds := rowsConfig(db, nil)
	full := sync{cfg: cfg, creds: creds}.must(t)
	cp, _ := full.Final()

	// An insert and an update move the cursor; a row changed without moving
	// it is not seen.
	db.Exec(t, `INSERT INTO items (id, title, updated_at) VALUES (4, 'Fourth', '2024-02-01T00:00:00Z')`)
	db.Exec(t, `UPDATE items SET title = 'First, edited', updated_at = '2024-02-02T00:00:00Z' WHERE id = 1`)
	db.Exec(t, `UPDATE items SET title = 'Second, quietly' WHERE id = 2`)
	inc := sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := inc.IDs(connectortest.Emit, connectortest.Update, connectortest.Delete); !slices.Equal(got, []string{"items/4", "items/1"}) {
		t.Fatalf("incremental reported %v, want items/4 then items/1", got)
	}
	if got := inc.IDs(connectortest.Update); len(got) != 2 {
		t.Errorf("incremental rows are updates: %v", inc.IDs(connectortest.Emit))
	}
	if inc.Docs()["items/1"].Title != "First, edited" {
		t.Errorf("updated title %q", inc.Docs()["items/1"].Title)
	}
	cp, _ = inc.Final()

	// Nothing changed: nothing reported.
	idle := sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := idle.IDs(connectortest.Emit, connectortest.Update); len(got) != 0 {
		t.Fatalf("idle incremental reported %v", got)
	}
	if cp2, _ := idle.Final(); string(cp2) != string(cp) {
		t.Errorf("idle checkpoint moved: %s -> %s", cp, cp2)
	}

	// Another cursor column is another position: everything again.
	cfg2, _ := rowsConfig(db, map[string]any{"cursor_column": "id"})
	again := sync{cfg: cfg2, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := again.IDs(connectortest.Update); len(got) != 4 {
		t.Errorf("a new cursor column reads everything: %v", got)
	}

	// Without cursor_column an incremental sync reads every row.
	cfg3, _ := rowsConfig(db, map[string]any{"cursor_column": nil})
	all := sync{cfg: cfg3, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := all.IDs(connectortest.Update); len(got) != 4 {
		t.Errorf("no cursor: %v", got)
	}
}

// TestIncrementalTies: rows that share the greatest cursor value seen but
// commit later are read by the next sync, and the ones already read are not
// read again.
func TestIncrementalTies(t *testing.T) {
	db := pgtest.Need(t, pg).NewDatabase(t)
	db.Exec(t, `CREATE TABLE ev (k text PRIMARY KEY, at timestamptz NOT NULL)`)
	db.Exec(t, `INSERT INTO ev VALUES ('b', '2024-05-01T10:00:00Z'), ('d', '2024-05-01T10:00:00Z'), ('a', '2024-04-01T00:00:00Z')`)
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"ev"}, "key_column": "k", "cursor_column": "at"}
	creds := map[string]any{"password": db.Server.Password}

	rec := sync{cfg: cfg, creds: creds}.must(t)
	cp, _ := rec.Final()
	if st := checkpointOf(t, cp).Tables["ev"]; !slices.Equal(st.Keys, []string{"b", "d"}) {
		t.Fatalf("full sync ties: %s", cp)
	}

	// Same timestamp, committed later, keys before and after the ones read.
	db.Exec(t, `INSERT INTO ev VALUES ('c', '2024-05-01T10:00:00Z'), ('0', '2024-05-01T10:00:00Z')`)
	rec = sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := rec.IDs(connectortest.Update); !slices.Equal(got, []string{"ev/0", "ev/c"}) {
		t.Fatalf("ties committed later: got %v, want ev/0 ev/c", got)
	}
	cp, _ = rec.Final()
	if st := checkpointOf(t, cp).Tables["ev"]; !slices.Equal(sorted(st.Keys), []string{"0", "b", "c", "d"}) {
		t.Fatalf("ties after incremental: %s", cp)
	}
	rec = sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := rec.IDs(connectortest.Update); len(got) != 0 {
		t.Fatalf("nothing new, got %v", got)
	}

	// A newer value resets the ties.
	db.Exec(t, `INSERT INTO ev VALUES ('e', '2024-05-02T00:00:00Z')`)
	rec = sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	cp, _ = rec.Final()
	if got := rec.IDs(connectortest.Update); !slices.Equal(got, []string{"ev/e"}) {
		t.Fatalf("newer: %v", got)
	}
	if st := checkpointOf(t, cp).Tables["ev"]; !slices.Equal(st.Keys, []string{"e"}) || *st.Cursor != "2024-05-02 00:00:00+00" {
		t.Fatalf("checkpoint after newer: %s", cp)
	}
}

// TestIncrementalTieOverflow: a bulk load with one timestamp makes more ties
// than the checkpoint keeps; it then keeps the greatest key, and stays
// bounded.
func TestIncrementalTieOverflow(t *testing.T) {
	db := pgtest.Need(t, pg).NewDatabase(t)
	db.Exec(t, `CREATE TABLE bulk (k text PRIMARY KEY, at timestamptz NOT NULL)`)
	db.Exec(t, `INSERT INTO bulk SELECT 'key-' || lpad(i::text, 6, '0') || repeat('x', 20), '2024-05-01T10:00:00Z' FROM generate_series(1, 2000) i`)
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"bulk"}, "key_column": "k", "cursor_column": "at"}
	creds := map[string]any{"password": db.Server.Password}
	rec := sync{cfg: cfg, creds: creds}.must(t)
	if n := len(rec.IDs(connectortest.Emit)); n != 2000 {
		t.Fatalf("emitted %d", n)
	}
	cp, _ := rec.Final()
	if len(cp) > 1024 {
		t.Fatalf("checkpoint of %d bytes", len(cp))
	}
	st := checkpointOf(t, cp).Tables["bulk"]
	if st.AfterKey == nil || *st.AfterKey != "key-002000"+strings.Repeat("x", 20) || st.Keys != nil {
		t.Fatalf("overflowed checkpoint %s", cp)
	}
	db.Exec(t, `INSERT INTO bulk VALUES ('key-999999', '2024-05-01T10:00:00Z')`)
	rec = sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := rec.IDs(connectortest.Update); !slices.Equal(got, []string{"bulk/key-999999"}) {
		t.Fatalf("after overflow: %v", got)
	}
}

// TestFullSyncResume: a full sync stopped at its second checkpoint resumes
// after the last key it saved, and the two attempts together emit every row
// once.
func TestFullSyncResume(t *testing.T) {
	db := pgtest.Need(t, pg).NewDatabase(t)
	db.Exec(t, `CREATE TABLE a (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT '2024-01-01Z')`)
	db.Exec(t, `CREATE TABLE b (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT '2024-01-01Z')`)
	db.Exec(t, `INSERT INTO a SELECT generate_series(1, 5)`)
	db.Exec(t, `INSERT INTO b SELECT generate_series(1, 5)`)
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"a", "b"}, "key_column": "id", "cursor_column": "at", "checkpoint_every": 3}
	creds := map[string]any{"password": db.Server.Password}

	first, err := sync{cfg: cfg, creds: creds, after: connectortest.StopAtCheckpoint(2)}.run(t.Context(), t)
	if !errors.Is(err, connector.ErrStopRequested) {
		t.Fatalf("first attempt: %v", err)
	}
	if got := first.IDs(connectortest.Emit); !slices.Equal(got, []string{"a/1", "a/2", "a/3", "a/4", "a/5", "b/1"}) {
		t.Fatalf("first attempt emitted %v", got)
	}
	last := checkpointOf(t, first.LastCheckpoint())
	if last.Full == nil || last.Full.Table != "b" || last.Full.AfterKey != "1" || last.Tables["a"] == nil {
		t.Fatalf("partial checkpoint %s", first.LastCheckpoint())
	}
	second := sync{cfg: cfg, creds: creds, checkpoint: first.LastCheckpoint(), resumed: true}.must(t)
	if got := second.IDs(connectortest.Emit); !slices.Equal(got, []string{"b/2", "b/3", "b/4", "b/5"}) {
		t.Fatalf("resumed attempt emitted %v", got)
	}
	cp := checkpointOf(t, mustFinal(t, second))
	if cp.Full != nil || cp.Tables["a"] == nil || cp.Tables["b"] == nil {
		t.Fatalf("final %+v", cp)
	}

	// A new run (not resumed) with that partial checkpoint starts over.
	again := sync{cfg: cfg, creds: creds, checkpoint: first.LastCheckpoint()}.must(t)
	if n := len(again.IDs(connectortest.Emit)); n != 10 {
		t.Fatalf("new full run emitted %d", n)
	}
}

func mustFinal(t *testing.T, rec *connectortest.Recorder) json.RawMessage {
	t.Helper()
	raw, ok := rec.Final()
	if !ok {
		t.Fatal("not completed")
	}
	return raw
}

func TestQueryMode(t *testing.T) {
	db := fixture(t)
	db.Exec(t, `CREATE TABLE authors (item_id int, name text)`)
	db.Exec(t, `INSERT INTO authors VALUES (1, 'Ann'), (3, 'Bob')`)
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "key_column": "ref", "title_column": "heading", "cursor_column": "changed",
		"query": `SELECT i.id AS ref, i.title || ' by ' || a.name AS heading, i.updated_at AS changed
			FROM items i JOIN authors a ON a.item_id = i.id;`}
	creds := map[string]any{"password": db.Server.Password}
	rec := sync{cfg: cfg, creds: creds}.must(t)
	if got := rec.IDs(connectortest.Emit); !slices.Equal(got, []string{"query/1", "query/3"}) {
		t.Fatalf("emitted %v", got)
	}
	d := rec.Docs()["query/3"]
	if d.Title != "Third by Bob" || content(t, rec, d) != "ref: 3\nheading: Third by Bob\nchanged: 2024-01-03T00:00:00+00:00\n" {
		t.Fatalf("doc %+v: %q", d, content(t, rec, d))
	}
	cp := mustFinal(t, rec)
	db.Exec(t, `UPDATE items SET updated_at = '2025-01-01Z' WHERE id = 1`)
	rec = sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: cp}.must(t)
	if got := rec.IDs(connectortest.Update); !slices.Equal(got, []string{"query/1"}) {
		t.Fatalf("incremental query: %v", got)
	}

	// A long title is cut at 1000 bytes, between characters.
	cfg["query"] = `SELECT 1 AS ref, repeat('é', 600) AS heading, now() AS changed`
	rec = sync{cfg: cfg, creds: creds}.must(t)
	if title := rec.Docs()["query/1"].Title; len(title) != 1000 || !utf8.ValidString(title) {
		t.Fatalf("long title: %d bytes", len(title))
	}

	// A NULL key is an error for that row; the sync goes on.
	cfg["query"] = `SELECT NULLIF(id, 2) AS ref, title AS heading, updated_at AS changed FROM items`
	rec = sync{cfg: cfg, creds: creds}.must(t)
	if got := rec.IDs(connectortest.Emit); !slices.Equal(got, []string{"query/1", "query/3"}) {
		t.Fatalf("emitted %v", got)
	}
	if errs := rec.IDs(connectortest.Error); len(errs) != 1 {
		t.Fatalf("errors %v", errs)
	}
}

func TestSchemaMode(t *testing.T) {
	db := fixture(t)
	db.Exec(t, `CREATE SCHEMA "Sales"`)
	db.Exec(t, `CREATE TABLE "Sales"."Order Lines" (
		order_id bigint GENERATED ALWAYS AS IDENTITY,
		item_id integer NOT NULL REFERENCES items (id),
		qty integer NOT NULL DEFAULT 1 CHECK (qty > 0),
		total numeric GENERATED ALWAYS AS (qty * 2) STORED,
		"Note" varchar(200),
		PRIMARY KEY (order_id, item_id),
		UNIQUE ("Note")
	)`)
	db.Exec(t, `COMMENT ON TABLE "Sales"."Order Lines" IS 'What''s ordered'`)
	db.Exec(t, `COMMENT ON COLUMN "Sales"."Order Lines".qty IS 'how many'`)
	db.Exec(t, `CREATE VIEW cheap AS SELECT id, title FROM items WHERE price < 5`)
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "mode": "schema"}
	creds := map[string]any{"password": db.Server.Password}

	rec := sync{cfg: cfg, creds: creds}.must(t)
	if got := rec.IDs(connectortest.Emit); !slices.Equal(got, []string{"Sales.Order Lines", "public.cheap", "public.items"}) {
		t.Fatalf("emitted %v", got)
	}
	docs := rec.Docs()
	ddl := content(t, rec, docs["Sales.Order Lines"])
	want := `CREATE TABLE "Sales"."Order Lines" (
    order_id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    item_id integer NOT NULL,
    qty integer DEFAULT 1 NOT NULL,
    total numeric GENERATED ALWAYS AS ((qty * 2)) STORED,
    "Note" character varying(200),
    CONSTRAINT "Order Lines_pkey" PRIMARY KEY (order_id, item_id),
    CONSTRAINT "Order Lines_Note_key" UNIQUE ("Note"),
    CONSTRAINT "Order Lines_item_id_fkey" FOREIGN KEY (item_id) REFERENCES items(id),
    CONSTRAINT "Order Lines_qty_check" CHECK (qty > 0)
);
COMMENT ON TABLE "Sales"."Order Lines" IS 'What''s ordered';
COMMENT ON COLUMN "Sales"."Order Lines".qty IS 'how many';
`
	if ddl != want {
		t.Errorf("DDL:\n%s\nwant:\n%s", ddl, want)
	}
	if docs["Sales.Order Lines"].Metadata.Extra["ddl"] != ddl {
		t.Error("extra.ddl differs from the content")
	}
	attrs, _ := json.Marshal(docs["Sales.Order Lines"].Attributes)
	if !strings.Contains(string(attrs), `"primary_key":["order_id","item_id"]`) || !strings.Contains(string(attrs), `{"name":"Note","type":"character varying(200)","nullable":true}`) {
		t.Errorf("attributes %s", attrs)
	}
	if v := content(t, rec, docs["public.cheap"]); !strings.HasPrefix(v, "CREATE VIEW public.cheap AS\n SELECT") {
		t.Errorf("view DDL:\n%s", v)
	}

	// The DDL is valid SQL: it makes the same table in another database.
	other := pg.NewDatabase(t)
	other.Exec(t, `CREATE SCHEMA "Sales"`)
	other.Exec(t, content(t, rec, docs["public.items"]))
	other.Exec(t, ddl)
	cfg2 := map[string]any{"dsn": other.DSNWithoutPassword(), "mode": "schema", "tables": []string{`"Sales"."Order Lines"`}}
	rec2 := sync{cfg: cfg2, creds: creds}.must(t)
	if got := content(t, rec2, rec2.Docs()["Sales.Order Lines"]); got != ddl {
		t.Errorf("DDL after a round trip:\n%s", got)
	}

	// Incremental: every table again, and the dropped ones deleted.
	db.Exec(t, `DROP VIEW cheap`)
	inc := sync{cfg: cfg, creds: creds, mode: connector.Incremental, checkpoint: mustFinal(t, rec)}.must(t)
	if got := inc.IDs(connectortest.Delete); !slices.Equal(got, []string{"public.cheap"}) {
		t.Fatalf("deleted %v", got)
	}
	if got := inc.IDs(connectortest.Update); len(got) != 2 {
		t.Fatalf("updated %v", got)
	}
}

func TestBadConfig(t *testing.T) {
	db := fixture(t)
	creds := map[string]any{"password": db.Server.Password}
	dsn := db.DSNWithoutPassword()
	for _, tc := range []struct {
		name string
		cfg  any
		want string
	}{
		{"garbage", "not an object", "does not decode"},
		{"unknown field", map[string]any{"dsn": dsn, "tables": []string{"items"}, "key_column": "id", "tabels": 1}, "unknown field"},
		{"no dsn", map[string]any{"tables": []string{"items"}, "key_column": "id"}, "dsn is required"},
		{"no key column", map[string]any{"dsn": dsn, "tables": []string{"items"}}, "needs key_column"},
		{"tables and query", map[string]any{"dsn": dsn, "tables": []string{"items"}, "query": "SELECT 1", "key_column": "id"}, "not both"},
		{"bad mode", map[string]any{"dsn": dsn, "mode": "columns", "tables": []string{"items"}, "key_column": "id"}, "not rows or schema"},
		{"unknown table", map[string]any{"dsn": dsn, "tables": []string{"nope"}, "key_column": "id"}, `table "nope" does not exist`},
		{"unknown schema", map[string]any{"dsn": dsn, "tables": []string{"nope.items"}, "key_column": "id"}, `"nope.items"`},
		{"bad table name", map[string]any{"dsn": dsn, "tables": []string{"a b c"}, "key_column": "id"}, `table name "a b c"`},
		{"missing key column", map[string]any{"dsn": dsn, "tables": []string{"items"}, "key_column": "uid"}, `key_column "uid": table "items" has no such column`},
		{"missing cursor column", map[string]any{"dsn": dsn, "tables": []string{"items"}, "key_column": "id", "cursor_column": "mtime"}, `cursor_column "mtime"`},
		{"bad query", map[string]any{"dsn": dsn, "query": "SELEC 1", "key_column": "id"}, "query: syntax error"},
		{"query without key", map[string]any{"dsn": dsn, "query": "SELECT 1 AS x", "key_column": "id"}, `the query's result has no such column`},
		{"writing query", map[string]any{"dsn": dsn, "query": "DELETE FROM items RETURNING id", "key_column": "id"}, "query: syntax error"},
		{"bad dsn", map[string]any{"dsn": "postgres://u:s3cr3t@host:port/db", "tables": []string{"items"}, "key_column": "id"}, "dsn is not a PostgreSQL connection string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := json.Marshal(tc.cfg)
			credsRaw, _ := json.Marshal(creds)
			rec := connectortest.New(t)
			err := postgres.New().Sync(t.Context(), &connector.SyncRequest{Mode: connector.Full, Config: raw, Credentials: credsRaw}, rec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), db.Server.Password) {
				t.Fatalf("error shows a password: %v", err)
			}
			if len(rec.Events()) != 0 {
				t.Fatalf("events %v", rec.Events())
			}
			var ce *postgres.ConfigError
			if tc.name != "bad dsn" && !errors.As(err, &ce) {
				t.Errorf("not a ConfigError: %T", err)
			}
		})
	}
	var n int
	if err := db.Conn.QueryRow(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows left: %d %v", n, err)
	}
}

func TestTestConnection(t *testing.T) {
	db := fixture(t)
	c := postgres.New()
	test := func(cfg map[string]any, creds any) error {
		raw, _ := json.Marshal(cfg)
		req := &connector.ActionRequest{SourceID: "src", Config: raw}
		if creds != nil {
			req.Credentials, _ = json.Marshal(creds)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		return c.TestConnection(ctx, req)
	}
	cfg, creds := rowsConfig(db, nil)
	if err := test(cfg, creds); err != nil {
		t.Fatalf("ok connection: %v", err)
	}
	// The password may be in the dsn too.
	if err := test(map[string]any{"dsn": db.DSN(), "mode": "schema"}, nil); err != nil {
		t.Fatalf("password in the dsn: %v", err)
	}

	err := test(cfg, map[string]any{"password": "wrong-Pa55word"})
	if err == nil || !strings.Contains(err.Error(), "password authentication failed") || strings.Contains(err.Error(), "wrong-Pa55word") {
		t.Fatalf("wrong password: %v", err)
	}
	// The credentials' password replaces the dsn's.
	cfgBadDSN, _ := rowsConfig(db, map[string]any{"dsn": db.DSNWithoutPassword() + " password=stale"})
	if err := test(cfgBadDSN, creds); err != nil {
		t.Fatalf("credentials over the dsn: %v", err)
	}
	if err := test(cfg, nil); err == nil {
		t.Fatal("no password connected")
	}
	cfgMissing, _ := rowsConfig(db, map[string]any{"tables": []string{"items", "gone"}})
	if err := test(cfgMissing, creds); err == nil || !strings.Contains(err.Error(), `table "gone" does not exist`) {
		t.Fatalf("missing table: %v", err)
	}
	// Nothing listens there.
	cfgPort, _ := rowsConfig(db, map[string]any{"dsn": "host=127.0.0.1 port=1 user=x dbname=y connect_timeout=5"})
	if err := test(cfgPort, creds); err == nil || !strings.Contains(err.Error(), "connect to postgres") || strings.Contains(err.Error(), db.Server.Password) {
		t.Fatalf("closed port: %v", err)
	}
	if err := test(cfg, "not an object"); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("bad credentials: %v", err)
	}
}

func TestListTables(t *testing.T) {
	db := fixture(t)
	db.Exec(t, `CREATE SCHEMA other; CREATE TABLE other.t (x int); CREATE VIEW v AS SELECT 1 AS one`)
	cfg, creds := rowsConfig(db, nil)
	raw, _ := json.Marshal(cfg)
	cr, _ := json.Marshal(creds)
	res, err := postgres.New().ExecuteAction(t.Context(), &connector.ActionRequest{Action: "list_tables", Config: raw, Credentials: cr})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(res)
	want := `{"tables":[{"schema":"other","name":"t","kind":"table","estimated_rows":0,"readable":true},{"schema":"public","name":"items","kind":"table","estimated_rows":0,"readable":true},{"schema":"public","name":"v","kind":"view","estimated_rows":0,"readable":true}],"truncated":false}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	res, err = postgres.New().ExecuteAction(t.Context(), &connector.ActionRequest{Action: "list_tables", Params: json.RawMessage(`{"schema":"other"}`), Config: raw, Credentials: cr})
	if err != nil {
		t.Fatal(err)
	}
	if l := res.(postgres.TableList); len(l.Tables) != 1 || l.Tables[0].Name != "t" {
		t.Fatalf("schema other: %+v", l)
	}
}

// TestCancel: cancelling the context mid-table stops the sync promptly with
// the context's error.
func TestCancel(t *testing.T) {
	db := pgtest.Need(t, pg).NewDatabase(t)
	db.Exec(t, `CREATE TABLE big (id int PRIMARY KEY, body text)`)
	db.Exec(t, `INSERT INTO big SELECT i, repeat('x', 100) FROM generate_series(1, 20000) i`)
	cfg := map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"big"}, "key_column": "id"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s := sync{cfg: cfg, creds: map[string]any{"password": db.Server.Password}, after: func(e connectortest.Event, i int) error {
		if i == 9 {
			cancel()
		}
		return nil
	}}
	began := time.Now()
	rec, err := s.run(ctx, t)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if n := len(rec.IDs(connectortest.Emit)); n != 10 {
		t.Errorf("emitted %d after cancel at 10", n)
	}
	if rec.Refused() > 1 {
		t.Errorf("%d calls after cancel", rec.Refused())
	}
	if _, ok := rec.Final(); ok {
		t.Error("completed after cancel")
	}
}

func TestManifest(t *testing.T) {
	m := postgres.New().Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if !m.Supports(connector.Incremental) || m.Name != "postgres" {
		t.Fatalf("%+v", m)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.ConfigSchema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("postgres.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("postgres.json")
	if err != nil {
		t.Fatal(err)
	}
	for cfg, ok := range map[string]bool{
		`{"dsn":"host=x","tables":["t"],"key_column":"id"}`:                                     true,
		`{"dsn":"host=x","query":"SELECT 1 AS id","key_column":"id","cursor_column":"c"}`:       true,
		`{"dsn":"host=x","mode":"schema"}`:                                                      true,
		`{"dsn":"host=x","mode":"schema","tables":["a"]}`:                                       true,
		`{"dsn":"host=x","mode":"rows","tables":["t"],"key_column":"id","checkpoint_every":10}`: true,
		`{"dsn":"host=x","tables":["t"]}`:                                                       false,
		`{"dsn":"host=x","key_column":"id"}`:                                                    false,
		`{"dsn":"host=x","tables":["t"],"query":"SELECT 1","key_column":"id"}`:                  false,
		`{"dsn":"host=x","mode":"schema","query":"SELECT 1"}`:                                   false,
		`{"dsn":"host=x","mode":"columns","tables":["t"],"key_column":"id"}`:                    false,
		`{"tables":["t"],"key_column":"id"}`:                                                    false,
		`{"dsn":"host=x","tables":[],"key_column":"id"}`:                                        false,
		`{"dsn":"host=x","tables":["t"],"key_column":"id","password":"x"}`:                      false,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); (err == nil) != ok {
			t.Errorf("%s: valid=%v, want %v (%v)", cfg, err == nil, ok, err)
		}
	}
}
