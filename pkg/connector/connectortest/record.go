package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// runRecord is what the harness saw of one run's calls into the connector,
// over all its attempts.
type runRecord struct {
	mu       sync.Mutex
	request  *connector.SyncRequest // the latest attempt's
	attempts int
	emitted  []connector.Document
	updated  []connector.Document
	deleted  []string
	errors   []DocumentError
	// given is the JSON of the last checkpoint the connector handed to
	// SaveCheckpoint or Complete (nil when it gave none).
	given json.RawMessage
	// activity is closed at the connector's first call of its SyncContext.
	activity     chan struct{}
	activityOnce sync.Once
	// entered is closed when Sync is first called; returned when the latest
	// attempt's Sync returned.
	entered   chan struct{}
	returned  chan struct{}
	ctxDoneAt time.Time // when the latest attempt's context was cancelled
	endedAt   time.Time // when the latest attempt called Complete or Fail
	returnAt  time.Time // when the latest attempt's Sync returned
}

func newRunRecord() *runRecord {
	return &runRecord{activity: make(chan struct{}), entered: make(chan struct{}), returned: make(chan struct{})}
}

func (r *runRecord) touch() { r.activityOnce.Do(func() { close(r.activity) }) }

// observed is the connector the worker hosts: the author's connector, with
// each call of Sync (and SyncDocument) recorded by run.
type observed struct {
	inner connector.Connector
	h     *env
}

func (o *observed) Manifest() connector.Manifest { return o.inner.Manifest() }

func (o *observed) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	return o.h.observe(ctx, req, sc, o.inner.Sync)
}

type documentSyncer struct {
	o  *observed
	ds connector.DocumentSyncer
}

func (d documentSyncer) SyncDocument(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	return d.o.h.observe(ctx, req, sc, d.ds.SyncDocument)
}

// observe wraps a connector so that the worker sees exactly the optional
// interfaces the connector implements (it decides what to offer by type
// assertion), and nothing more.
func observe(c connector.Connector, h *env) connector.Connector {
	o := &observed{inner: c, h: h}
	ds, isDS := c.(connector.DocumentSyncer)
	ct, isCT := c.(connector.ConnectionTester)
	ae, isAE := c.(connector.ActionExecutor)
	d := documentSyncer{o: o, ds: ds}
	switch {
	case isDS && isCT && isAE:
		return struct {
			*observed
			documentSyncer
			connector.ConnectionTester
			connector.ActionExecutor
		}{o, d, ct, ae}
	case isDS && isCT:
		return struct {
			*observed
			documentSyncer
			connector.ConnectionTester
		}{o, d, ct}
	case isDS && isAE:
		return struct {
			*observed
			documentSyncer
			connector.ActionExecutor
		}{o, d, ae}
	case isCT && isAE:
		return struct {
			*observed
			connector.ConnectionTester
			connector.ActionExecutor
		}{o, ct, ae}
	case isDS:
		return struct {
			*observed
			documentSyncer
		}{o, d}
	case isCT:
		return struct {
			*observed
			connector.ConnectionTester
		}{o, ct}
	case isAE:
		return struct {
			*observed
			connector.ActionExecutor
		}{o, ae}
	}
	return o
}

// observe runs one attempt of a run through fn, recording the request, the
// calls fn makes of its SyncContext, and when its context ended and when it
// returned.
func (h *env) observe(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext,
	fn func(context.Context, *connector.SyncRequest, connector.SyncContext) error) error {
	rec := h.record(req.RunID)
	cp := *req
	rec.mu.Lock()
	rec.request = &cp
	rec.attempts++
	first := rec.attempts == 1
	if !first {
		rec.returned = make(chan struct{})
	}
	returned := rec.returned
	rec.ctxDoneAt, rec.endedAt, rec.returnAt = time.Time{}, time.Time{}, time.Time{}
	rec.mu.Unlock()
	if first {
		close(rec.entered)
	}
	cancelled := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		rec.mu.Lock()
		rec.ctxDoneAt = time.Now()
		rec.mu.Unlock()
		close(cancelled)
	})
	defer func() {
		if !stop() {
			<-cancelled // it ran, or runs now: let it record the time
		}
		rec.mu.Lock()
		rec.returnAt = time.Now()
		rec.mu.Unlock()
		close(returned)
	}()
	return fn(ctx, req, &recordingContext{SyncContext: sc, rec: rec})
}

