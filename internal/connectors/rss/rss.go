// Package rss is the built-in connector for RSS, Atom and JSON Feed feeds,
// the SDK's example connector made real. It imports only pkg/connector (and the
// gofeed parser), as a third-party connector would.
//
// Configuration:
//
//	{"feed_url": "https://example.com/feed.xml", "timeout": "30s", "max_feed_size": 10485760}
//
// Each entry of the feed is one document. Its external id is the entry's id
// (RSS guid, Atom id, JSON Feed id), else its link, else "sha256:" and the
// hash of its title and date. The document's title, link (metadata url),
// authors, published date (created_at) and updated date (updated_at, else the
// published date) come from the entry; its content is the entry's content,
// else its summary, else its title, stored as text (HTML converted to its
// visible text, the HTML itself stored too as raw content).
//
// A full sync emits every entry of the feed, so the manager's sweep deletes
// the documents of entries that have left it. An incremental sync emits an
// entry when its id is new or its updated date or content changed since the
// checkpoint: it remembers the entries it saw, not a date, so an entry
// published late with a date in the past is not missed. An incremental sync
// never deletes: a feed is a window on a longer history, and an entry that
// scrolls out of it is forgotten, not deleted (a full sync mirrors the feed
// exactly). When the server sends an ETag or Last-Modified, an incremental
// sync asks for the feed conditionally, and a 304 Not Modified completes it
// at once with nothing emitted.
//
// The checkpoint stays bounded: it remembers only entries present in the
// feed's latest fetch, at most MaxRemembered of them (the newest by date),
// each as a 16-hex-digit hash of its id with its updated date and a content
// hash, about 90 bytes an entry, so under 200 KB in all. Entries beyond the
// bound are emitted again by every incremental sync; the manager sees their
// content unchanged.
//
// Requests carry a User-Agent and honour cancellation; the client follows up
// to 10 redirects, gives up after timeout (default 30s) and reads at most
// max_feed_size bytes (default 10 MiB). A feed that cannot be fetched or
// parsed fails the run with a message naming the feed.
//
// Its connection test fetches and parses the feed. Its action validate_feed
// does the same and returns the feed's title, type and entry count.
package rss

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mmcdole/gofeed"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Name is the connector's type name.
const Name = "rss"

// MaxRemembered bounds the entries an incremental checkpoint remembers.
const MaxRemembered = 2000

const (
	defaultTimeout     = 30 * time.Second
	maxTimeout         = 10 * time.Minute
	defaultMaxFeedSize = 10 << 20
	maxMaxFeedSize     = 100 << 20
)

