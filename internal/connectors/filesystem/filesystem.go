// Package filesystem is the built-in connector for a folder on the worker's
// file system. It imports only pkg/connector, as a third-party connector would.
//
// Every regular file under root that matches include and not exclude (glob
// patterns with **, relative to root, slash-separated) is one document whose
// external id is its slash-separated path relative to root. Text files are
// stored as text, everything else as bytes.
//
// The checkpoint records the size and modification time of every file, so an
// incremental sync emits only new and changed files and reports files that are
// gone as deleted. While a sync runs it saves a partial checkpoint every
// checkpoint_every files, so an interrupted sync resumes where it stopped.
//
// Its connection test checks that root is a directory the worker can list.
// It declares no actions.
package filesystem

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Name is the connector's type name.
const Name = "filesystem"

const (
	defaultMaxFileSize     = 50 << 20
	defaultCheckpointEvery = 500
)

const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["root"],
  "additionalProperties": false,
  "properties": {
    "root": {"type": "string", "minLength": 1, "description": "Absolute path of the folder to sync, on the worker's machine."},
    "include": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "Glob patterns (with **) of files to sync, relative to root. Default: every file."},
    "exclude": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "Glob patterns of files to skip, relative to root."},
    "max_file_size": {"type": "integer", "minimum": 1, "description": "Files larger than this many bytes are reported as errors. Default 50 MiB."},
    "checkpoint_every": {"type": "integer", "minimum": 1, "description": "Save a resumable checkpoint every this many files. Default 500."}
  }
}`

// Config is the source configuration.
type Config struct {
	Root            string   `json:"root"`
	Include         []string `json:"include,omitempty"`
	Exclude         []string `json:"exclude,omitempty"`
	MaxFileSize     int64    `json:"max_file_size,omitempty"`
	CheckpointEvery int      `json:"checkpoint_every,omitempty"`
}

func (c *Config) setDefaults() {
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = defaultMaxFileSize
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = defaultCheckpointEvery
	}
}

func (c *Config) validate() error {
	if !filepath.IsAbs(c.Root) {
		return fmt.Errorf("root %q must be an absolute path", c.Root)
	}
	for _, p := range append(append([]string{}, c.Include...), c.Exclude...) {
		if !doublestar.ValidatePattern(p) {
			return fmt.Errorf("invalid glob pattern %q", p)
		}
	}
	return nil
}

// FileState is what the checkpoint remembers of one file.
type FileState struct {
	Size    int64 `json:"size"`
	MtimeNS int64 `json:"mtime_ns"`
}

// Checkpoint is the connector's checkpoint.
type Checkpoint struct {
	// Files maps each path to its state. In a partial checkpoint, paths up to
	// and including After hold this run's state; later paths the previous
	// run's.
	Files map[string]FileState `json:"files"`
	// Partial marks a checkpoint saved in the middle of a sync.
	Partial bool `json:"partial,omitempty"`
	// After is the last path handled when Partial is set.
	After string `json:"after,omitempty"`
}

// checkpointJSON is the checkpoint on the wire. The file list is a gzipped,
// base64-encoded list of `"path"\tsize\tmtime_ns` lines (the path quoted as
// a Go string, so tabs and newlines in names survive) sorted by path:
// about 13 bytes a file against the JSON map's 70, so a checkpoint of some
// 70,000 files still fits in one 1 MiB event. A plain "files" map is read
// too.
type checkpointJSON struct {
	Files   map[string]FileState `json:"files,omitempty"`
	FilesGz string               `json:"files_gz,omitempty"`
	Partial bool                 `json:"partial,omitempty"`
	After   string               `json:"after,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	paths := make([]string, 0, len(c.Files))
	for p := range c.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, p := range paths {
		st := c.Files[p]
		if _, err := fmt.Fprintf(zw, "%s\t%d\t%d\n", strconv.Quote(p), st.Size, st.MtimeNS); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return json.Marshal(checkpointJSON{FilesGz: base64.StdEncoding.EncodeToString(buf.Bytes()), Partial: c.Partial, After: c.After})
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var w checkpointJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	c.Files, c.Partial, c.After = w.Files, w.Partial, w.After
	if w.FilesGz == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(w.FilesGz)
	if err != nil {
		return fmt.Errorf("checkpoint files_gz: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("checkpoint files_gz: %w", err)
	}
	if c.Files == nil {
		c.Files = map[string]FileState{}
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 3 {
			return fmt.Errorf("checkpoint files_gz: bad line %q", sc.Text())
		}
		p, err0 := strconv.Unquote(parts[0])
		size, err1 := strconv.ParseInt(parts[1], 10, 64)
		mtime, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err0 != nil || err1 != nil || err2 != nil {
			return fmt.Errorf("checkpoint files_gz: bad line %q", sc.Text())
		}
		c.Files[p] = FileState{Size: size, MtimeNS: mtime}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("checkpoint files_gz: %w", err)
	}
	return nil
}

// Connector syncs a folder.
type Connector struct{}

// New returns the filesystem connector.
func New() *Connector { return &Connector{} }

// Manifest implements connector.Connector.
func (*Connector) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:         Name,
		Version:      "1.0.0",
		Description:  "Files of a folder on the worker's file system",
		SyncModes:    []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(configSchema),
	}
}

