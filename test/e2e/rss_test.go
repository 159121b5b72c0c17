package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// atomEntry is one entry of the feed TestRSSFeedSync serves.
type atomEntry struct {
	id, title, summary string
	updated            time.Time
}

func atomXML(entries ...atomEntry) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>E2E news</title><id>urn:e2e</id><updated>2026-03-01T00:00:00Z</updated>
`)
	for _, e := range entries {
		fmt.Fprintf(&b, `<entry><id>%s</id><title>%s</title><link href="/posts/%s"/><updated>%s</updated><summary type="html">%s</summary></entry>
`, e.id, e.title, e.id, e.updated.Format(time.RFC3339), e.summary)
	}
	b.WriteString("</feed>\n")
	return b.String()
}

// TestRSSFeedSync drives the rss connector through the API of the real
// binaries, with a feed served by the test: a full sync, an incremental one
// after the feed changed, a full one that lets the sweep delete what left
// the feed, validate_feed, the connection test, and a feed gone bad.
func TestRSSFeedSync(t *testing.T) {
	var mu sync.Mutex
	body := ""
	setFeed := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		body = s
	}
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/atom+xml")
		_, _ = fmt.Fprint(w, body)
	}))
	defer feed.Close()

	day := func(n int) time.Time { return time.Date(2026, 3, n, 8, 0, 0, 0, time.UTC) }
	one := atomEntry{"one", "First post", "&lt;p&gt;Hello &lt;b&gt;world&lt;/b&gt;&lt;/p&gt;", day(1)}
	two := atomEntry{"two", "Second post", "second", day(2)}
	three := atomEntry{"three", "Third post", "third", day(3)}
	setFeed(atomXML(three, two, one))

	s := startManager(t)
	src := s.CreateSource("news", "rss", map[string]any{"feed_url": feed.URL + "/feed.xml", "timeout": "10s"})
	r := s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	if r.Mode != "full" || r.Emitted != 3 || r.Scanned != 3 || r.Errors != 0 {
		t.Fatalf("full run: %+v", r)
	}
	base := "/v1/sources/" + src.ID + "/documents"
	externalIDs := func() []string {
		var page documentPage
		s.Must(http.StatusOK, "GET", base+"?size=100", nil, &page)
		var ids []string
		for _, d := range page.Items {
			ids = append(ids, d.ExternalID)
		}
		sort.Strings(ids)
		return ids
	}
	if got := externalIDs(); !slices.Equal(got, []string{"one", "three", "two"}) {
		t.Fatalf("documents after the full sync: %v", got)
	}
	var page documentPage
	s.Must(http.StatusOK, "GET", base+"?search=First", nil, &page)
	if page.Total != 1 || page.Items[0].Title != "First post" {
		t.Fatalf("search: %+v", page)
	}
	if code, _, text := get(t, s.Base+base+"/"+page.Items[0].ID+"/content"); code != http.StatusOK || text != "Hello world" {
		t.Fatalf("content of the first post: %d %q", code, text)
	}

	// A new entry, an edited one, a late one dated in the past; one gone.
	four := atomEntry{"four", "Fourth post", "fourth", day(4)}
	late := atomEntry{"late", "Late post", "published late", day(1).Add(-time.Hour)}
	two.summary, two.updated = "second, edited", day(5)
	setFeed(atomXML(two, four, three, late))
	r = s.WaitStatus(s.Sync(src.ID, map[string]any{"mode": "incremental"}).ID, "completed", time.Minute)
	if r.Mode != "incremental" || r.Emitted != 2 || r.Updated != 1 || r.Deleted != 0 || r.New != 2 || r.Changed != 1 {
		t.Fatalf("incremental run: %+v", r)
	}
	// An incremental sync forgets an entry that left the feed; it does not
	// delete it.
	if got := externalIDs(); !slices.Equal(got, []string{"four", "late", "one", "three", "two"}) {
		t.Fatalf("documents after the incremental sync: %v", got)
	}
	// Nothing changed since: nothing reported.
	r = s.WaitStatus(s.Sync(src.ID, nil).ID, "completed", time.Minute)
	if r.Mode != "incremental" || r.Emitted+r.Updated+r.Deleted != 0 {
		t.Fatalf("idle incremental run: %+v", r)
	}
	// A full sync mirrors the feed: the sweep deletes the entry gone.
	r = s.WaitStatus(s.Sync(src.ID, map[string]any{"mode": "full"}).ID, "completed", time.Minute)
	if r.Emitted != 4 || r.Deleted != 1 || r.Unchanged != 4 {
		t.Fatalf("full re-sync: %+v", r)
	}
	if got := externalIDs(); !slices.Equal(got, []string{"four", "late", "three", "two"}) {
		t.Fatalf("documents after the full re-sync: %v", got)
	}

	var action struct {
		Action string `json:"action"`
		Result struct {
			Title      string `json:"title"`
			EntryCount int    `json:"entry_count"`
			FeedType   string `json:"feed_type"`
		} `json:"result"`
	}
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/actions/validate_feed", nil, &action)
	if action.Action != "validate_feed" || action.Result.Title != "E2E news" || action.Result.EntryCount != 4 || action.Result.FeedType != "atom" {
		t.Fatalf("validate_feed: %+v", action)
	}
	var test struct {
		OK      bool   `json:"ok"`
		Message string `json:"message"`
	}
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/test-connection", nil, &test)
	if !test.OK {
		t.Fatalf("test-connection: %+v", test)
	}

	// The feed goes bad: the run fails naming it, the action and the
	// connection test say why.
	setFeed("<feed><entry>broken")
	r = s.WaitStatus(s.Sync(src.ID, nil).ID, "failed", time.Minute)
	if !strings.Contains(r.Error, "feed "+feed.URL+"/feed.xml: parse: ") {
		t.Fatalf("failed run: %+v", r)
	}
	var failed struct {
		Detail []struct {
			Type string `json:"type"`
			Msg  string `json:"msg"`
		} `json:"detail"`
	}
	s.Must(http.StatusUnprocessableEntity, "POST", "/v1/sources/"+src.ID+"/actions/validate_feed", nil, &failed)
	if len(failed.Detail) != 1 || failed.Detail[0].Type != "action_failed" || !strings.Contains(failed.Detail[0].Msg, "feed "+feed.URL+"/feed.xml: parse: ") {
		t.Fatalf("validate_feed of a bad feed: %+v", failed)
	}
	s.Must(http.StatusOK, "POST", "/v1/sources/"+src.ID+"/test-connection", nil, &test)
	if test.OK || !strings.Contains(test.Message, "parse") {
		t.Fatalf("test-connection of a bad feed: %+v", test)
	}
	if got := externalIDs(); len(got) != 4 {
		t.Fatalf("a failed run changed the documents: %v", got)
	}
}
