package connectortest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/secret"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// DefaultTimeout bounds starting a harness, and each call of a harness
// whose context has no deadline (waiting for a run to end, say) unless
// WithTimeout says otherwise.
const DefaultTimeout = 2 * time.Minute

// stopGrace is how long Close lets running syncs stop.
const stopGrace = 5 * time.Second

// ErrNoContent is returned by Document.Text and Document.Raw for a document
// without a content id.
var ErrNoContent = errors.New("connectortest: document has no content")

// Harness runs one connector the way production does, in process: an
// embedded NATS server with JetStream (its store in a temporary directory),
// the worker runtime hosting the connector, and the manager, which applies
// the events the worker publishes to runs, checkpoints and the catalog.
//
// A harness holds one source of the connector, created by the first sync;
// every later sync runs on that source, so it starts from the checkpoint
// the previous one left. Its methods are safe for concurrent use, but a
// source has at most one active run: start the next sync after the
// previous one ended.
type Harness struct {
	*env

	// srcMu guards the source's fields and serialises its creation and
	// updates.
	srcMu    sync.Mutex
	sourceID string
	config   json.RawMessage // the source's config, compact
	creds    json.RawMessage // the credentials last given
}

// env is what the harnesses of one connector can share: the server, the
// manager and the worker. Each harness has a source of its own.
type env struct {
	manifest connector.Manifest
	opts     options
	dir      string
	ownDir   bool

	ns      *server.Server
	conns   []*nats.Conn
	m       *manager.Manager
	w       *worker.Worker
	content *content.Store

	mu   sync.Mutex
	runs map[string]*runRecord

	closeOnce sync.Once
	closeErr  error
}

// fork returns another harness on the same server, manager and worker,
// with a source of its own. Closing either closes both.
func (h *Harness) fork() *Harness { return &Harness{env: h.env} }

// Option configures a harness.
type Option func(*options)

type options struct {
	logger  *zap.Logger
	timeout time.Duration
}

// WithLogger sends the logs of the worker, the manager and the connector
// (SyncContext.Logger) to l. By default New logs to the test at info level
// (shown with -v or when the test fails) and Start logs nowhere.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithTimeout bounds each call of the harness whose context has no deadline
// of its own (RunSync, Wait…); default DefaultTimeout. It does not bound
// starting.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// tb is what New needs of a test; testing.TB has it.
type tb interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// New starts a harness for c in the test t and stops it when the test ends.
// It fails the test when the harness cannot start, for instance when c's
// manifest is invalid.
func New(t testing.TB, c connector.Connector, opts ...Option) *Harness {
	t.Helper()
	return newHarness(t, c, opts...)
}

func newHarness(t tb, c connector.Connector, opts ...Option) *Harness {
	t.Helper()
	h, err := start(context.Background(), c, t.TempDir(), false, testOptions(t, opts))
	if err != nil {
		t.Fatalf("connectortest: %v", err)
		return nil
	}
	closeAtEnd(t, h)
	return h
}

// testOptions are the options of a harness in the test t: logs go to t.
func testOptions(t tb, opts []Option) options {
	var o options
	if zt, ok := t.(zaptest.TestingT); ok {
		o.logger = zaptest.NewLogger(zt, zaptest.Level(zap.InfoLevel))
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// closeAtEnd closes h when the test t ends.
func closeAtEnd(t tb, h *Harness) {
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("connectortest: %v", err)
		}
	})
}

// Start starts a harness for c outside a test (an example, a benchmark of
// your own, a program); Close stops it and removes its files.
func Start(ctx context.Context, c connector.Connector, opts ...Option) (*Harness, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := os.MkdirTemp("", "connectortest-")
	if err != nil {
		return nil, fmt.Errorf("connectortest: %w", err)
	}
	h, err := start(ctx, c, dir, true, o)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("connectortest: %w", err)
	}
	return h, nil
}

