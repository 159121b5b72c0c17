package filesystem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary-sync/tributary/internal/connectors/connectortest"
	"github.com/tributary-sync/tributary/internal/connectors/filesystem"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// epoch is the modification time files get in these tests, plus a tick of
// seconds per write, so changes are visible whatever the file system's
// timestamp resolution.
var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func write(t *testing.T, root, rel, data string, tick int) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	touch(t, root, rel, tick)
}

func touch(t *testing.T, root, rel string, tick int) {
	t.Helper()
	mt := epoch.Add(time.Duration(tick) * time.Second)
	if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(rel)), mt, mt); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, filepath.FromSlash(rel))); err != nil {
		t.Fatal(err)
	}
}

type attempt struct {
	mode       connector.SyncMode
	cfg        filesystem.Config
	checkpoint json.RawMessage
	resumed    bool
	after      func(connectortest.Event, int) error
	ignoreCtx  bool
}

func (a attempt) run(ctx context.Context, t *testing.T) (*connectortest.Recorder, error) {
	t.Helper()
	raw, err := json.Marshal(a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mode := a.mode
	if mode == "" {
		mode = connector.Full
	}
	req := &connector.SyncRequest{
		SourceID: "src", RunID: "run", Mode: mode, Config: raw,
		Checkpoint: a.checkpoint, Resumed: a.resumed, Attempt: 1,
	}
	if a.resumed {
		req.Attempt = 2
	}
	rec := connectortest.New(t)
	rec.After = a.after
	rec.IgnoreContext = a.ignoreCtx
	return rec, filesystem.New().Sync(ctx, req, rec)
}

// mustRun runs a and fails the test unless the sync completed.
func (a attempt) mustRun(t *testing.T) *connectortest.Recorder {
	t.Helper()
	rec, err := a.run(t.Context(), t)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if _, ok := rec.Final(); !ok {
		t.Fatal("sync returned nil without Complete")
	}
	return rec
}

func decode(t *testing.T, raw json.RawMessage) filesystem.Checkpoint {
	t.Helper()
	var cp filesystem.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatalf("decode checkpoint %s: %v", raw, err)
	}
	return cp
}

// covered lists the paths a checkpoint claims as handled.
func covered(raw json.RawMessage) ([]string, error) {
	var cp filesystem.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(cp.Files))
	for p := range cp.Files {
		ids = append(ids, p)
	}
	return ids, nil
}

func keys(m map[string]filesystem.FileState) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// trace renders the data events of a recording as "kind id" lines.
func trace(rec *connectortest.Recorder) []string {
	var out []string
	for _, e := range rec.Events() {
		switch e.Kind {
		case connectortest.Emit, connectortest.Update, connectortest.Delete, connectortest.Error:
			out = append(out, string(e.Kind)+" "+e.ID)
		}
	}
	return out
}

func assertBehind(t *testing.T, rec *connectortest.Recorder, baseline ...string) {
	t.Helper()
	if err := rec.CheckpointsBehindData(covered, baseline...); err != nil {
		t.Error(err)
	}
}

func TestManifest(t *testing.T) {
	m := filesystem.New().Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Name != filesystem.Name || !m.Supports(connector.Full) || !m.Supports(connector.Incremental) {
		t.Errorf("manifest = %+v", m)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "file.txt", "x", 0)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name       string
		config     string
		checkpoint string
		want       string
		is         error
	}{
		{name: "relative root", config: `{"root":"notes"}`, want: `root "notes" must be an absolute path`},
		{name: "dot-relative root", config: `{"root":"./notes"}`, want: "must be an absolute path"},
		{name: "empty root", config: `{"root":""}`, want: `root "" must be an absolute path`},
		{name: "no root", config: `{}`, want: "must be an absolute path"},
		{name: "missing root", config: fmt.Sprintf(`{"root":%q}`, missing), want: "root: ", is: fs.ErrNotExist},
		{name: "root is a file", config: fmt.Sprintf(`{"root":%q}`, filepath.Join(dir, "file.txt")), want: "is not a directory"},
		{name: "bad include", config: fmt.Sprintf(`{"root":%q,"include":["docs/[a-"]}`, dir), want: `invalid glob pattern "docs/[a-"`},
		{name: "bad exclude", config: fmt.Sprintf(`{"root":%q,"exclude":["**/*.md","{a,b"]}`, dir), want: `invalid glob pattern "{a,b"`},
		{name: "wrong type", config: `{"root":42}`, want: "decode config"},
		{name: "bad checkpoint", config: fmt.Sprintf(`{"root":%q}`, dir), checkpoint: `{"files":[]}`, want: "decode checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &connector.SyncRequest{Mode: connector.Full, Config: json.RawMessage(tt.config)}
			if tt.checkpoint != "" {
				req.Checkpoint = json.RawMessage(tt.checkpoint)
			}
			rec := connectortest.New(t)
			err := filesystem.New().Sync(t.Context(), req, rec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
			if ev := rec.Events(); len(ev) != 0 {
				t.Errorf("a rejected config reported %v", ev)
			}
		})
	}
}