// recordingContext passes every call to the worker's SyncContext and
// records those that succeeded.
type recordingContext struct {
	connector.SyncContext
	rec *runRecord
}

func (c *recordingContext) Emit(ctx context.Context, doc connector.Document) error {
	c.rec.touch()
	err := c.SyncContext.Emit(ctx, doc)
	if err == nil {
		c.rec.mu.Lock()
		c.rec.emitted = append(c.rec.emitted, doc)
		c.rec.mu.Unlock()
	}
	return err
}

func (c *recordingContext) EmitUpdated(ctx context.Context, doc connector.Document) error {
	c.rec.touch()
	err := c.SyncContext.EmitUpdated(ctx, doc)
	if err == nil {
		c.rec.mu.Lock()
		c.rec.updated = append(c.rec.updated, doc)
		c.rec.mu.Unlock()
	}
	return err
}

func (c *recordingContext) EmitDeleted(ctx context.Context, externalID string) error {
	c.rec.touch()
	err := c.SyncContext.EmitDeleted(ctx, externalID)
	if err == nil {
		c.rec.mu.Lock()
		c.rec.deleted = append(c.rec.deleted, externalID)
		c.rec.mu.Unlock()
	}
	return err
}

func (c *recordingContext) EmitError(ctx context.Context, externalID string, docErr error) error {
	c.rec.touch()
	err := c.SyncContext.EmitError(ctx, externalID, docErr)
	if err == nil {
		msg := "unknown error"
		if docErr != nil {
			msg = docErr.Error()
		}
		c.rec.mu.Lock()
		c.rec.errors = append(c.rec.errors, DocumentError{ExternalID: externalID, Error: msg})
		c.rec.mu.Unlock()
	}
	return err
}

func (c *recordingContext) IncrementScanned(n int) {
	c.rec.touch()
	c.SyncContext.IncrementScanned(n)
}

func (c *recordingContext) SetTotal(n int) {
	c.rec.touch()
	c.SyncContext.SetTotal(n)
}

func (c *recordingContext) SaveCheckpoint(ctx context.Context, checkpoint any) error {
	c.rec.touch()
	err := c.SyncContext.SaveCheckpoint(ctx, checkpoint)
	if err == nil || errors.Is(err, connector.ErrStopRequested) {
		c.rec.setGiven(checkpoint)
	}
	return err
}

func (c *recordingContext) Complete(ctx context.Context, checkpoint any) error {
	c.rec.touch()
	err := c.SyncContext.Complete(ctx, checkpoint)
	if err == nil {
		c.rec.ended()
		if checkpoint != nil {
			c.rec.setGiven(checkpoint)
		}
	}
	return err
}

func (c *recordingContext) Fail(ctx context.Context, failure error) error {
	c.rec.touch()
	err := c.SyncContext.Fail(ctx, failure)
	if err == nil {
		c.rec.ended()
	}
	return err
}

func (r *runRecord) ended() {
	r.mu.Lock()
	r.endedAt = time.Now()
	r.mu.Unlock()
}

func (c *recordingContext) Content() connector.ContentStorage {
	c.rec.touch()
	return c.SyncContext.Content()
}

func (c *recordingContext) Logger() *zap.Logger { return c.SyncContext.Logger() }

// given records the JSON of a checkpoint the connector handed over.
func (r *runRecord) setGiven(checkpoint any) {
	raw, err := json.Marshal(checkpoint)
	if err != nil || string(raw) == "null" {
		return
	}
	r.mu.Lock()
	r.given = raw
	r.mu.Unlock()
}
