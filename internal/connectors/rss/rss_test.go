package rss_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary-sync/tributary/internal/connectors/connectortest"
	"github.com/tributary-sync/tributary/internal/connectors/rss"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// feedServer serves one feed whose body, type and headers a test changes
// between syncs, and records the requests it gets.
type feedServer struct {
	*httptest.Server

	mu       sync.Mutex
	body     string
	ctype    string
	etag     string
	requests []*http.Request
}

func newFeedServer(t *testing.T, body, ctype string) *feedServer {
	t.Helper()
	s := &feedServer{body: body, ctype: ctype}
	mux := http.NewServeMux()
	mux.HandleFunc("/feed", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Clone(context.Background()))
		body, ctype, etag := s.body, s.ctype, s.etag
		s.mu.Unlock()
		if etag != "" {
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		w.Header().Set("Content-Type", ctype)
		_, _ = fmt.Fprint(w, body)
	})
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/feed", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *feedServer) set(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *feedServer) setETag(etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.etag = etag
}

func (s *feedServer) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		t.Fatal("no request reached the feed")
	}
	return s.requests[len(s.requests)-1]
}

// item is one entry of a generated feed.
type item struct {
	guid, link, title, author, description, content string
	published, updated                              time.Time
}

var day0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func day(n int) time.Time { return day0.AddDate(0, 0, n) }

// rssFeed renders an RSS 2.0 feed.
func rssFeed(title string, items ...item) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>` + html.EscapeString(title) + `</title><link>https://example.com/</link><description>test</description>
`)
	for _, it := range items {
		b.WriteString("<item>")
		if it.guid != "" {
			b.WriteString(`<guid isPermaLink="false">` + html.EscapeString(it.guid) + `</guid>`)
		}
		if it.title != "" {
			b.WriteString(`<title>` + html.EscapeString(it.title) + `</title>`)
		}
		if it.link != "" {
			b.WriteString(`<link>` + html.EscapeString(it.link) + `</link>`)
		}
		if it.author != "" {
			b.WriteString(`<dc:creator>` + html.EscapeString(it.author) + `</dc:creator>`)
		}
		if !it.published.IsZero() {
			b.WriteString(`<pubDate>` + it.published.Format(time.RFC1123Z) + `</pubDate>`)
		}
		if it.description != "" {
			b.WriteString(`<description>` + html.EscapeString(it.description) + `</description>`)
		}
		if it.content != "" {
			b.WriteString(`<content:encoded><![CDATA[` + it.content + `]]></content:encoded>`)
		}
		b.WriteString("</item>\n")
	}
	b.WriteString("</channel></rss>\n")
	return b.String()
}

// atomFeed renders an Atom 1.0 feed.
func atomFeed(title string, items ...item) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>` + html.EscapeString(title) + `</title><id>urn:test:feed</id><updated>` + day0.Format(time.RFC3339) + `</updated>
`)
	for _, it := range items {
		b.WriteString("<entry>")
		if it.guid != "" {
			b.WriteString(`<id>` + html.EscapeString(it.guid) + `</id>`)
		}
		b.WriteString(`<title>` + html.EscapeString(it.title) + `</title>`)
		if it.link != "" {
			b.WriteString(`<link rel="alternate" href="` + html.EscapeString(it.link) + `"/>`)
		}
		if it.author != "" {
			b.WriteString(`<author><name>` + html.EscapeString(it.author) + `</name></author>`)
		}
		if !it.published.IsZero() {
			b.WriteString(`<published>` + it.published.Format(time.RFC3339) + `</published>`)
		}
		if !it.updated.IsZero() {
			b.WriteString(`<updated>` + it.updated.Format(time.RFC3339) + `</updated>`)
		}
		if it.description != "" {
			b.WriteString(`<summary>` + html.EscapeString(it.description) + `</summary>`)
		}
		if it.content != "" {
			b.WriteString(`<content type="html">` + html.EscapeString(it.content) + `</content>`)
		}
		b.WriteString("</entry>\n")
	}
	b.WriteString("</feed>\n")
	return b.String()
}