// Sizes and counts below 1 are the schema's to reject: the manager validates
// every source config against it before a sync can start, with one error
// naming each bad field.
func TestConfigSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(filesystem.New().Manifest().ConfigSchema))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("mem://filesystem.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("mem://filesystem.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		config string
		bad    string // the field the error must name; "" when valid
	}{
		{`{"root":"/srv/notes"}`, ""},
		{`{"root":"/srv/notes","include":["**/*.md"],"exclude":["tmp/**"],"max_file_size":1,"checkpoint_every":1}`, ""},
		{`{"root":"/srv/notes","max_file_size":-1}`, "max_file_size"},
		{`{"root":"/srv/notes","max_file_size":0}`, "max_file_size"},
		{`{"root":"/srv/notes","checkpoint_every":-5}`, "checkpoint_every"},
		{`{"root":"/srv/notes","include":[""]}`, "include"},
		{`{"root":""}`, "root"},
		{`{}`, "root"},
		{`{"root":"/srv/notes","extra":true}`, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			err = sch.Validate(inst)
			switch {
			case tt.bad == "" && err != nil:
				t.Errorf("valid config rejected: %v", err)
			case tt.bad != "" && err == nil:
				t.Errorf("config accepted, want an error about %s", tt.bad)
			case tt.bad != "" && !strings.Contains(err.Error(), tt.bad):
				t.Errorf("error %v does not name %s", err, tt.bad)
			}
		})
	}
}