type entry struct {
	rel   string
	abs   string
	state FileState
	mod   time.Time
}

// decodeConfig reads a request's config with its defaults, and checks it.
func decodeConfig(req *connector.SyncRequest) (*Config, error) {
	var cfg Config
	if err := req.DecodeConfig(&cfg); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Sync implements connector.Connector.
func (c *Connector) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	cfg, err := decodeConfig(req)
	if err != nil {
		return err
	}
	var cp Checkpoint
	if _, err := req.DecodeCheckpoint(&cp); err != nil {
		return err
	}
	if cp.Files == nil {
		cp.Files = map[string]FileState{}
	}
	// Files always describes what was emitted, even in a partial checkpoint
	// left by a failed run, so it is a sound baseline. Only a resumed attempt
	// of the same run skips what that run already handled.
	after := ""
	if req.Resumed && cp.Partial {
		after = cp.After
	}

	entries, err := scan(ctx, cfg)
	if err != nil {
		return err
	}
	sc.Logger().Debug("folder scanned", zap.Int("files", len(entries)), zap.String("resume_after", after))

	full := req.Mode != connector.Incremental
	handled := 0
	for _, e := range entries {
		if after != "" && e.rel <= after {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		sc.IncrementScanned(1)
		prev, known := cp.Files[e.rel]
		if !full && known && prev == e.state {
			continue
		}
		if err := c.emitFile(ctx, sc, cfg, e, known && !full); err != nil {
			if isCtx(ctx, err) {
				return err
			}
			if errors.Is(err, errSkip) {
				continue
			}
			return err
		}
		cp.Files[e.rel] = e.state
		handled++
		if handled%cfg.CheckpointEvery == 0 {
			cp.Partial, cp.After = true, e.rel
			if err := sc.SaveCheckpoint(ctx, &cp); err != nil {
				return err
			}
		}
	}

	present := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		present[e.rel] = struct{}{}
	}
	gone := make([]string, 0)
	for p := range cp.Files {
		if _, ok := present[p]; !ok {
			gone = append(gone, p)
		}
	}
	sort.Strings(gone)
	for _, p := range gone {
		if err := sc.EmitDeleted(ctx, p); err != nil {
			return err
		}
		delete(cp.Files, p)
	}
	cp.Partial, cp.After = false, ""
	return sc.Complete(ctx, &cp)
}

// TestConnection implements connector.ConnectionTester: the root must be
// a directory the worker can list.
func (c *Connector) TestConnection(_ context.Context, req *connector.ActionRequest) error {
	cfg, err := decodeConfig(&connector.SyncRequest{Config: req.Config})
	if err != nil {
		return err
	}
	fi, err := os.Stat(cfg.Root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("root %s does not exist", cfg.Root)
	case err != nil:
		return fmt.Errorf("root %s: %w", cfg.Root, err)
	case !fi.IsDir():
		return fmt.Errorf("root %s is not a directory", cfg.Root)
	}
	f, err := os.Open(cfg.Root)
	if err == nil {
		_, err = f.ReadDir(1)
		if errors.Is(err, io.EOF) {
			err = nil // empty
		}
		_ = f.Close()
	}
	if err != nil {
		return fmt.Errorf("root %s cannot be read: %w", cfg.Root, err)
	}
	return nil
}