func configJSON(t *testing.T, cfg rss.Config) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// sync runs one sync and returns its recorder and error.
func sync1(ctx context.Context, t *testing.T, cfg rss.Config, mode connector.SyncMode, checkpoint json.RawMessage) (*connectortest.Recorder, error) {
	t.Helper()
	rec := connectortest.New(t)
	req := &connector.SyncRequest{SourceID: "src", RunID: "run", Mode: mode, Config: configJSON(t, cfg), Checkpoint: checkpoint, Attempt: 1}
	return rec, rss.New().Sync(ctx, req, rec)
}

// mustSync runs one sync that must complete, and returns its recorder and the
// checkpoint a next sync gets.
func mustSync(t *testing.T, cfg rss.Config, mode connector.SyncMode, checkpoint json.RawMessage) (*connectortest.Recorder, json.RawMessage) {
	t.Helper()
	rec, err := sync1(t.Context(), t, cfg, mode, checkpoint)
	if err != nil {
		t.Fatalf("%s sync: %v", mode, err)
	}
	final, ok := rec.Final()
	if !ok {
		t.Fatalf("%s sync returned nil without Complete", mode)
	}
	if final == nil {
		final = checkpoint
	}
	return rec, final
}

func decode(t *testing.T, raw json.RawMessage) rss.Checkpoint {
	t.Helper()
	var cp rss.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatalf("checkpoint %s: %v", raw, err)
	}
	return cp
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return out
}

func text(t *testing.T, rec *connectortest.Recorder, doc connector.Document) string {
	t.Helper()
	c, ok := rec.ContentOf(doc)
	if !ok {
		t.Fatalf("%s: content %q not stored", doc.ExternalID, doc.ContentID)
	}
	return string(c.Data)
}

func TestManifest(t *testing.T) {
	m := rss.New().Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Name != rss.Name || !m.Supports(connector.Full) || !m.Supports(connector.Incremental) {
		t.Errorf("manifest = %+v", m)
	}
	if _, ok := m.Action(rss.ActionValidateFeed); !ok {
		t.Errorf("no %s action in %+v", rss.ActionValidateFeed, m.Actions)
	}

	var schema any
	if err := json.Unmarshal(m.ConfigSchema, &schema); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("rss.json", schema); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("rss.json")
	if err != nil {
		t.Fatal(err)
	}
	for cfg, ok := range map[string]bool{
		`{"feed_url":"https://example.com/feed.xml"}`:                                 true,
		`{"feed_url":"HTTP://example.com/rss","timeout":"1.5s","max_feed_size":1024}`: true,
		`{}`:                                    false,
		`{"feed_url":"ftp://example.com/feed"}`: false,
		`{"feed_url":"/feed.xml"}`:              false,
		`{"feed_url":"https://"}`:               false,
		`{"feed_url":"https://example.com/","timeout":"soon"}`:      false,
		`{"feed_url":"https://example.com/","max_feed_size":0}`:     false,
		`{"feed_url":"https://example.com/","user_agent":"me"}`:     false,
		`{"feed_url":"https://example.com/","timeout":30}`:          false,
		`{"feed_url":"https://example.com/","max_feed_size":"1MB"}`: false,
	} {
		var v any
		if err := json.Unmarshal([]byte(cfg), &v); err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); (err == nil) != ok {
			t.Errorf("schema on %s: err = %v, want valid %v", cfg, err, ok)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct{ config, want string }{
		{`{"feed_url":"ftp://example.com/x"}`, "feed_url: ftp://example.com/x is not an http or https URL"},
		{`{"feed_url":""}`, "feed_url: is required"},
		{`{"feed_url":"https://example.com/","timeout":"-1s"}`, `timeout "-1s" is not a duration`},
		{`{"feed_url":"https://example.com/","timeout":"11m"}`, `timeout "11m" is not a duration`},
		{`{"feed_url":"https://example.com/","max_feed_size":-4}`, "max_feed_size must be from 1"},
		{`{"feed_url":7}`, "decode config"},
	} {
		rec := connectortest.New(t)
		err := rss.New().Sync(t.Context(), &connector.SyncRequest{Mode: connector.Full, Config: json.RawMessage(tt.config)}, rec)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.config, err, tt.want)
		}
		if ev := rec.Events(); len(ev) != 0 {
			t.Errorf("%s: a rejected config reported %v", tt.config, ev)
		}
	}
}