// fixture is a folder that exercises globs, sizes and file types.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write(t, root, "a.txt", "hello", 1)
	write(t, root, "b.md", "# Title\n", 2)
	write(t, root, "big.txt", strings.Repeat("x", 100), 3)
	write(t, root, "docs/deep/x.txt", "deep", 4)
	write(t, root, "docs/guide.md", "guide", 5)
	write(t, root, "docs/img.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", 6)
	write(t, root, "node_modules/lib.js", "module.exports = 1;", 7)
	write(t, root, "notes.tmp", "scratch", 8)
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Symlinks are not regular files and are never synced.
	if err := os.Symlink(filepath.Join(root, "a.txt"), filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestFullSync(t *testing.T) {
	root := fixture(t)
	all := []string{"a.txt", "b.md", "big.txt", "docs/deep/x.txt", "docs/guide.md", "docs/img.png", "node_modules/lib.js", "notes.tmp"}

	tests := []struct {
		name    string
		include []string
		exclude []string
		max     int64
		emitted []string
		errored []string
	}{
		{name: "everything", emitted: all},
		{
			name:    "include markdown anywhere",
			include: []string{"**/*.md"},
			emitted: []string{"b.md", "docs/guide.md"},
		},
		{
			name:    "include a folder and a top-level pattern",
			include: []string{"docs/**", "*.txt"},
			emitted: []string{"a.txt", "big.txt", "docs/deep/x.txt", "docs/guide.md", "docs/img.png"},
		},
		{
			name:    "exclude a folder and an extension",
			exclude: []string{"node_modules/**", "**/*.tmp"},
			emitted: []string{"a.txt", "b.md", "big.txt", "docs/deep/x.txt", "docs/guide.md", "docs/img.png"},
		},
		{
			name:    "exclude wins over include",
			include: []string{"docs/**"},
			exclude: []string{"docs/deep/**", "**/*.png"},
			emitted: []string{"docs/guide.md"},
		},
		{
			name:    "max_file_size reports larger files as errors",
			exclude: []string{"node_modules/**", "*.tmp"},
			max:     64,
			emitted: []string{"a.txt", "b.md", "docs/deep/x.txt", "docs/guide.md", "docs/img.png"},
			errored: []string{"big.txt"},
		},
		{
			name:    "max_file_size equal to the size is allowed",
			include: []string{"big.txt"},
			max:     100,
			emitted: []string{"big.txt"},
		},
		{
			name:    "max_file_size one below the size is not",
			include: []string{"big.txt"},
			max:     99,
			errored: []string{"big.txt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filesystem.Config{Root: root, Include: tt.include, Exclude: tt.exclude, MaxFileSize: tt.max}
			rec := attempt{cfg: cfg}.mustRun(t)

			if got := rec.IDs(connectortest.Emit); !slices.Equal(got, tt.emitted) {
				t.Errorf("emitted %q, want %q", got, tt.emitted)
			}
			if got := rec.IDs(connectortest.Error); !slices.Equal(got, tt.errored) {
				t.Errorf("errors for %q, want %q", got, tt.errored)
			}
			if got := rec.IDs(connectortest.Update, connectortest.Delete); len(got) != 0 {
				t.Errorf("a first full sync reported updates or deletes: %q", got)
			}
			if got, want := rec.Scanned(), len(tt.emitted)+len(tt.errored); got != want {
				t.Errorf("scanned %d, want %d", got, want)
			}
			final, _ := rec.Final()
			cp := decode(t, final)
			if cp.Partial || cp.After != "" {
				t.Errorf("final checkpoint is partial: %s", final)
			}
			if got := keys(cp.Files); !slices.Equal(got, tt.emitted) {
				t.Errorf("final checkpoint covers %q, want the emitted %q", got, tt.emitted)
			}
			for _, e := range rec.Events() {
				if e.Kind == connectortest.Error && !strings.Contains(e.Err, "larger than max_file_size") {
					t.Errorf("error for %s: %q", e.ID, e.Err)
				}
			}
			assertBehind(t, rec)
		})
	}
}

func TestDocuments(t *testing.T) {
	root := fixture(t)
	rec := attempt{cfg: filesystem.Config{Root: root}}.mustRun(t)
	docs := rec.Docs()

	for _, tt := range []struct {
		id       string
		data     string
		mimeType string
		binary   bool
	}{
		{id: "a.txt", data: "hello", mimeType: "text/plain"},
		{id: "docs/deep/x.txt", data: "deep", mimeType: "text/plain"},
		{id: "docs/guide.md", data: "guide", mimeType: "text/"},
		{id: "docs/img.png", data: "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", mimeType: "image/png", binary: true},
	} {
		t.Run(tt.id, func(t *testing.T) {
			doc, ok := docs[tt.id]
			if !ok {
				t.Fatalf("%s not emitted", tt.id)
			}
			base := filepath.Base(tt.id)
			if doc.Title != base || doc.Metadata.Title != base || doc.Metadata.Path != tt.id {
				t.Errorf("title %q / %q, path %q", doc.Title, doc.Metadata.Title, doc.Metadata.Path)
			}
			if doc.Metadata.Size != int64(len(tt.data)) {
				t.Errorf("size %d, want %d", doc.Metadata.Size, len(tt.data))
			}
			if !strings.HasPrefix(doc.Metadata.MimeType, tt.mimeType) {
				t.Errorf("mime type %q, want %q…", doc.Metadata.MimeType, tt.mimeType)
			}
			wantURL := "file://" + filepath.ToSlash(filepath.Join(root, filepath.FromSlash(tt.id)))
			if doc.Metadata.URL != wantURL {
				t.Errorf("url %q, want %q", doc.Metadata.URL, wantURL)
			}
			if doc.Metadata.UpdatedAt == nil || doc.Metadata.UpdatedAt.Location() != time.UTC || doc.Metadata.UpdatedAt.Unix() < epoch.Unix() {
				t.Errorf("updated_at %v", doc.Metadata.UpdatedAt)
			}
			if !doc.Permissions.Public {
				t.Error("document is not public")
			}
			c, ok := rec.ContentOf(doc)
			if !ok {
				t.Fatalf("content %q not stored", doc.ContentID)
			}
			if string(c.Data) != tt.data || c.Binary != tt.binary || c.ContentType != doc.Metadata.MimeType {
				t.Errorf("content %q binary=%v type %q", c.Data, c.Binary, c.ContentType)
			}
		})
	}
}

func TestIncremental(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.txt", "hello", 1)
	write(t, root, "b.md", "bee", 2)
	write(t, root, "docs/guide.md", "guide", 3)
	write(t, root, "docs/keep.txt", "keep", 4)
	write(t, root, "z.txt", "zed", 5)
	cfg := filesystem.Config{Root: root}
	first := attempt{cfg: cfg}.mustRun(t)
	cp1, _ := first.Final()

	// Nothing changed: nothing to report, and the checkpoint stays as it was.
	same := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp1}.mustRun(t)
	if got := trace(same); len(got) != 0 {
		t.Errorf("an unchanged folder reported %q", got)
	}
	if got := same.Scanned(); got != 5 {
		t.Errorf("scanned %d, want every file (5)", got)
	}
	if cp, _ := same.Final(); !bytes.Equal(cp, cp1) {
		t.Errorf("checkpoint changed from %s to %s", cp1, cp)
	}

	write(t, root, "a.txt", "hello again", 10) // new content and time
	touch(t, root, "docs/guide.md", 11)        // time only
	write(t, root, "c.txt", "new", 12)         // added
	remove(t, root, "b.md")                    // deleted
	remove(t, root, "z.txt")                   // deleted

	rec := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp1}.mustRun(t)
	want := []string{"update a.txt", "emit c.txt", "update docs/guide.md", "delete b.md", "delete z.txt"}
	if got := trace(rec); !slices.Equal(got, want) {
		t.Errorf("incremental reported\n%q\nwant\n%q", got, want)
	}
	if doc := rec.Docs()["a.txt"]; doc.Metadata.Size != int64(len("hello again")) {
		t.Errorf("a.txt size %d", doc.Metadata.Size)
	}
	final, _ := rec.Final()
	cp := decode(t, final)
	if got, want := keys(cp.Files), []string{"a.txt", "c.txt", "docs/guide.md", "docs/keep.txt"}; !slices.Equal(got, want) {
		t.Errorf("checkpoint covers %q, want %q", got, want)
	}
	if got, want := cp.Files["docs/guide.md"].MtimeNS, epoch.Add(11*time.Second).UnixNano(); got != want {
		t.Errorf("guide.md mtime %d, want %d", got, want)
	}
	assertBehind(t, rec, keys(decode(t, cp1).Files)...)

	// A full sync with the same checkpoint reads everything again, as new
	// documents, and still reports what is gone.
	write(t, root, "a.txt", "third", 20)
	remove(t, root, "c.txt")
	full := attempt{mode: connector.Full, cfg: cfg, checkpoint: final}.mustRun(t)
	want = []string{"emit a.txt", "emit docs/guide.md", "emit docs/keep.txt", "delete c.txt"}
	if got := trace(full); !slices.Equal(got, want) {
		t.Errorf("full sync reported\n%q\nwant\n%q", got, want)
	}
}