func start(ctx context.Context, c connector.Connector, dir string, ownDir bool, o options) (h *Harness, err error) {
	if c == nil {
		return nil, errors.New("no connector")
	}
	if o.logger == nil {
		o.logger = zap.NewNop()
	}
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	man := c.Manifest()
	if err := man.Validate(); err != nil {
		return nil, fmt.Errorf("invalid manifest: %w", err)
	}
	e := &env{manifest: man, opts: o, dir: dir, ownDir: ownDir, runs: map[string]*runRecord{}}
	h = &Harness{env: e}
	defer func() {
		if err != nil {
			_ = e.stop() // h is nil by now
		}
	}()
	// Starting is bounded by DefaultTimeout, whatever WithTimeout says.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}

	h.ns, err = bus.StartEmbedded(bus.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats"), ServerName: "connectortest"})
	if err != nil {
		return nil, err
	}
	connect := func() (*nats.Conn, error) {
		nc, err := nats.Connect("", nats.InProcessServer(h.ns), nats.Name("connectortest"))
		if err != nil {
			return nil, fmt.Errorf("connect to the embedded nats server: %w", err)
		}
		h.conns = append(h.conns, nc)
		return nc, nil
	}
	nc, err := connect()
	if err != nil {
		return nil, err
	}
	key := make([]byte, secret.KeySize)
	_, _ = rand.Read(key)
	h.m, err = manager.New(nc, manager.Config{Logger: o.logger.Named("manager"), SecretKey: key, ContentGCInterval: -1})
	if err != nil {
		return nil, err
	}
	if err := h.m.Start(ctx); err != nil {
		return nil, err
	}
	obs, err := h.m.JetStream().ObjectStore(ctx, events.BucketContent)
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	h.content = content.New(h.m.JetStream(), obs, h.m.Store().Content)
	wnc, err := connect()
	if err != nil {
		return nil, err
	}
	h.w, err = worker.New(wnc, worker.Config{ID: "connectortest", Connectors: []connector.Connector{observe(c, h.env)},
		Logger: o.logger.Named("worker")})
	if err != nil {
		return nil, err
	}
	if err := h.w.Start(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// Close stops the worker (letting running syncs stop for a few seconds),
// the manager and the NATS server, and removes the harness's files when
// Start created them. It returns an error when a sync did not stop in time.
// New calls it when the test ends; calling it again does nothing.
func (h *Harness) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.stop() })
	return h.closeErr
}

func (h *env) stop() error {
	var err error
	if h.w != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		if serr := h.w.Stop(ctx); serr != nil {
			err = fmt.Errorf("a sync of %s did not return within %s of the worker stopping (its context was cancelled): %w", h.manifest.Name, stopGrace, serr)
		}
		cancel()
	}
	if h.m != nil {
		ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
		_ = h.m.Stop(ctx)
		cancel()
	}
	for _, nc := range h.conns {
		nc.Close()
	}
	if h.ns != nil {
		h.ns.Shutdown()
		h.ns.WaitForShutdown()
	}
	if h.ownDir {
		_ = os.RemoveAll(h.dir)
	}
	return err
}

// bound gives ctx the harness's timeout unless it has a deadline.
func (h *env) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, h.opts.timeout)
}

// Sync describes one sync to run. Config, Credentials and Checkpoint are
// any JSON-encodable values (a json.RawMessage or a []byte is taken as JSON
// text); nil keeps what the source has.
type Sync struct {
	// Config is the source configuration. The first sync creates the source
	// with it ({} when nil); a later sync with a different one updates the
	// source. The manager validates it against the manifest's ConfigSchema.
	Config any
	// Credentials are the source's credentials; nil keeps the current ones
	// (none, at first).
	Credentials any
	// Checkpoint, when not nil, replaces the source's checkpoint before the
	// run, as an operator can (PUT /v1/sources/{id}/checkpoint): the
	// connector receives it in SyncRequest.Checkpoint.
	Checkpoint any
	// Mode is connector.Full or connector.Incremental. Empty lets the
	// manager choose as it does for a manual trigger: incremental when the
	// source has a checkpoint and the connector supports it, else full.
	Mode connector.SyncMode
}

// Status is how a run ended.
type Status string