const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["feed_url"],
  "additionalProperties": false,
  "properties": {
    "feed_url": {"type": "string", "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+", "description": "URL of the RSS, Atom or JSON feed, http or https."},
    "timeout": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", "description": "How long one fetch of the feed may take, a Go duration such as 30s; at most 10m. Default 30s."},
    "max_feed_size": {"type": "integer", "minimum": 1, "maximum": 104857600, "description": "Largest feed body read, in bytes. Default 10 MiB."}
  }
}`

// Config is the source configuration.
type Config struct {
	FeedURL     string `json:"feed_url"`
	Timeout     string `json:"timeout,omitempty"`
	MaxFeedSize int64  `json:"max_feed_size,omitempty"`
}

// config is a checked Config with its defaults.
type config struct {
	Config
	url      *url.URL
	redacted string
	timeout  time.Duration
}

func parseConfig(raw json.RawMessage) (*config, error) {
	var c config
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &c.Config); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
	}
	u, err := checkURL(c.FeedURL)
	if err != nil {
		return nil, fmt.Errorf("feed_url: %w", err)
	}
	c.url, c.redacted = u, u.Redacted()
	c.timeout = defaultTimeout
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil || d <= 0 || d > maxTimeout {
			return nil, fmt.Errorf("timeout %q is not a duration above 0 and at most %s", c.Timeout, maxTimeout)
		}
		c.timeout = d
	}
	switch {
	case c.MaxFeedSize == 0:
		c.MaxFeedSize = defaultMaxFeedSize
	case c.MaxFeedSize < 0 || c.MaxFeedSize > maxMaxFeedSize:
		return nil, fmt.Errorf("max_feed_size must be from 1 to %d", maxMaxFeedSize)
	}
	return &c, nil
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("is required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s is not an http or https URL", u.Redacted())
	}
	return u, nil
}

// EntryState is what the checkpoint remembers of one entry.
type EntryState struct {
	// Updated is the entry's updated date, else its published date, in
	// RFC 3339; empty when it has neither.
	Updated string `json:"updated,omitempty"`
	// Hash is 16 hex digits of the SHA-256 of the entry's title, link,
	// authors and content.
	Hash string `json:"hash"`
}

// Checkpoint is the connector's checkpoint.
type Checkpoint struct {
	// FeedURL is the feed the checkpoint describes (password redacted); the
	// validators below are used only for the same URL.
	FeedURL string `json:"feed_url,omitempty"`
	// ETag and LastModified are the validators of the last fetch.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// Entries maps the key of each remembered entry (16 hex digits of the
	// SHA-256 of its external id) to its state.
	Entries map[string]EntryState `json:"entries"`
}

// Connector syncs a feed.
type Connector struct{}

// New returns the rss connector.
func New() *Connector { return &Connector{} }

// Manifest implements connector.Connector.
func (*Connector) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:         Name,
		Version:      "1.0.0",
		Description:  "Entries of an RSS, Atom or JSON feed",
		SyncModes:    []connector.SyncMode{connector.Full, connector.Incremental},
		Actions:      actions,
		ConfigSchema: json.RawMessage(configSchema),
	}
}

// Sync implements connector.Connector.
func (c *Connector) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	var prev Checkpoint
	if _, err := req.DecodeCheckpoint(&prev); err != nil {
		return err
	}
	incremental := req.Mode == connector.Incremental
	var cond *validators
	if incremental && prev.FeedURL == cfg.redacted && (prev.ETag != "" || prev.LastModified != "") {
		cond = &validators{ETag: prev.ETag, LastModified: prev.LastModified}
	}

	got, err := fetch(ctx, cfg, cond)
	if err != nil {
		return err
	}
	log := sc.Logger().With(zap.String("feed_url", cfg.redacted))
	if got.NotModified {
		log.Debug("feed not modified")
		return sc.Complete(ctx, nil)
	}
	feed := got.Feed
	sc.SetTotal(len(feed.Items))
	log.Debug("feed fetched", zap.String("feed_type", feed.FeedType), zap.Int("entries", len(feed.Items)), zap.String("final_url", got.Final.Redacted()))

	next := Checkpoint{FeedURL: cfg.redacted, ETag: got.Validators.ETag, LastModified: got.Validators.LastModified}
	var kept []remembered
	seen := make(map[string]bool, len(feed.Items))
	emitted := 0
	for i, item := range feed.Items {
		if err := ctx.Err(); err != nil {
			return err
		}
		sc.IncrementScanned(1)
		if item == nil {
			continue
		}
		e := newEntry(item, got.Final)
		if seen[e.id] {
			log.Debug("entry repeated in the feed; the first is kept", zap.String("external_id", e.id))
			continue
		}
		seen[e.id] = true
		key := keyOf(e.id)
		kept = append(kept, remembered{key: key, state: e.state, date: e.date, index: i})
		old, known := prev.Entries[key]
		if incremental && known && old == e.state {
			continue
		}
		doc, err := document(ctx, sc, cfg, feed, e)
		if err != nil {
			return err
		}
		if incremental && known {
			err = sc.EmitUpdated(ctx, doc)
		} else {
			err = sc.Emit(ctx, doc)
		}
		if err != nil {
			return err
		}
		emitted++
	}
	next.Entries = bounded(kept, MaxRemembered)
	log.Debug("feed synced", zap.Int("emitted", emitted), zap.Int("remembered", len(next.Entries)))
	return sc.Complete(ctx, &next)
}

// remembered is an entry on its way into the checkpoint.
type remembered struct {
	key   string
	state EntryState
	date  time.Time
	index int
}

// bounded keeps the newest max entries (by date; undated ones after the
// dated, in feed order) as the checkpoint's map.
func bounded(rs []remembered, limit int) map[string]EntryState {
	if len(rs) > limit {
		sort.SliceStable(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			if a.date.IsZero() != b.date.IsZero() {
				return !a.date.IsZero()
			}
			if !a.date.Equal(b.date) {
				return a.date.After(b.date)
			}
			return a.index < b.index
		})
		rs = rs[:limit]
	}
	out := make(map[string]EntryState, len(rs))
	for _, r := range rs {
		out[r.key] = r.state
	}
	return out
}

// keyOf is the checkpoint key of an external id: bounded in size whatever the
// id's length, and 64 bits leave collisions negligible for MaxRemembered
// entries.
func keyOf(externalID string) string {
	sum := sha256.Sum256([]byte(externalID))
	return hex.EncodeToString(sum[:8])
}

// entry is one feed item, read.
type entry struct {
	item      *gofeed.Item
	id        string
	title     string
	link      string
	author    string
	published *time.Time
	updated   *time.Time
	date      time.Time // updated, else published, else zero
	body      string
	state     EntryState
}

func newEntry(item *gofeed.Item, base *url.URL) *entry {
	// Titles are text, but feeds often carry them as escaped HTML
	// ("AT&amp;amp;T"): decode what entities are left, as feed readers do.
	e := &entry{item: item, title: strings.TrimSpace(html.UnescapeString(item.Title))}
	e.link = resolve(base, strings.TrimSpace(item.Link))
	e.author = authors(item)
	e.published = utc(item.PublishedParsed)
	e.updated = utc(item.UpdatedParsed)
	switch {
	case e.updated != nil:
		e.date = *e.updated
	case e.published != nil:
		e.date = *e.published
	}
	e.body = item.Content
	if strings.TrimSpace(e.body) == "" {
		e.body = item.Description
	}
	if strings.TrimSpace(e.body) == "" {
		e.body = e.title
	}
	e.id = externalID(item, e)
	if !e.date.IsZero() {
		e.state.Updated = e.date.Format(time.RFC3339Nano)
	}
	h := sha256.New()
	for _, s := range []string{e.title, e.link, e.author, e.body} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	e.state.Hash = hex.EncodeToString(h.Sum(nil)[:8])
	return e
}

// externalID is the entry's id, else its link, else a hash of its title and
// date (of its content when it has neither). An id longer than an external
// id may be is hashed too.
func externalID(item *gofeed.Item, e *entry) string {
	if id := strings.TrimSpace(item.GUID); id != "" {
		return fitID(id)
	}
	if e.link != "" {
		return fitID(e.link)
	}
	date := strings.TrimSpace(item.Updated)
	if p := strings.TrimSpace(item.Published); p != "" {
		date = p
	}
	seed := e.title + "\n" + date
	if strings.TrimSpace(seed) == "" {
		seed = "\n\n" + e.body
	}
	sum := sha256.Sum256([]byte(seed))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func fitID(id string) string {
	if doc := (connector.Document{ExternalID: id}); doc.Validate() == nil {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func resolve(base *url.URL, link string) string {
	if link == "" || base == nil {
		return link
	}
	u, err := url.Parse(link)
	if err != nil {
		return link
	}
	return base.ResolveReference(u).String()
}

func authors(item *gofeed.Item) string {
	var names []string
	for _, p := range item.Authors {
		if p == nil {
			continue
		}
		if n := strings.TrimSpace(p.Name); n != "" {
			names = append(names, n)
		} else if m := strings.TrimSpace(p.Email); m != "" {
			names = append(names, m)
		}
	}
	if len(names) == 0 && item.Author != nil { //nolint:staticcheck // older feeds fill only Author
		if n := strings.TrimSpace(item.Author.Name); n != "" { //nolint:staticcheck // as above
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}

func utc(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// document stores the entry's content and builds its document.
func document(ctx context.Context, sc connector.SyncContext, cfg *config, feed *gofeed.Feed, e *entry) (connector.Document, error) {
	extra := map[string]any{"feed_url": cfg.redacted}
	if t := strings.TrimSpace(feed.Title); t != "" {
		extra["feed_title"] = t
	}
	if len(e.item.Categories) > 0 {
		extra["categories"] = e.item.Categories
	}
	mimeType := "text/plain; charset=utf-8"
	var contentID string
	if looksLikeHTML(e.body) {
		mimeType = "text/html; charset=utf-8"
		textID, _, err := sc.Content().ExtractAndStore(ctx, []byte(e.body), "text/html", "")
		switch {
		case errors.Is(err, connector.ErrMalformedContent), errors.Is(err, connector.ErrContentTooLarge), errors.Is(err, connector.ErrUnsupportedContent):
			extra["extract_error"] = err.Error()
		case err != nil:
			return connector.Document{}, fmt.Errorf("store content of %s: %w", e.id, err)
		}
		rawID, err := sc.Content().SaveBinary(ctx, []byte(e.body), mimeType)
		if err != nil {
			return connector.Document{}, fmt.Errorf("store content of %s: %w", e.id, err)
		}
		if textID == "" {
			contentID = rawID
		} else {
			contentID = textID
			extra["raw_content_id"] = rawID
		}
	} else {
		id, err := sc.Content().Save(ctx, e.body, mimeType)
		if err != nil {
			return connector.Document{}, fmt.Errorf("store content of %s: %w", e.id, err)
		}
		contentID = id
	}
	title := e.title
	if title == "" {
		title = e.link
	}
	if title == "" {
		title = "Untitled"
	}
	updated := e.updated
	if updated == nil {
		updated = e.published
	}
	return connector.Document{
		ExternalID: e.id,
		Title:      title,
		ContentID:  contentID,
		Metadata: connector.Metadata{
			Title:     title,
			Author:    e.author,
			CreatedAt: e.published,
			UpdatedAt: updated,
			MimeType:  mimeType,
			Size:      int64(len(e.body)),
			URL:       e.link,
			Extra:     extra,
		},
		Permissions: connector.Permissions{Public: true},
	}, nil
}

// looksLikeHTML says whether a body has markup or entities to convert;
// feeds carry HTML in descriptions and content as a rule, but plain text
// is stored as it is.
func looksLikeHTML(s string) bool {
	return strings.ContainsAny(s, "<&")
}