func TestIncrementalWithoutCheckpointReadsEverything(t *testing.T) {
	root := t.TempDir()
	write(t, root, "a.txt", "a", 1)
	write(t, root, "b.txt", "b", 2)
	for _, cp := range []string{"", "null", `{"files":null}`} {
		t.Run(cp, func(t *testing.T) {
			rec := attempt{mode: connector.Incremental, cfg: filesystem.Config{Root: root}, checkpoint: json.RawMessage(cp)}.mustRun(t)
			if got, want := trace(rec), []string{"emit a.txt", "emit b.txt"}; !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestCheckpointEvery(t *testing.T) {
	root := t.TempDir()
	var all []string
	for i := range 7 {
		p := fmt.Sprintf("f%02d.txt", i)
		write(t, root, p, p, i)
		all = append(all, p)
	}
	rec := attempt{cfg: filesystem.Config{Root: root, CheckpointEvery: 3}}.mustRun(t)

	var kinds []string
	for _, e := range rec.Events() {
		kinds = append(kinds, string(e.Kind))
	}
	want := []string{"emit", "emit", "emit", "checkpoint", "emit", "emit", "emit", "checkpoint", "emit", "complete"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %q, want %q", kinds, want)
	}
	cps := rec.Checkpoints()
	for i, raw := range cps {
		cp := decode(t, raw)
		n := 3 * (i + 1)
		if !cp.Partial || cp.After != all[n-1] {
			t.Errorf("checkpoint %d: partial=%v after=%q, want true %q", i, cp.Partial, cp.After, all[n-1])
		}
		if got := keys(cp.Files); !slices.Equal(got, all[:n]) {
			t.Errorf("checkpoint %d covers %q, want %q", i, got, all[:n])
		}
	}
	assertBehind(t, rec)
}

// files creates n files f00.txt … and returns their paths.
func files(t *testing.T, root string, n int) []string {
	t.Helper()
	var all []string
	for i := range n {
		p := fmt.Sprintf("f%02d.txt", i)
		write(t, root, p, "content of "+p, i)
		all = append(all, p)
	}
	return all
}

// stopAt stops a sync at its n-th event of kind: a checkpoint returns
// ErrStopRequested after it is stored, any other event fails the sync after
// it is recorded (the worst case: the event was published, the sync died).
func stopAt(kind connectortest.Kind, n int) func(connectortest.Event, int) error {
	if kind == connectortest.Checkpoint {
		return connectortest.StopAtCheckpoint(n)
	}
	seen := 0
	return func(e connectortest.Event, _ int) error {
		if e.Kind == kind {
			seen++
			if seen == n {
				return errInterrupted
			}
		}
		return nil
	}
}

var errInterrupted = errors.New("interrupted")

func TestResumeFull(t *testing.T) {
	tests := []struct {
		name string
		kind connectortest.Kind
		n    int
	}{
		{"stop at first checkpoint", connectortest.Checkpoint, 1},
		{"stop at second checkpoint", connectortest.Checkpoint, 2},
		{"stop at last checkpoint", connectortest.Checkpoint, 3},
		{"die before any checkpoint", connectortest.Emit, 2},
		{"die after a checkpoint", connectortest.Emit, 5},
		{"die on the last file", connectortest.Emit, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			all := files(t, root, 10)
			cfg := filesystem.Config{Root: root, CheckpointEvery: 3}

			first, err := attempt{cfg: cfg, after: stopAt(tt.kind, tt.n)}.run(t.Context(), t)
			if err == nil {
				t.Fatal("interrupted attempt returned nil")
			}
			if tt.kind == connectortest.Checkpoint && !errors.Is(err, connector.ErrStopRequested) {
				t.Errorf("err = %v, want ErrStopRequested", err)
			}
			if _, done := first.Final(); done {
				t.Fatal("interrupted attempt completed")
			}
			assertBehind(t, first)

			cp := first.LastCheckpoint()
			after := ""
			if cp != nil {
				after = decode(t, cp).After
			}
			second := attempt{cfg: cfg, checkpoint: cp, resumed: true}.mustRun(t)
			assertBehind(t, second, first.IDs(connectortest.Emit)...)

			resumed := second.IDs(connectortest.Emit)
			for _, p := range resumed {
				if after != "" && p <= after {
					t.Errorf("resumed attempt re-emitted %s, at or before %q", p, after)
				}
			}
			var want []string
			for _, p := range all {
				if p > after {
					want = append(want, p)
				}
			}
			if !slices.Equal(resumed, want) {
				t.Errorf("resumed attempt emitted %q, want %q", resumed, want)
			}
			// Together the attempts report every file; a file twice only
			// when the first attempt emitted it after its last checkpoint.
			union := map[string]int{}
			for _, p := range append(first.IDs(connectortest.Emit), resumed...) {
				union[p]++
			}
			for _, p := range all {
				switch {
				case union[p] == 0:
					t.Errorf("%s lost", p)
				case union[p] > 1 && p <= after:
					t.Errorf("%s emitted %d times though the checkpoint covered it", p, union[p])
				}
			}
			if got := second.IDs(connectortest.Delete); len(got) != 0 {
				t.Errorf("resumed attempt deleted %q", got)
			}
			final, _ := second.Final()
			if got := keys(decode(t, final).Files); !slices.Equal(got, all) {
				t.Errorf("final checkpoint covers %q, want %q", got, all)
			}
		})
	}
}

func TestResumeIncremental(t *testing.T) {
	root := t.TempDir()
	all := files(t, root, 10)
	cfg := filesystem.Config{Root: root, CheckpointEvery: 2}
	base := attempt{cfg: cfg}.mustRun(t)
	cp0, _ := base.Final()

	for _, p := range []string{"f01.txt", "f04.txt", "f05.txt", "f08.txt"} {
		write(t, root, p, "changed "+p, 100)
	}
	remove(t, root, "f02.txt")
	write(t, root, "f10.txt", "new", 100)

	first, err := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp0, after: connectortest.StopAtCheckpoint(1)}.run(t.Context(), t)
	if !errors.Is(err, connector.ErrStopRequested) {
		t.Fatalf("err = %v, want ErrStopRequested", err)
	}
	if got, want := trace(first), []string{"update f01.txt", "update f04.txt"}; !slices.Equal(got, want) {
		t.Fatalf("first attempt %q, want %q", got, want)
	}
	cp := first.LastCheckpoint()
	if got := decode(t, cp); !got.Partial || got.After != "f04.txt" {
		t.Fatalf("checkpoint %s", cp)
	}
	assertBehind(t, first, all...)

	second := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp, resumed: true}.mustRun(t)
	if got, want := trace(second), []string{"update f05.txt", "update f08.txt", "emit f10.txt", "delete f02.txt"}; !slices.Equal(got, want) {
		t.Errorf("resumed attempt %q, want %q", got, want)
	}
	assertBehind(t, second, append(all, "f01.txt", "f04.txt")...)
	final, _ := second.Final()
	if got, want := keys(decode(t, final).Files), []string{"f00.txt", "f01.txt", "f03.txt", "f04.txt", "f05.txt", "f06.txt", "f07.txt", "f08.txt", "f09.txt", "f10.txt"}; !slices.Equal(got, want) {
		t.Errorf("final checkpoint covers %q, want %q", got, want)
	}

	// The next incremental finds nothing left to do.
	next := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: final}.mustRun(t)
	if got := trace(next); len(got) != 0 {
		t.Errorf("after the resumed run, an incremental reported %q", got)
	}
}