// The statuses of an ended run.
const (
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Counters are the run's counters as the manager recorded them from the
// events it applied, as the API shows them.
type Counters struct {
	// Scanned is the sum of IncrementScanned over the run's attempts.
	Scanned uint64
	// Emitted, Updated, Deleted and Errors count the Emit, EmitUpdated,
	// EmitDeleted and EmitError events; Deleted also counts the documents a
	// completed full sync removed from the catalog because it did not see
	// them.
	Emitted, Updated, Deleted, Errors uint64
	// New, Changed and Unchanged are what the catalog made of the emitted
	// and updated documents: new to it, different from the version it had,
	// or identical to it.
	New, Changed, Unchanged uint64
}

// DocumentError is one EmitError call.
type DocumentError struct {
	ExternalID string
	Error      string
}

// Document is a document the connector reported, with its stored content.
type Document struct {
	connector.Document
	store *content.Store
}

// Text returns the content ContentID names: the text the connector stored
// with Save or ExtractAndStore (or the bytes it stored with SaveBinary).
// It returns ErrNoContent when the document has no content id.
func (d Document) Text(ctx context.Context) (string, error) {
	b, err := d.read(ctx, d.ContentID)
	return string(b), err
}

// Raw returns the document's original bytes: the content named by
// Metadata.Extra["raw_content_id"] when the connector stored text
// extracted from them and named the original there, else the content
// ContentID names.
func (d Document) Raw(ctx context.Context) ([]byte, error) {
	id := d.ContentID
	if r, ok := d.Metadata.Extra[manager.RawContentKey].(string); ok && r != "" {
		id = r
	}
	return d.read(ctx, id)
}

func (d Document) read(ctx context.Context, id string) ([]byte, error) {
	if id == "" {
		return nil, fmt.Errorf("%w: %q", ErrNoContent, d.ExternalID)
	}
	if d.store == nil {
		return nil, errors.New("connectortest: document does not come from a harness")
	}
	obj, err := d.store.Open(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("connectortest: content of %q: %w", d.ExternalID, err)
	}
	defer func() { _ = obj.Close() }()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, fmt.Errorf("connectortest: read content of %q: %w", d.ExternalID, err)
	}
	return b, nil
}

// Result is what one run did.
type Result struct {
	// RunID identifies the run.
	RunID string
	// Status is how the run ended; Error is the failure or cancellation
	// message (empty when it completed).
	Status Status
	Error  string
	// Mode is the mode the run ran in.
	Mode connector.SyncMode
	// Attempts counts the calls of the connector's Sync for this run: 1
	// unless it was interrupted and resumed; 0 when it was cancelled
	// before the connector ran.
	Attempts int
	// Request is the SyncRequest the connector's last attempt received
	// (with the credentials you gave), or nil when it never ran.
	Request *connector.SyncRequest
	// Emitted, Updated, Deleted and DocumentErrors are the successful
	// Emit, EmitUpdated, EmitDeleted and EmitError calls of the run, in
	// the order they returned.
	Emitted        []Document
	Updated        []Document
	Deleted        []string
	DocumentErrors []DocumentError
	// Checkpoint is the source's checkpoint after the run: the final one
	// of a completed run, else the last one saved; nil when there is none.
	// The next sync receives it.
	Checkpoint json.RawMessage
	// Counters are the run record's counters.
	Counters Counters
}

// Document returns the last version of the document with the external id
// that the run emitted or updated.
func (r *Result) Document(externalID string) (Document, bool) {
	var found Document
	var ok bool
	for _, list := range [][]Document{r.Emitted, r.Updated} {
		for _, d := range list {
			if d.ExternalID == externalID {
				found, ok = d, true
			}
		}
	}
	return found, ok
}

// RunSync runs one sync to its end and returns what it did. A run that
// fails or is cancelled is a Result with that Status, not an error; the
// error says the sync could not run (the manager rejected the config, or
// the run did not end in time).
func (h *Harness) RunSync(ctx context.Context, s Sync) (*Result, error) {
	run, err := h.StartSync(ctx, s)
	if err != nil {
		return nil, err
	}
	return run.Wait(ctx)
}

// Run is a sync that was started; Wait for its end.
type Run struct {
	h   *Harness
	id  string
	rec *runRecord
}

// StartSync starts a sync and returns without waiting for it: use it to
// act while it runs (Cancel it, say).
func (h *Harness) StartSync(ctx context.Context, s Sync) (*Run, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	sourceID, err := h.ensureSource(ctx, s)
	if err != nil {
		return nil, err
	}
	if s.Checkpoint != nil {
		raw, err := toJSON(s.Checkpoint)
		if err != nil {
			return nil, fmt.Errorf("connectortest: checkpoint: %w", err)
		}
		if _, err := h.m.SetCheckpoint(ctx, sourceID, raw); err != nil {
			return nil, fmt.Errorf("connectortest: set checkpoint: %w", err)
		}
	}
	run, err := h.m.TriggerSync(ctx, sourceID, s.Mode, manager.TriggerManual)
	if err != nil {
		return nil, fmt.Errorf("connectortest: trigger sync: %w", err)
	}
	return &Run{h: h, id: run.ID, rec: h.record(run.ID)}, nil
}

// ID returns the run's id.
func (r *Run) ID() string { return r.id }