func TestRSSFullSync(t *testing.T) {
	srv := newFeedServer(t, "", "application/rss+xml; charset=utf-8")
	srv.set(rssFeed("Tributary news",
		item{guid: "urn:post:1", link: "https://example.com/posts/1", title: "First &amp; foremost", author: "Ada",
			published: day(1), description: "<p>Short <b>summary</b> &amp; more</p>"},
		item{guid: "urn:post:2", link: "/posts/2", title: "Second", published: day(2),
			description: "ignored summary", content: "<h1>Full</h1><p>content of two</p><script>x()</script>"},
		item{link: "https://example.com/posts/3", title: "Linked only", description: "plain text, no markup"},
		item{title: "Neither id nor link", published: day(4), description: "dated"},
		item{guid: "urn:post:1", title: "A repeat of the first", description: "dropped"},
	))
	cfg := rss.Config{FeedURL: srv.URL + "/feed"}
	rec, final := mustSync(t, cfg, connector.Full, nil)

	ids := rec.IDs(connectortest.Emit)
	hashID := ids[3]
	if !strings.HasPrefix(hashID, "sha256:") || len(hashID) != len("sha256:")+64 {
		t.Errorf("id of an entry without guid or link: %q", hashID)
	}
	want := []string{"urn:post:1", "urn:post:2", "https://example.com/posts/3", hashID}
	if !slices.Equal(ids, want) {
		t.Fatalf("emitted %v, want %v", ids, want)
	}
	if got := rec.IDs(connectortest.Update, connectortest.Delete, connectortest.Error); len(got) != 0 {
		t.Errorf("a first full sync reported %v", got)
	}
	if rec.Scanned() != 5 {
		t.Errorf("scanned %d, want 5", rec.Scanned())
	}
	docs := rec.Docs()

	one := docs["urn:post:1"]
	if one.Title != "First & foremost" || one.Metadata.Author != "Ada" || one.Metadata.URL != "https://example.com/posts/1" ||
		!one.Permissions.Public || one.Metadata.MimeType != "text/html; charset=utf-8" {
		t.Errorf("first entry: %+v", one)
	}
	if one.Metadata.CreatedAt == nil || !one.Metadata.CreatedAt.Equal(day(1)) || one.Metadata.UpdatedAt == nil || !one.Metadata.UpdatedAt.Equal(day(1)) {
		t.Errorf("first entry's dates: created %v updated %v", one.Metadata.CreatedAt, one.Metadata.UpdatedAt)
	}
	if got := text(t, rec, one); got != "Short summary & more" {
		t.Errorf("first entry's text %q", got)
	}
	raw, ok := rec.ContentOf(connector.Document{ContentID: one.Metadata.Extra["raw_content_id"].(string)})
	if !ok || string(raw.Data) != "<p>Short <b>summary</b> &amp; more</p>" {
		t.Errorf("first entry's raw HTML %q", raw.Data)
	}
	if one.Metadata.Extra["feed_title"] != "Tributary news" || one.Metadata.Extra["feed_url"] != cfg.FeedURL {
		t.Errorf("first entry's extra %v", one.Metadata.Extra)
	}

	two := docs["urn:post:2"]
	if got := text(t, rec, two); got != "Full\ncontent of two" {
		t.Errorf("content wins over the summary, as text: %q", got)
	}
	if two.Metadata.URL != srv.URL+"/posts/2" {
		t.Errorf("a relative link resolves against the feed: %q", two.Metadata.URL)
	}

	three := docs["https://example.com/posts/3"]
	if got := text(t, rec, three); got != "plain text, no markup" || three.Metadata.MimeType != "text/plain; charset=utf-8" {
		t.Errorf("plain text entry: %q %+v", got, three.Metadata)
	}
	if three.Metadata.CreatedAt != nil || three.Metadata.UpdatedAt != nil {
		t.Errorf("an undated entry has dates %v %v", three.Metadata.CreatedAt, three.Metadata.UpdatedAt)
	}
	if docs[hashID].Title != "Neither id nor link" {
		t.Errorf("hashed entry %+v", docs[hashID])
	}

	if cp := decode(t, final); len(cp.Entries) != 4 || cp.FeedURL != cfg.FeedURL {
		t.Errorf("checkpoint %s", final)
	}
	req := srv.lastRequest(t)
	if req.Header.Get("User-Agent") != rss.UserAgent || !strings.Contains(req.Header.Get("Accept"), "application/rss+xml") {
		t.Errorf("request headers %v", req.Header)
	}
}