// Changes between two attempts to paths the first attempt already passed are
// not reported by the resumed attempt, but are not lost either: the final
// checkpoint does not claim them, so the next run reports them.
func TestResumeLosesNothingBehindTheCursor(t *testing.T) {
	root := t.TempDir()
	files(t, root, 6)
	cfg := filesystem.Config{Root: root, CheckpointEvery: 3}

	first, err := attempt{cfg: cfg, after: connectortest.StopAtCheckpoint(1)}.run(t.Context(), t)
	if !errors.Is(err, connector.ErrStopRequested) {
		t.Fatalf("err = %v", err)
	}
	cp := first.LastCheckpoint()
	if after := decode(t, cp).After; after != "f02.txt" {
		t.Fatalf("after = %q", after)
	}

	write(t, root, "f00.txt", "changed behind the cursor", 50) // changed, ≤ after
	write(t, root, "f01a.txt", "added behind the cursor", 51)  // added, ≤ after
	remove(t, root, "f02.txt")                                 // deleted, ≤ after
	write(t, root, "f04.txt", "changed ahead", 52)             // changed, > after

	second := attempt{cfg: cfg, checkpoint: cp, resumed: true}.mustRun(t)
	if got, want := trace(second), []string{"emit f03.txt", "emit f04.txt", "emit f05.txt", "delete f02.txt"}; !slices.Equal(got, want) {
		t.Errorf("resumed attempt %q, want %q", got, want)
	}
	final, _ := second.Final()
	next := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: final}.mustRun(t)
	if got, want := trace(next), []string{"update f00.txt", "emit f01a.txt"}; !slices.Equal(got, want) {
		t.Errorf("next run %q, want %q", got, want)
	}
}

