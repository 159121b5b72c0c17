package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

type document struct {
	ID         string `json:"id"`
	ExternalID string `json:"external_id"`
	Title      string `json:"title"`
	ContentID  string `json:"content_id"`
	Status     string `json:"status"`
	Origin     string `json:"origin"`
}

type documentPage struct {
	Items []document `json:"items"`
	Total int        `json:"total"`
	Page  int        `json:"page"`
	Size  int        `json:"size"`
}

// get fetches a content URL and returns its status, type and body.
func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestDocumentsOverHTTP drives the documents API of the real binaries: the
// list with search and status as an indexer reports it, content as text and
// as the original bytes, a manual document, and re-fetching one file.
func TestDocumentsOverHTTP(t *testing.T) {
	s := startManager(t)
	idx := harness.Start(t, "indexer", bins["indexer"], "--nats-url", s.nats, "--out", filepath.Join(t.TempDir(), "view.json"), "--durable", "docs-indexer")
	idx.WaitLog("indexer ready", time.Minute)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		writeFile(t, filepath.Join(root, fmt.Sprintf("notes/note-%02d.txt", i)), fmt.Sprintf("note %d", i))
	}
	html := `<html><body><h1>Quarterly</h1><p>report</p></body></html>`
	writeFile(t, filepath.Join(root, "Report.html"), html)
	src := s.CreateSource("docs", "filesystem", map[string]any{"root": root})
	s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	base := "/v1/sources/" + src.ID + "/documents"

	var page documentPage
	s.Must(http.StatusOK, "GET", base+"?size=10&page=3", nil, &page)
	if page.Total != 31 || len(page.Items) != 10 || page.Items[0].ExternalID != "notes/note-19.txt" {
		t.Fatalf("page 3: %+v", page)
	}
	s.Must(http.StatusOK, "GET", base+"?search=REPORT", nil, &page)
	if page.Total != 1 || page.Items[0].ExternalID != "Report.html" {
		t.Fatalf("search: %+v", page)
	}
	report := page.Items[0]
	code, ctype, body := get(t, s.Base+base+"/"+report.ID+"/content")
	if code != http.StatusOK || body != "Quarterly\nreport" || ctype != "text/plain; charset=utf-8" {
		t.Fatalf("content: %d %s %q", code, ctype, body)
	}
	code, ctype, body = get(t, s.Base+base+"/"+report.ID+"/content?raw=true")
	if code != http.StatusOK || body != html || ctype != "text/html; charset=utf-8" {
		t.Fatalf("raw content: %d %s %q", code, ctype, body)
	}

	// The indexer reports every document indexed over NATS.
	harness.Eventually(t, 30*time.Second, 50*time.Millisecond, "every document indexed", func() bool {
		s.Must(http.StatusOK, "GET", base+"?status=indexed&size=1", nil, &page)
		return page.Total == 31
	})

	// A manual document goes through the change feed (the indexer marks it
	// indexed too); the next full sync keeps it.
	var doc document
	s.Must(http.StatusCreated, "POST", base, map[string]any{"external_id": "by-hand", "title": "By hand", "content": "typed in"}, &doc)
	harness.Eventually(t, 30*time.Second, 50*time.Millisecond, "the manual document indexed", func() bool {
		s.Must(http.StatusOK, "GET", base+"/"+doc.ID, nil, &doc)
		return doc.Status == "indexed"
	})
	s.WaitStatus(s.Sync(src.ID, map[string]any{"mode": "full"}).ID, "completed", time.Minute)
	s.Must(http.StatusOK, "GET", base+"/"+doc.ID, nil, &doc)
	if doc.Origin != "manual" {
		t.Fatalf("manual document after a full sync: %+v", doc)
	}

	// Re-fetch one file that changed, then one that is gone.
	p := filepath.Join(root, "notes", "note-00.txt")
	writeFile(t, p, "note 0, edited")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	s.Must(http.StatusOK, "GET", base+"?search=note-00", nil, &page)
	note := page.Items[0]
	var run harness.Run
	s.Must(http.StatusAccepted, "POST", base+"/"+note.ID+"/sync", nil, &run)
	run = s.WaitStatus(run.ID, "completed", time.Minute)
	if run.Emitted != 1 || run.Changed != 1 {
		t.Fatalf("document re-fetch: %+v", run)
	}
	if _, _, body = get(t, s.Base+base+"/"+note.ID+"/content"); body != "note 0, edited" {
		t.Fatalf("re-fetched content %q", body)
	}
	var conflict struct{ Code string }
	s.Must(http.StatusConflict, "POST", base+"/"+note.ID+"/stop", nil, &conflict)
	if conflict.Code != "run_not_active" {
		t.Fatalf("stop without a re-fetch: %+v", conflict)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	s.Must(http.StatusAccepted, "POST", base+"/"+note.ID+"/sync", nil, &run)
	if run = s.WaitStatus(run.ID, "completed", time.Minute); run.Deleted != 1 {
		t.Fatalf("re-fetch of a deleted file: %+v", run)
	}
	s.Must(http.StatusNotFound, "GET", base+"/"+note.ID, nil, nil)

	// A connector without document re-fetch says so.
	syn := s.CreateSource("syn", "synthetic", map[string]any{"count": 3})
	s.WaitStatus(s.Sync(syn.ID, nil).ID, "completed", time.Minute)
	s.Must(http.StatusOK, "GET", "/v1/sources/"+syn.ID+"/documents", nil, &page)
	s.Must(http.StatusConflict, "POST", "/v1/sources/"+syn.ID+"/documents/"+page.Items[0].ID+"/sync", nil, &conflict)
	if conflict.Code != "not_supported" {
		t.Fatalf("synthetic re-fetch: %+v", conflict)
	}
}