func TestAtomFullSync(t *testing.T) {
	srv := newFeedServer(t, atomFeed("An Atom feed",
		item{guid: "tag:example.com,2026:1", link: "https://example.com/a/1", title: "Atom one", author: "Grace",
			published: day(1), updated: day(3), description: "summary only"},
		item{guid: "tag:example.com,2026:2", title: "Atom two", updated: day(2),
			description: "the summary", content: "<p>the <em>content</em></p>"},
	), "application/atom+xml")
	rec, final := mustSync(t, rss.Config{FeedURL: srv.URL + "/feed"}, connector.Full, nil)
	if ids := rec.IDs(connectortest.Emit); !slices.Equal(ids, []string{"tag:example.com,2026:1", "tag:example.com,2026:2"}) {
		t.Fatalf("emitted %v", ids)
	}
	docs := rec.Docs()
	one := docs["tag:example.com,2026:1"]
	if one.Title != "Atom one" || one.Metadata.Author != "Grace" || one.Metadata.URL != "https://example.com/a/1" ||
		!one.Metadata.CreatedAt.Equal(day(1)) || !one.Metadata.UpdatedAt.Equal(day(3)) {
		t.Errorf("atom entry: %+v created %v updated %v", one, one.Metadata.CreatedAt, one.Metadata.UpdatedAt)
	}
	if got := text(t, rec, one); got != "summary only" {
		t.Errorf("summary as content: %q", got)
	}
	two := docs["tag:example.com,2026:2"]
	if got := text(t, rec, two); got != "the content" {
		t.Errorf("atom content: %q", got)
	}
	// gofeed takes an Atom entry's updated date for its missing published.
	if !two.Metadata.CreatedAt.Equal(day(2)) || !two.Metadata.UpdatedAt.Equal(day(2)) {
		t.Errorf("atom entry without published: created %v updated %v", two.Metadata.CreatedAt, two.Metadata.UpdatedAt)
	}
	if cp := decode(t, final); len(cp.Entries) != 2 {
		t.Errorf("checkpoint %s", final)
	}
}

// TestIncremental: after a full sync, an incremental one reports a new entry,
// an entry whose updated date moved, one published late with a date in the
// past, and one whose content changed with no date; not the unchanged ones,
// and no deletion for an entry that left the feed, which the checkpoint
// forgets.
func TestIncremental(t *testing.T) {
	a := item{guid: "a", title: "A", published: day(1), updated: day(1), description: "a"}
	b := item{guid: "b", title: "B", published: day(2), updated: day(2), description: "b"}
	c := item{guid: "c", title: "C", published: day(3), updated: day(3), description: "c"}
	d := item{guid: "d", title: "D", description: "undated d"}
	srv := newFeedServer(t, atomFeed("feed", c, b, a, d), "application/atom+xml")
	cfg := rss.Config{FeedURL: srv.URL + "/feed"}
	_, cp := mustSync(t, cfg, connector.Full, nil)

	// Nothing changed: nothing to report.
	rec, cp := mustSync(t, cfg, connector.Incremental, cp)
	if ev := rec.IDs(connectortest.Emit, connectortest.Update, connectortest.Delete); len(ev) != 0 {
		t.Fatalf("idle incremental sync reported %v", ev)
	}

	newer := item{guid: "e", title: "E", published: day(5), updated: day(5), description: "new"}
	late := item{guid: "late", title: "Late", published: day(0), updated: day(0), description: "published late, dated early"}
	b2 := b
	b2.updated, b2.description = day(6), "b, edited"
	d2 := d
	d2.description = "undated d, edited"
	// a is gone from the feed.
	srv.set(atomFeed("feed", newer, b2, c, late, d2))
	rec, cp = mustSync(t, cfg, connector.Incremental, cp)
	if got := sorted(rec.IDs(connectortest.Emit)); !slices.Equal(got, []string{"e", "late"}) {
		t.Errorf("new entries emitted %v, want e and late", got)
	}
	if got := sorted(rec.IDs(connectortest.Update)); !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("changed entries updated %v, want b and d", got)
	}
	if got := rec.IDs(connectortest.Delete); len(got) != 0 {
		t.Errorf("an incremental sync deleted %v", got)
	}
	if got := text(t, rec, rec.Docs()["b"]); got != "b, edited" {
		t.Errorf("updated text %q", got)
	}
	if rec.Scanned() != 5 {
		t.Errorf("scanned %d, want 5", rec.Scanned())
	}
	if n := len(decode(t, cp).Entries); n != 5 {
		t.Errorf("checkpoint remembers %d entries, want the 5 in the feed: %s", n, cp)
	}

	// a comes back (it scrolled out and in): new again, emitted once.
	srv.set(atomFeed("feed", newer, b2, c, late, d2, a))
	rec, cp = mustSync(t, cfg, connector.Incremental, cp)
	if got := rec.IDs(connectortest.Emit, connectortest.Update); !slices.Equal(got, []string{"a"}) {
		t.Errorf("returning entry: reported %v", got)
	}

	// A full sync emits every entry, as new, so the sweep can delete the rest.
	rec, _ = mustSync(t, cfg, connector.Full, cp)
	if got := sorted(rec.IDs(connectortest.Emit)); !slices.Equal(got, []string{"a", "b", "c", "d", "e", "late"}) {
		t.Errorf("full sync emitted %v", got)
	}
	if got := rec.IDs(connectortest.Update, connectortest.Delete); len(got) != 0 {
		t.Errorf("full sync reported %v", got)
	}
}