// Only a resumed attempt of the same run skips: a new run after a failed one
// treats its partial checkpoint as a baseline and reads every file.
func TestPartialCheckpointOfAnotherRun(t *testing.T) {
	root := t.TempDir()
	all := files(t, root, 6)
	cfg := filesystem.Config{Root: root, CheckpointEvery: 3}
	failed, _ := attempt{cfg: cfg, after: stopAt(connectortest.Emit, 5)}.run(t.Context(), t)
	cp := failed.LastCheckpoint()
	if !decode(t, cp).Partial {
		t.Fatalf("checkpoint %s is not partial", cp)
	}

	full := attempt{cfg: cfg, checkpoint: cp}.mustRun(t)
	if got := full.IDs(connectortest.Emit); !slices.Equal(got, all) {
		t.Errorf("full run after a failed one emitted %q, want %q", got, all)
	}

	write(t, root, "f01.txt", "changed", 60)
	write(t, root, "f04.txt", "changed", 61)
	incr := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp}.mustRun(t)
	// f00–f02 are in the partial checkpoint; f03–f05 are not.
	if got, want := trace(incr), []string{"update f01.txt", "emit f03.txt", "emit f04.txt", "emit f05.txt"}; !slices.Equal(got, want) {
		t.Errorf("incremental after a failed run %q, want %q", got, want)
	}
}

