package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/testutil/pgtest"
	"github.com/tributary-sync/tributary/test/harness"
)

// TestPostgresSource syncs a table of a real PostgreSQL server through the
// HTTP API: the password only in the credentials, a connection test, a full
// sync, rows deleted and changed then a full sync that deletes their
// documents (the manager's sweep), an incremental sync, and a wrong password
// reported without showing it.
func TestPostgresSource(t *testing.T) {
	pg := pgtest.New(t)
	db := pg.NewDatabase(t)
	db.Exec(t, `CREATE TABLE articles (id int PRIMARY KEY, title text NOT NULL, body text, updated_at timestamptz NOT NULL)`)
	db.Exec(t, `INSERT INTO articles SELECT i, 'Article ' || i, 'text of article ' || i, '2024-01-01Z'::timestamptz + i * interval '1 minute' FROM generate_series(1, 50) i`)

	s := startManager(t)
	var src harness.Source
	s.Must(http.StatusCreated, "POST", "/v1/sources", map[string]any{
		"name": "articles", "connector": "postgres",
		"config": map[string]any{"dsn": db.DSNWithoutPassword(), "tables": []string{"articles"},
			"key_column": "id", "title_column": "title", "cursor_column": "updated_at", "checkpoint_every": 20},
		"credentials": map[string]any{"password": pg.Password},
	}, &src)

	var test struct {
		OK      bool   `json:"ok"`
		Message string `json:"message"`
	}
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/test-connection", nil, &test)
	if !test.OK {
		t.Fatalf("connection test: %+v", test)
	}

	r := s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	if r.Mode != "full" || r.Emitted != 50 || r.New != 50 || r.Errors != 0 {
		t.Fatalf("full sync: %+v", r)
	}
	base := "/v1/sources/" + src.ID + "/documents"
	var page documentPage
	s.Must(http.StatusOK, "GET", base+"?search=articles/7", nil, &page)
	if page.Total != 1 || page.Items[0].ExternalID != "articles/7" || page.Items[0].Title != "Article 7" {
		t.Fatalf("document articles/7: %+v", page)
	}
	code, _, body := get(t, s.Base+base+"/"+page.Items[0].ID+"/content")
	if code != http.StatusOK || !strings.Contains(body, "body: text of article 7\n") {
		t.Fatalf("content: %d %q", code, body)
	}

	// Rows deleted and one changed: a full sync emits what is there, and the
	// manager deletes the documents it did not see.
	db.Exec(t, `DELETE FROM articles WHERE id IN (3, 4, 5)`)
	db.Exec(t, `UPDATE articles SET title = 'Article 10, revised', updated_at = '2025-01-01Z' WHERE id = 10`)
	r = s.WaitStatus(s.Sync(src.ID, map[string]any{"mode": "full"}).ID, "completed", time.Minute)
	if r.Emitted != 47 || r.Deleted != 3 || r.Changed != 1 || r.Unchanged != 46 {
		t.Fatalf("full sync after deletes: %+v", r)
	}
	s.Must(http.StatusOK, "GET", base+"?size=1", nil, &page)
	if page.Total != 47 {
		t.Fatalf("documents after deletes: %d", page.Total)
	}
	s.Must(http.StatusOK, "GET", base+"?search=articles/4&size=100", nil, &page)
	for _, d := range page.Items {
		if d.ExternalID == "articles/4" {
			t.Fatalf("deleted row's document still listed: %+v", d)
		}
	}

	// Incremental by default now: one new row.
	db.Exec(t, `INSERT INTO articles VALUES (51, 'Article 51', 'new', '2025-02-01Z')`)
	r = s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	if r.Mode != "incremental" || r.Updated != 1 || r.New != 1 || r.Emitted != 0 {
		t.Fatalf("incremental sync: %+v", r)
	}

	// A wrong password: the test says so, the sync fails, neither shows it.
	const wrong = "not-the-Passw0rd"
	s.Must(http.StatusOK, "PATCH", "/v1/sources/"+src.ID, map[string]any{"credentials": map[string]any{"password": wrong}}, nil)
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/test-connection", nil, &test)
	if test.OK || !strings.Contains(test.Message, "password authentication failed") || strings.Contains(test.Message, wrong) {
		t.Fatalf("connection test with a wrong password: %+v", test)
	}
	r = s.WaitStatus(s.Sync(src.ID, nil).ID, "failed", time.Minute)
	if !strings.Contains(r.Error, "password authentication failed") || strings.Contains(r.Error, wrong) {
		t.Fatalf("sync with a wrong password: %+v", r)
	}
	for _, secret := range []string{pg.Password, wrong} {
		if strings.Contains(s.manager.Log(), secret) {
			t.Fatalf("the manager's log shows a password")
		}
	}
}