// TestConditionalFetch: an incremental sync sends the ETag back and a 304
// completes it with nothing emitted and the checkpoint kept; a full sync
// always fetches.
func TestConditionalFetch(t *testing.T) {
	srv := newFeedServer(t, rssFeed("feed", item{guid: "1", title: "one"}), "application/rss+xml")
	srv.setETag(`"v1"`)
	cfg := rss.Config{FeedURL: srv.URL + "/feed"}
	_, cp := mustSync(t, cfg, connector.Full, nil)
	if got := decode(t, cp).ETag; got != `"v1"` {
		t.Fatalf("checkpoint etag %q", got)
	}
	rec, err := sync1(t.Context(), t, cfg, connector.Incremental, cp)
	if err != nil {
		t.Fatal(err)
	}
	if final, ok := rec.Final(); !ok || final != nil {
		t.Errorf("not modified: completed %v with %s, want the checkpoint kept", ok, final)
	}
	if got := srv.lastRequest(t).Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("If-None-Match %q", got)
	}
	if ev := rec.IDs(connectortest.Emit, connectortest.Update); len(ev) != 0 {
		t.Errorf("not modified: reported %v", ev)
	}
	rec, _ = mustSync(t, cfg, connector.Full, cp)
	if got := srv.lastRequest(t).Header.Get("If-None-Match"); got != "" || len(rec.IDs(connectortest.Emit)) != 1 {
		t.Errorf("full sync: If-None-Match %q, emitted %v", got, rec.IDs(connectortest.Emit))
	}
}

// TestBadFeeds: a feed that cannot be fetched or parsed fails the run with a
// message naming the feed, and reports nothing.
func TestBadFeeds(t *testing.T) {
	for _, tt := range []struct {
		name, body, ctype string
		maxSize           int64
		path              string
		want              string
	}{
		{name: "truncated XML", body: `<?xml version="1.0"?><rss version="2.0"><channel><title>x</title><item><title>broken`, ctype: "application/rss+xml", want: "/feed: parse: "},
		{name: "not a feed", body: "<!doctype html><html><body>hello</body></html>", ctype: "text/html; charset=utf-8", want: "/feed: parse: not an RSS, Atom or JSON feed (served as text/html)"},
		{name: "empty body", body: "", ctype: "application/xml", want: "/feed: parse: not an RSS, Atom or JSON feed"},
		{name: "too large", body: rssFeed("big", item{guid: "1", description: strings.Repeat("x", 4096)}), ctype: "application/xml", maxSize: 1024, want: "/feed: fetch: feed is larger than max_feed_size (1024 bytes)"},
		{name: "not found", path: "/missing", want: "/missing: fetch: HTTP 404 Not Found"},
		{name: "redirect loop", path: "/loop", want: "/loop: fetch: stopped after 10 redirects"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFeedServer(t, tt.body, tt.ctype)
			path := tt.path
			if path == "" {
				path = "/feed"
			}
			rec, err := sync1(t.Context(), t, rss.Config{FeedURL: srv.URL + path, MaxFeedSize: tt.maxSize}, connector.Full, nil)
			if err == nil || !strings.Contains(err.Error(), "feed "+srv.URL+tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, "feed "+srv.URL+tt.want)
			}
			var fe *rss.FeedError
			if !errors.As(err, &fe) || fe.URL != srv.URL+path {
				t.Errorf("err %T %+v is not a FeedError for the feed", err, fe)
			}
			if ev := rec.Events(); len(ev) != 0 {
				t.Errorf("a bad feed reported %v", ev)
			}
		})
	}

	// A password in the URL stays out of the message.
	srv := newFeedServer(t, "nope", "text/plain")
	u := strings.Replace(srv.URL, "http://", "http://reader:s3cret@", 1) + "/feed"
	_, err := sync1(t.Context(), t, rss.Config{FeedURL: u}, connector.Full, nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "reader:xxxxx@") {
		t.Errorf("err = %v, want the password redacted", err)
	}
}