func TestCancel(t *testing.T) {
	// With a strict SyncContext every call fails once ctx is done; with a
	// lenient one (an asynchronous publish need not look at ctx) only the
	// connector's own checks stop it.
	for _, lenient := range []bool{false, true} {
		t.Run(fmt.Sprintf("before the sync, lenient %v", lenient), func(t *testing.T) {
			root := t.TempDir()
			files(t, root, 3)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			rec, err := attempt{cfg: filesystem.Config{Root: root}, ignoreCtx: lenient}.run(ctx, t)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if ev := rec.Events(); len(ev) != 0 {
				t.Errorf("cancelled sync reported %v", ev)
			}
		})
		for _, every := range []int{1, 2, 500} {
			t.Run(fmt.Sprintf("during the sync, checkpoint_every %d, lenient %v", every, lenient), func(t *testing.T) {
				root := t.TempDir()
				all := files(t, root, 8)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				emits := 0
				rec, err := attempt{cfg: filesystem.Config{Root: root, CheckpointEvery: every}, ignoreCtx: lenient, after: func(e connectortest.Event, _ int) error {
					if e.Kind == connectortest.Emit {
						emits++
						if emits == 3 {
							cancel()
						}
					}
					return nil
				}}.run(ctx, t)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				if got := rec.IDs(connectortest.Emit); !slices.Equal(got, all[:3]) {
					t.Errorf("emitted %q, want %q", got, all[:3])
				}
				if _, done := rec.Final(); done {
					t.Error("cancelled sync completed")
				}
				if n := rec.Refused(); n > 1 {
					t.Errorf("%d calls after cancellation, want at most 1", n)
				}
			})
		}
	}
}

func TestDeterministicOrder(t *testing.T) {
	root := t.TempDir()
	// Written out of order; directory walks list "a/" before "a-b.txt" and
	// "a.txt", but ids sort bytewise: '-' < '.' < '/'.
	for i, p := range []string{"z.txt", "b/a.txt", "a/b.txt", "a.txt", "a-b.txt", "A.txt", "a/a/a.txt", "ä.txt"} {
		write(t, root, p, p, i)
	}
	want := []string{"A.txt", "a-b.txt", "a.txt", "a/a/a.txt", "a/b.txt", "b/a.txt", "z.txt", "ä.txt"}
	var runs [][]connectortest.Event
	for range 3 {
		rec := attempt{cfg: filesystem.Config{Root: root, CheckpointEvery: 2}}.mustRun(t)
		if got := rec.IDs(connectortest.Emit); !slices.Equal(got, want) {
			t.Fatalf("emitted %q, want %q", got, want)
		}
		runs = append(runs, rec.Events())
	}
	for i := 1; i < len(runs); i++ {
		if len(runs[i]) != len(runs[0]) {
			t.Fatalf("run %d has %d events, run 0 %d", i, len(runs[i]), len(runs[0]))
		}
		for j := range runs[0] {
			a, b := runs[0][j], runs[i][j]
			if a.Kind != b.Kind || a.ID != b.ID || !bytes.Equal(a.Checkpoint, b.Checkpoint) {
				t.Errorf("run %d event %d: %s %s %s, run 0: %s %s %s", i, j, b.Kind, b.ID, b.Checkpoint, a.Kind, a.ID, a.Checkpoint)
			}
		}
	}
}

// A root that is a symlink to a directory syncs that directory.
func TestSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	write(t, real, "a.txt", "a", 1)
	write(t, real, "sub/b.txt", "b", 2)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("symlinks unsupported: %v", err)
	}
	rec := attempt{cfg: filesystem.Config{Root: link}}.mustRun(t)
	if got, want := trace(rec), []string{"emit a.txt", "emit sub/b.txt"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The checkpoint's file list survives any name, reads the older plain map,
// and stays small enough for one event with 60,000 files.
func TestCheckpointEncoding(t *testing.T) {
	cp := filesystem.Checkpoint{Files: map[string]filesystem.FileState{
		"plain.txt":        {Size: 1, MtimeNS: 2},
		"tab\there.txt":    {Size: 3, MtimeNS: 4},
		"new\nline.txt":    {Size: 5, MtimeNS: 6},
		`quote"s\back.txt`: {Size: 7, MtimeNS: 8},
		"ünïcødé/ファイル.md":  {Size: 9, MtimeNS: 10},
	}, Partial: true, After: "plain.txt"}
	raw, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	var back filesystem.Checkpoint
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, cp) {
		t.Fatalf("round trip: %+v, want %+v", back, cp)
	}

	var old filesystem.Checkpoint
	if err := json.Unmarshal([]byte(`{"files":{"a.txt":{"size":1,"mtime_ns":2}},"partial":true,"after":"a.txt"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Files["a.txt"] != (filesystem.FileState{Size: 1, MtimeNS: 2}) || !old.Partial || old.After != "a.txt" {
		t.Fatalf("plain map checkpoint: %+v", old)
	}

	big := filesystem.Checkpoint{Files: map[string]filesystem.FileState{}}
	for i := range 60_000 {
		big.Files[fmt.Sprintf("projects/team-%02d/docs/section-%03d/file-%06d.md", i%40, i%300, i)] = filesystem.FileState{Size: int64(1000 + i), MtimeNS: 1_700_000_000_000_000_000 + int64(i)*1_000_003}
	}
	raw, err = json.Marshal(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) > 900<<10 {
		t.Fatalf("checkpoint of 60,000 files is %d bytes, over the ~1 MiB event limit", len(raw))
	}
	t.Logf("checkpoint of 60,000 files: %d bytes", len(raw))

	for _, bad := range []string{`{"files_gz":"!!"}`, `{"files_gz":"aGVsbG8="}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: decoded without error", bad)
		}
	}
}

