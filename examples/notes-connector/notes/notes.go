// Package notes is the connector docs/writing-a-connector.md builds, step
// by step: it syncs the notes that a JSON document at a URL lists, one
// Tributary document per note.
//
// The source is any URL answering
//
//	{"notes": [{"id": "welcome", "title": "Welcome", "body": "# Hello", "format": "markdown",
//	            "author": "Ada", "url": "https://…", "updated_at": "2026-01-05T10:00:00Z"},
//	           {"id": "old", "deleted": true, "updated_at": "2026-01-06T08:00:00Z"}]}
//
// A full sync emits every note; an incremental one, the notes updated
// since the checkpoint, and the deletions ("deleted": true) since then.
package notes

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Name is the connector's type name: sources say "connector": "notes".
const Name = "notes"

const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["url"],
  "additionalProperties": false,
  "properties": {
    "url": {"type": "string", "pattern": "^https?://", "description": "URL of the JSON list of notes."},
    "checkpoint_every": {"type": "integer", "minimum": 1, "maximum": 100000,
                         "description": "Save a checkpoint every this many notes. Default 100."}
  }
}`

// Config is a source's configuration.
type Config struct {
	URL             string `json:"url"`
	CheckpointEvery int    `json:"checkpoint_every,omitempty"`
}

// Credentials are a source's credentials, encrypted by the manager and
// never shown by the API.
type Credentials struct {
	Token string `json:"token"`
}

// Connector syncs notes. It keeps no state of its own: a worker may run
// many syncs of it at once.
type Connector struct {
	client *http.Client
}

// New returns the notes connector.
func New() *Connector {
	return &Connector{client: &http.Client{Timeout: time.Minute}}
}

// Manifest implements connector.Connector.
func (*Connector) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:         Name,
		Version:      "1.0.0",
		Description:  "Notes listed by a JSON document at a URL",
		SyncModes:    []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(configSchema),
		Actions: []connector.ActionDefinition{{
			Name:        "count",
			Description: "Count the notes the source lists now",
			Parameters: []connector.ActionParameter{
				{Name: "author", Type: "string", Description: "Count only this author's notes."},
			},
		}},
	}
}

// Note is one note as the source lists it.
type Note struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Format    string    `json:"format"` // "markdown" (the default) or "html"
	Author    string    `json:"author"`
	URL       string    `json:"url"`
	UpdatedAt time.Time `json:"updated_at"`
	Deleted   bool      `json:"deleted"`
}

// Checkpoint is where a sync got to: the last note it read, in the order
// of (UpdatedAt, ID).
type Checkpoint struct {
	UpdatedAt time.Time `json:"updated_at"`
	ID        string    `json:"id"`
}

// after reports whether n comes after the checkpoint.
func (cp Checkpoint) after(n Note) bool {
	if c := n.UpdatedAt.Compare(cp.UpdatedAt); c != 0 {
		return c > 0
	}
	return n.ID > cp.ID
}

// Sync implements connector.Connector.
func (c *Connector) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg Config
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	every := cfg.CheckpointEvery
	if every <= 0 {
		every = 100
	}
	var creds Credentials
	if _, err := req.DecodeCredentials(&creds); err != nil {
		return err
	}
	var cp Checkpoint
	if _, err := req.DecodeCheckpoint(&cp); err != nil {
		return err
	}
	// A full sync reads everything, unless it resumes an interrupted
	// attempt of this same run: then it continues after the checkpoint.
	if req.Mode == connector.Full && !req.Resumed {
		cp = Checkpoint{}
	}
	notes, err := c.fetch(ctx, cfg, creds)
	if err != nil {
		return err // the source cannot be read: the run fails
	}
	if req.Mode == connector.Full {
		sc.SetTotal(len(notes))
	}
	read := 0
	for _, n := range notes {
		if !cp.after(n) {
			continue // read by an earlier sync, or an earlier attempt
		}
		if err := ctx.Err(); err != nil {
			return err // cancelled: stop now
		}
		sc.IncrementScanned(1)
		if err := c.emit(ctx, req.Mode, sc, n); err != nil {
			return err
		}
		cp = Checkpoint{UpdatedAt: n.UpdatedAt, ID: n.ID}
		if read++; read%every == 0 {
			// Returns connector.ErrStopRequested when the worker is
			// stopping: the checkpoint is saved, and another worker
			// resumes the run from it.
			if err := sc.SaveCheckpoint(ctx, cp); err != nil {
				return err
			}
		}
	}
	return sc.Complete(ctx, cp)
}

// emit reports one note: a document, a deletion, or a document error.
func (c *Connector) emit(ctx context.Context, mode connector.SyncMode, sc connector.SyncContext, n Note) error {
	if n.Deleted {
		if mode == connector.Full {
			return nil // a full sync need not: the manager deletes what it did not see
		}
		return sc.EmitDeleted(ctx, n.ID)
	}
	doc := connector.Document{
		ExternalID: n.ID,
		Title:      n.Title,
		Metadata: connector.Metadata{
			Author:    n.Author,
			URL:       n.URL,
			UpdatedAt: &n.UpdatedAt,
			Size:      int64(len(n.Body)),
		},
	}
	var err error
	switch n.Format {
	case "", "markdown":
		doc.Metadata.MimeType = "text/markdown"
		doc.ContentID, err = sc.Content().Save(ctx, n.Body, "text/markdown")
	case "html":
		// Indexers want text: store the visible text of the HTML.
		doc.Metadata.MimeType = "text/html"
		doc.ContentID, _, err = sc.Content().ExtractAndStore(ctx, []byte(n.Body), "text/html", "")
	default:
		// One note the connector cannot read: say so, and go on.
		return sc.EmitError(ctx, n.ID, fmt.Errorf("format %q is neither markdown nor html", n.Format))
	}
	if err != nil {
		return fmt.Errorf("store the content of note %q: %w", n.ID, err)
	}
	return sc.Emit(ctx, doc)
}

// maxListSize bounds the JSON list read from the source.
const maxListSize = 64 << 20

// fetch reads the source's notes, sorted by (UpdatedAt, ID); notes without
// an id are left out. Its errors are shown to operators: they never
// contain the token.
func (c *Connector) fetch(ctx context.Context, cfg Config, creds Credentials) ([]Note, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch notes: %w", err)
	}
	if creds.Token != "" {
		req.Header.Set("Authorization", "Bearer "+creds.Token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch notes: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch notes from %s: %s", req.URL.Redacted(), resp.Status)
	}
	var list struct {
		Notes []Note `json:"notes"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListSize)).Decode(&list); err != nil {
		return nil, fmt.Errorf("read notes from %s: %w", req.URL.Redacted(), err)
	}
	notes := slices.DeleteFunc(list.Notes, func(n Note) bool { return strings.TrimSpace(n.ID) == "" })
	slices.SortFunc(notes, func(a, b Note) int {
		if c := a.UpdatedAt.Compare(b.UpdatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return notes, nil
}