// WaitRunning waits until the connector's Sync has been called for the
// run and the manager has recorded that the run is running (so that Cancel
// stops the connector rather than a run it believes is still queued). It
// returns nil as well when the run has already ended.
func (r *Run) WaitRunning(ctx context.Context) error {
	ctx, cancel := r.h.bound(ctx)
	defer cancel()
	var run *state.Run
	select {
	case <-r.rec.entered:
	case <-ctx.Done():
		if run, err := r.h.m.GetRun(context.WithoutCancel(ctx), r.id); err == nil && run.Status.Terminal() {
			return fmt.Errorf("connectortest: run %s ended (%s: %s) before the connector was called", r.id, run.Status, run.Error)
		}
		return r.late("call the connector", nil, ctx.Err())
	}
	err := poll(ctx, func() (bool, error) {
		var err error
		run, err = r.h.m.GetRun(ctx, r.id)
		return err == nil && run.Status != state.RunQueued, err
	})
	if err != nil {
		return r.late("start", run, err)
	}
	return nil
}

// Cancel asks the run to stop, as an operator does: the worker cancels the
// context of the connector's Sync, which should return within a second.
// Wait for the outcome.
func (r *Run) Cancel(ctx context.Context) error {
	if _, err := r.h.m.CancelRun(ctx, r.id); err != nil {
		return fmt.Errorf("connectortest: cancel run %s: %w", r.id, err)
	}
	return nil
}