// Files of types the extractor knows reach indexers as text, with their
// original bytes stored beside; a file that fails to parse keeps its bytes
// and says why.
func TestExtraction(t *testing.T) {
	root := t.TempDir()
	write(t, root, "page.html", `<html><head><script>x()</script></head><body><h1>Title</h1><p>Body text</p></body></html>`, 1)
	write(t, root, "data.json", `{"name":"tributary"}`, 2)
	write(t, root, "broken.pdf", "%PDF-1.4 not really", 3)
	write(t, root, "notes.md", "# Notes", 4)
	rec := attempt{cfg: filesystem.Config{Root: root}}.mustRun(t)
	docs := rec.Docs()
	for _, tt := range []struct {
		id, text, rawType string
		extractErr        bool
	}{
		{"page.html", "Title\nBody text", "text/html", false},
		{"data.json", "name: tributary", "application/json", false},
		{"broken.pdf", "", "application/pdf", true},
	} {
		t.Run(tt.id, func(t *testing.T) {
			doc := docs[tt.id]
			c, ok := rec.ContentOf(doc)
			if !ok {
				t.Fatalf("content of %s not stored", tt.id)
			}
			if tt.extractErr {
				if doc.Metadata.Extra["extract_error"] == nil || !c.Binary {
					t.Fatalf("broken file: extra %v, content binary=%v", doc.Metadata.Extra, c.Binary)
				}
				return
			}
			if string(c.Data) != tt.text || !strings.HasPrefix(c.ContentType, "text/plain") {
				t.Errorf("text %q (%s), want %q", c.Data, c.ContentType, tt.text)
			}
			rawID, _ := doc.Metadata.Extra["raw_content_id"].(string)
			raw, ok := rec.ContentOf(connector.Document{ContentID: rawID})
			if !ok || !strings.HasPrefix(raw.ContentType, tt.rawType) || !raw.Binary {
				t.Errorf("raw bytes %q: %+v", rawID, raw)
			}
		})
	}
	if c, _ := rec.ContentOf(docs["notes.md"]); string(c.Data) != "# Notes" || docs["notes.md"].Metadata.Extra != nil {
		t.Errorf("markdown stored as %q, extra %v", c.Data, docs["notes.md"].Metadata.Extra)
	}
}

// SyncDocument reads one file again: emitted when present, deleted when
// gone, outside the patterns or not a path under the root.
func TestSyncDocument(t *testing.T) {
	root := fixture(t)
	raw, _ := json.Marshal(filesystem.Config{Root: root, Exclude: []string{"**/*.png"}})
	var _ connector.DocumentSyncer = filesystem.New()
	for _, tt := range []struct {
		id   string
		want string
	}{
		{"a.txt", "emit a.txt"},
		{"docs/deep/x.txt", "emit docs/deep/x.txt"},
		{"missing.txt", "delete missing.txt"},
		{"docs/img.png", "delete docs/img.png"},
		{"../etc/passwd", "delete ../etc/passwd"},
		{"/abs", "delete /abs"},
		{"docs", "delete docs"},
	} {
		rec := connectortest.New(t)
		req := &connector.SyncRequest{SourceID: "src", RunID: "run", Mode: connector.Incremental, Config: raw, Attempt: 1, Document: tt.id}
		if err := filesystem.New().SyncDocument(t.Context(), req, rec); err != nil {
			t.Fatalf("%s: %v", tt.id, err)
		}
		if got := trace(rec); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: %q, want %q", tt.id, got, tt.want)
		}
	}
	rec := connectortest.New(t)
	write(t, root, "a.txt", "changed", 9)
	req := &connector.SyncRequest{SourceID: "src", RunID: "run", Mode: connector.Incremental, Config: raw, Attempt: 1, Document: "a.txt"}
	if err := filesystem.New().SyncDocument(t.Context(), req, rec); err != nil {
		t.Fatal(err)
	}
	if c, ok := rec.ContentOf(rec.Docs()["a.txt"]); !ok || string(c.Data) != "changed" {
		t.Fatalf("content %q", c.Data)
	}
}