func TestRedirect(t *testing.T) {
	srv := newFeedServer(t, rssFeed("moved", item{guid: "1", title: "one", link: "posts/1"}), "application/rss+xml")
	rec, _ := mustSync(t, rss.Config{FeedURL: srv.URL + "/old"}, connector.Full, nil)
	docs := rec.Docs()
	if len(docs) != 1 || docs["1"].Metadata.URL != srv.URL+"/posts/1" {
		t.Fatalf("after a redirect: %+v", docs)
	}
	if docs["1"].Metadata.Extra["feed_url"] != srv.URL+"/old" {
		t.Errorf("feed_url is the configured one: %v", docs["1"].Metadata.Extra)
	}
}

// hangingServer accepts requests and answers none until its request is
// cancelled; arrived is signalled once per request.
func hangingServer(t *testing.T) (*httptest.Server, chan struct{}) {
	t.Helper()
	arrived := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, arrived
}

func TestTimeout(t *testing.T) {
	srv, _ := hangingServer(t)
	began := time.Now()
	rec, err := sync1(t.Context(), t, rss.Config{FeedURL: srv.URL + "/slow", Timeout: "200ms"}, connector.Full, nil)
	took := time.Since(began)
	want := "feed " + srv.URL + "/slow: fetch: no complete answer within the timeout of 200ms"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if took > 5*time.Second {
		t.Errorf("a 200ms timeout took %s", took)
	}
	if ev := rec.Events(); len(ev) != 0 {
		t.Errorf("a timed-out fetch reported %v", ev)
	}
}