// SyncDocument implements connector.DocumentSyncer: it reads one file
// again, emitting it, or its deletion when it is gone or no longer matches
// the source's patterns.
func (c *Connector) SyncDocument(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	cfg, err := decodeConfig(req)
	if err != nil {
		return err
	}
	root, err := filepath.EvalSymlinks(cfg.Root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	rel := req.Document
	// External ids are clean slash paths under the root; anything else
	// (an id from another connector, a path climbing out) is no file here.
	if !fs.ValidPath(rel) || !matches(cfg, rel) {
		return sc.EmitDeleted(ctx, rel)
	}
	abs := filepath.Join(root, filepath.FromSlash(rel))
	fi, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return sc.EmitDeleted(ctx, rel)
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	sc.IncrementScanned(1)
	e := entry{rel: rel, abs: abs, state: FileState{Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano()}, mod: fi.ModTime()}
	if err := c.emitFile(ctx, sc, cfg, e, false); err != nil && !errors.Is(err, errSkip) {
		return err
	}
	return nil
}

// errSkip marks a file reported through EmitError.
var errSkip = errors.New("file skipped")

func (c *Connector) emitFile(ctx context.Context, sc connector.SyncContext, cfg *Config, e entry, updated bool) error {
	if e.state.Size > cfg.MaxFileSize {
		if err := sc.EmitError(ctx, e.rel, fmt.Errorf("file is %d bytes, larger than max_file_size %d", e.state.Size, cfg.MaxFileSize)); err != nil {
			return err
		}
		return errSkip
	}
	data, err := os.ReadFile(e.abs)
	if err != nil {
		if err := sc.EmitError(ctx, e.rel, fmt.Errorf("read: %w", err)); err != nil {
			return err
		}
		return errSkip
	}
	mimeType := detectType(e.rel, data)
	contentID, extra, err := storeContent(ctx, sc, e.rel, mimeType, data)
	if err != nil {
		return fmt.Errorf("store content of %s: %w", e.rel, err)
	}
	mod := e.mod.UTC()
	doc := connector.Document{
		ExternalID: e.rel,
		Title:      path.Base(e.rel),
		ContentID:  contentID,
		Metadata: connector.Metadata{
			Title:     path.Base(e.rel),
			UpdatedAt: &mod,
			MimeType:  mimeType,
			Size:      e.state.Size,
			Path:      e.rel,
			URL:       "file://" + filepath.ToSlash(e.abs),
			Extra:     extra,
		},
		Permissions: connector.Permissions{Public: true},
	}
	if updated {
		return sc.EmitUpdated(ctx, doc)
	}
	return sc.Emit(ctx, doc)
}

// storeContent stores a file's content and returns the content id for the
// document: plain text and Markdown as they are; any other type the
// extractor knows (HTML, CSV, JSON, PDF, Office) as its extracted text, with
// the original bytes stored too and named in extra["raw_content_id"]; other
// text (source code, YAML, XML) as it is; anything else as bytes. A file that fails extraction keeps its bytes, and the
// reason is in extra["extract_error"].
func storeContent(ctx context.Context, sc connector.SyncContext, name, mimeType string, data []byte) (string, map[string]any, error) {
	base, _, _ := mime.ParseMediaType(mimeType)
	if base == "text/plain" || base == "text/markdown" {
		id, err := sc.Content().Save(ctx, string(data), mimeType)
		return id, nil, err
	}
	textID, ex, err := sc.Content().ExtractAndStore(ctx, data, mimeType, name)
	switch {
	case errors.Is(err, connector.ErrUnsupportedContent):
		// Source code, YAML, XML…: text as it is; anything else as bytes.
		if isText(mimeType, data) {
			id, err := sc.Content().Save(ctx, string(data), mimeType)
			return id, nil, err
		}
		id, err := sc.Content().SaveBinary(ctx, data, mimeType)
		return id, nil, err
	case errors.Is(err, connector.ErrContentTooLarge), errors.Is(err, connector.ErrMalformedContent):
		id, serr := sc.Content().SaveBinary(ctx, data, mimeType)
		return id, map[string]any{"extract_error": err.Error()}, serr
	case err != nil:
		return "", nil, err
	}
	rawID, err := sc.Content().SaveBinary(ctx, data, mimeType)
	if err != nil {
		return "", nil, err
	}
	extra := map[string]any{"raw_content_id": rawID}
	if ex.Truncated {
		extra["text_truncated"] = true
	}
	return textID, extra, nil
}

// scan lists the matching regular files under the root, sorted by path so a
// resumed sync can skip what it already handled.
func scan(ctx context.Context, cfg *Config) ([]entry, error) {
	info, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("root %s is not a directory", cfg.Root)
	}
	// WalkDir does not follow a symlinked root: resolve it, or a root that
	// is a link would list nothing and an incremental sync delete everything.
	root, err := filepath.EvalSymlinks(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	var out []entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // unreadable subtree: skip it, the rest still syncs
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil //nolint:nilerr // cannot happen under Root; skip rather than fail the sync
		}
		rel = filepath.ToSlash(rel)
		if !matches(cfg, rel) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil //nolint:nilerr // vanished since the directory was read
		}
		out = append(out, entry{
			rel:   rel,
			abs:   p,
			state: FileState{Size: fi.Size(), MtimeNS: fi.ModTime().UnixNano()},
			mod:   fi.ModTime(),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", cfg.Root, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

func matches(cfg *Config, rel string) bool {
	if len(cfg.Include) > 0 {
		ok := false
		for _, p := range cfg.Include {
			if doublestar.MatchUnvalidated(p, rel) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, p := range cfg.Exclude {
		if doublestar.MatchUnvalidated(p, rel) {
			return false
		}
	}
	return true
}

func detectType(name string, data []byte) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".md", ".markdown":
		return "text/markdown; charset=utf-8"
	case ".yaml", ".yml":
		return "application/yaml"
	}
	return http.DetectContentType(data)
}

func isText(mimeType string, data []byte) bool {
	base, _, _ := strings.Cut(mimeType, ";")
	base = strings.TrimSpace(base)
	switch {
	case strings.HasPrefix(base, "text/"),
		base == "application/json", base == "application/xml",
		base == "application/yaml", base == "application/javascript",
		strings.HasSuffix(base, "+json"), strings.HasSuffix(base, "+xml"):
		return utf8.Valid(data)
	}
	return false
}

func isCtx(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