// Wait waits for the run to end and returns what it did.
func (r *Run) Wait(ctx context.Context) (*Result, error) {
	ctx, cancel := r.h.bound(ctx)
	defer cancel()
	h := r.h
	var run *state.Run
	err := poll(ctx, func() (bool, error) {
		var err error
		run, err = h.m.GetRun(ctx, r.id)
		return err == nil && run.Status.Terminal(), err
	})
	if err != nil {
		return nil, r.late("end", run, err)
	}
	// The worker releases the source after the outcome is stored: wait for
	// it, so that the next sync need not wait for the lease to expire.
	r.rec.mu.Lock()
	returned := r.rec.returned
	r.rec.mu.Unlock()
	select {
	case <-r.rec.entered:
		select {
		case <-returned:
		case <-ctx.Done():
			return nil, r.late("return from Sync", run, ctx.Err())
		}
	default:
	}
	err = poll(ctx, func() (bool, error) {
		_, _, err := h.m.Store().Leases.Get(ctx, run.SourceID)
		if errors.Is(err, state.ErrNotFound) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return nil, r.late("release its source", run, err)
	}
	res := &Result{
		RunID: run.ID, Status: Status(run.Status), Error: run.Error, Mode: run.Mode,
		Counters: Counters{
			Scanned: run.DocumentsScanned, Emitted: run.DocumentsEmitted, Updated: run.DocumentsUpdated,
			Deleted: run.DocumentsDeleted, Errors: run.DocumentsErrors,
			New: run.DocumentsNew, Changed: run.DocumentsChanged, Unchanged: run.DocumentsUnchanged,
		},
	}
	if res.Status == StatusCompleted {
		res.Error = ""
	}
	cp, err := h.m.GetCheckpoint(ctx, run.SourceID)
	var nf *manager.NotFoundError
	switch {
	case err == nil:
		res.Checkpoint = cp.Checkpoint
	case !errors.As(err, &nf):
		return nil, fmt.Errorf("connectortest: read checkpoint: %w", err)
	}
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	res.Attempts = rec.attempts
	if rec.request != nil {
		req := *rec.request
		res.Request = &req
	}
	res.Emitted = h.documents(rec.emitted)
	res.Updated = h.documents(rec.updated)
	res.Deleted = append([]string(nil), rec.deleted...)
	res.DocumentErrors = append([]DocumentError(nil), rec.errors...)
	return res, nil
}

func (r *Run) late(what string, run *state.Run, err error) error {
	st := "unknown"
	if run != nil {
		st = string(run.Status)
	}
	msg := fmt.Sprintf("connectortest: run %s (%s) did not %s", r.id, st, what)
	select {
	case <-r.rec.entered:
		r.rec.mu.Lock()
		returned := r.rec.returned
		r.rec.mu.Unlock()
		select {
		case <-returned:
		default:
			msg += "; the connector's Sync has not returned"
		}
	default:
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func (h *env) documents(docs []connector.Document) []Document {
	out := make([]Document, len(docs))
	for i, d := range docs {
		out[i] = Document{Document: d, store: h.content}
	}
	return out
}

// Documents returns the source's catalog as the manager holds it after the
// runs so far, in external-id order: the documents it has, as last
// emitted or updated. It is empty before the first sync.
func (h *Harness) Documents(ctx context.Context) ([]Document, error) {
	h.srcMu.Lock()
	sourceID := h.sourceID
	h.srcMu.Unlock()
	if sourceID == "" {
		return nil, nil
	}
	ctx, cancel := h.bound(ctx)
	defer cancel()
	const size = 500
	var out []Document
	for page := 1; ; page++ {
		p, err := h.m.ListDocuments(ctx, sourceID, manager.DocumentFilter{Page: page, Size: size})
		if err != nil {
			return nil, fmt.Errorf("connectortest: list documents: %w", err)
		}
		for _, d := range p.Items {
			out = append(out, Document{store: h.content, Document: connector.Document{
				ExternalID: d.ExternalID, Title: d.Title, ContentID: d.ContentID,
				Metadata: d.Metadata, Permissions: d.Permissions, Attributes: d.Attributes,
			}})
		}
		if len(p.Items) < size || page*size >= p.Total {
			return out, nil
		}
	}
}

// ValidateConfig asks the manager whether it accepts cfg as the config of a
// source of the connector, as POST /v1/sources would. It returns nil when
// it does, and otherwise an error listing each violation, as the API's 422
// does. It creates no source.
func (h *Harness) ValidateConfig(ctx context.Context, cfg any) error {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	_, err := h.validateConfig(ctx, cfg)
	return err
}

// validateConfig returns the manager's validation error of cfg (nil when it
// accepts it) and whether it is located under the config.
func (h *Harness) validateConfig(ctx context.Context, cfg any) (*manager.ValidationError, error) {
	raw, err := toJSON(cfg)
	if err != nil {
		return nil, fmt.Errorf("connectortest: config: %w", err)
	}
	src, err := h.m.CreateSource(ctx, manager.CreateSource{Name: "connectortest-validation", Connector: h.manifest.Name, Config: raw})
	if err == nil {
		if err := h.m.DeleteSource(ctx, src.ID); err != nil {
			return nil, fmt.Errorf("connectortest: delete validation source: %w", err)
		}
		return nil, nil
	}
	var verr *manager.ValidationError
	if errors.As(err, &verr) {
		return verr, verr
	}
	return nil, fmt.Errorf("connectortest: validate config: %w", err)
}

// ensureSource creates the harness's source, or updates it to what s
// gives, and returns its id.
func (h *Harness) ensureSource(ctx context.Context, s Sync) (string, error) {
	cfg, err := toJSON(s.Config)
	if err != nil {
		return "", fmt.Errorf("connectortest: config: %w", err)
	}
	creds, err := toJSON(s.Credentials)
	if err != nil {
		return "", fmt.Errorf("connectortest: credentials: %w", err)
	}
	h.srcMu.Lock()
	defer h.srcMu.Unlock()
	if h.sourceID == "" {
		src, err := h.m.CreateSource(ctx, manager.CreateSource{Name: "connectortest", Connector: h.manifest.Name, Config: cfg, Credentials: creds})
		if err != nil {
			return "", fmt.Errorf("connectortest: the manager refused the source: %w", err)
		}
		h.sourceID, h.config, h.creds = src.ID, src.Config, creds
		return src.ID, nil
	}
	var patch manager.SourcePatch
	if cfg != nil && !bytes.Equal(compact(cfg), h.config) {
		patch.Config = cfg
	}
	if creds != nil && !bytes.Equal(compact(creds), compact(h.creds)) {
		patch.Credentials = creds
	}
	if patch.Config != nil || patch.Credentials != nil {
		src, err := h.m.UpdateSource(ctx, h.sourceID, patch)
		if err != nil {
			return "", fmt.Errorf("connectortest: the manager refused the source update: %w", err)
		}
		h.config = src.Config
		if creds != nil {
			h.creds = creds
		}
	}
	return h.sourceID, nil
}

// record returns the record of a run, creating it.
func (h *env) record(runID string) *runRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.runs[runID]
	if !ok {
		r = newRunRecord()
		h.runs[runID] = r
	}
	return r
}

// toJSON encodes v; nil is nil, and JSON text passes as it is.
func toJSON(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(x) {
			return nil, errors.New("not valid JSON")
		}
		return x, nil
	case []byte:
		return toJSON(json.RawMessage(x))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func compact(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// pollEvery is how often waits look again.
const pollEvery = 10 * time.Millisecond

// poll calls cond until it reports true, ctx ends, or it returns an error
// with ctx done.
func poll(ctx context.Context, cond func() (bool, error)) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}