func TestCancel(t *testing.T) {
	t.Run("while fetching", func(t *testing.T) {
		srv, arrived := hangingServer(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			<-arrived
			cancel()
		}()
		_, err := sync1(ctx, t, rss.Config{FeedURL: srv.URL + "/feed"}, connector.Full, nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("while emitting", func(t *testing.T) {
		items := make([]item, 50)
		for i := range items {
			items[i] = item{guid: fmt.Sprint(i), title: fmt.Sprint("entry ", i)}
		}
		srv := newFeedServer(t, rssFeed("many", items...), "application/rss+xml")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rec := connectortest.New(t)
		// The recorder accepts calls on a done context, so the connector
		// must notice the cancellation itself.
		rec.IgnoreContext = true
		rec.After = func(e connectortest.Event, i int) error {
			if i == 2 {
				cancel()
			}
			return nil
		}
		req := &connector.SyncRequest{Mode: connector.Full, Config: configJSON(t, rss.Config{FeedURL: srv.URL + "/feed"})}
		err := rss.New().Sync(ctx, req, rec)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := len(rec.IDs(connectortest.Emit)); n != 3 {
			t.Errorf("emitted %d entries after cancelling at the third", n)
		}
		if _, ok := rec.Final(); ok {
			t.Error("a cancelled sync completed")
		}
	})
}

// TestCheckpointBounded: a feed longer than MaxRemembered, with ids at the
// longest an external id may be, leaves a checkpoint of MaxRemembered
// entries (the newest) that stays well under an event's 1 MiB.
func TestCheckpointBounded(t *testing.T) {
	const extra = 50
	n := rss.MaxRemembered + extra
	items := make([]item, n)
	for i := range items {
		id := fmt.Sprintf("%04d-", i) + strings.Repeat("x", 1000)
		items[i] = item{guid: id, title: fmt.Sprint("entry ", i), published: day0.Add(time.Duration(i) * time.Minute)}
	}
	srv := newFeedServer(t, rssFeed("long", items...), "application/rss+xml")
	cfg := rss.Config{FeedURL: srv.URL + "/feed", MaxFeedSize: 50 << 20}
	rec, cp := mustSync(t, cfg, connector.Full, nil)
	if got := len(rec.IDs(connectortest.Emit)); got != n {
		t.Fatalf("emitted %d, want %d", got, n)
	}
	if got := len(decode(t, cp).Entries); got != rss.MaxRemembered {
		t.Errorf("checkpoint remembers %d entries, want %d", got, rss.MaxRemembered)
	}
	if len(cp) > 200<<10 {
		t.Errorf("checkpoint is %d bytes", len(cp))
	}
	t.Logf("checkpoint of %d entries: %d bytes", rss.MaxRemembered, len(cp))

	// The oldest entries were not remembered: an incremental sync emits
	// them (and only them) again.
	rec, _ = mustSync(t, cfg, connector.Incremental, cp)
	got := rec.IDs(connectortest.Emit, connectortest.Update)
	if len(got) != extra {
		t.Fatalf("incremental sync reported %d entries, want the %d oldest", len(got), extra)
	}
	for _, id := range got {
		var i int
		if _, err := fmt.Sscanf(id, "%04d-", &i); err != nil || i >= extra {
			t.Errorf("re-emitted %.10s…, not one of the oldest", id)
		}
	}
}

func TestValidateFeed(t *testing.T) {
	srv := newFeedServer(t, atomFeed("Validated", item{guid: "1", title: "one"}, item{guid: "2", title: "two"}), "application/atom+xml")
	other := newFeedServer(t, rssFeed("Other", item{guid: "x"}), "application/rss+xml")
	c := rss.New()
	cfg := configJSON(t, rss.Config{FeedURL: srv.URL + "/old"})

	got, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{SourceID: "src", Action: rss.ActionValidateFeed, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	want := rss.FeedInfo{URL: srv.URL + "/old", FinalURL: srv.URL + "/feed", Title: "Validated", FeedType: "atom", Version: "1.0", EntryCount: 2}
	if got != want {
		t.Errorf("validate_feed = %+v, want %+v", got, want)
	}
	got, err = c.ExecuteAction(t.Context(), &connector.ActionRequest{Action: rss.ActionValidateFeed, Config: cfg, Params: json.RawMessage(`{"url":"` + other.URL + `/feed"}`)})
	if info, ok := got.(rss.FeedInfo); err != nil || !ok || info.Title != "Other" || info.EntryCount != 1 || info.FeedType != "rss" {
		t.Errorf("validate_feed of another url = %+v, %v", got, err)
	}
	if _, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{Action: rss.ActionValidateFeed, Config: cfg, Params: json.RawMessage(`{"url":"file:///etc/passwd"}`)}); err == nil || !strings.Contains(err.Error(), "not an http or https URL") {
		t.Errorf("validate_feed of a file url: %v", err)
	}
	srv.set("<html>not a feed</html>")
	if _, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{Action: rss.ActionValidateFeed, Config: cfg}); err == nil || !strings.Contains(err.Error(), "feed "+srv.URL+"/old: parse: not an RSS, Atom or JSON feed") {
		t.Errorf("validate_feed of a bad feed: %v", err)
	}
	if _, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{Action: "nope", Config: cfg}); err == nil {
		t.Error("an unknown action succeeded")
	}
}

func TestConnection(t *testing.T) {
	srv := newFeedServer(t, rssFeed("ok"), "application/rss+xml")
	c := rss.New()
	if err := c.TestConnection(t.Context(), &connector.ActionRequest{Config: configJSON(t, rss.Config{FeedURL: srv.URL + "/feed"})}); err != nil {
		t.Errorf("a good feed: %v", err)
	}
	err := c.TestConnection(t.Context(), &connector.ActionRequest{Config: configJSON(t, rss.Config{FeedURL: srv.URL + "/missing"})})
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("a missing feed: %v", err)
	}
	slow, _ := hangingServer(t)
	err = c.TestConnection(t.Context(), &connector.ActionRequest{Config: configJSON(t, rss.Config{FeedURL: slow.URL, Timeout: "100ms"})})
	if err == nil || !strings.Contains(err.Error(), "timeout of 100ms") {
		t.Errorf("a hanging feed: %v", err)
	}
}
