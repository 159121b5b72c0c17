package manager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Content garbage collection. Content is stored once per digest and shared
// by every document (of any source) with the same bytes, so it is collected
// by mark and sweep rather than deleted with a document:
//
//  1. mark: every content id a catalog document names (content_id and
//     metadata.extra.raw_content_id);
//  2. candidates: objects no document names, older than the grace period
//     (a worker stores content before the event naming it is applied), or
//     released by a source deletion;
//  3. un-index the candidates, so no worker de-duplicates onto them any
//     more; wait the settle time (a worker that found one in the index just
//     before has published its event by then), then until the applier has
//     applied every event stored by that time;
//  4. mark again and delete the candidates still unreferenced. A candidate
//     that was referenced meanwhile is indexed again.
//
// A manager killed in the middle leaves at most un-indexed objects, which
// the next pass collects or (if referenced) which simply lose
// de-duplication for new copies.

// GCResult is what one collection did.
type GCResult struct {
	Objects    int `json:"objects"`
	Referenced int `json:"referenced"`
	Deleted    int `json:"deleted"`
	// Kept counts candidates a document came to reference meanwhile.
	Kept  int           `json:"kept"`
	Took  time.Duration `json:"-"`
	Bytes uint64        `json:"bytes"`
}

// references returns every content id a catalog document names.
func (m *Manager) references(ctx context.Context) (map[string]struct{}, error) {
	refs := map[string]struct{}{}
	err := m.scanCatalog(ctx, ">", func(doc *catalogScan, _ uint64) error {
		if doc.ContentID != "" {
			refs[doc.ContentID] = struct{}{}
		}
		if raw := doc.rawContentID(); raw != "" {
			refs[raw] = struct{}{}
		}
		return nil
	})
	return refs, err
}

// CollectContent runs one pass of content garbage collection. Objects
// named in released skip the grace period (their documents were deleted
// with their source).
func (m *Manager) CollectContent(ctx context.Context, released map[string]struct{}) (*GCResult, error) {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	start := time.Now()
	res := &GCResult{}
	refs, err := m.references(ctx)
	if err != nil {
		return nil, fmt.Errorf("content gc: mark: %w", err)
	}
	res.Referenced = len(refs)
	objs, err := m.content.Objects().List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("content gc: list objects: %w", err)
	}
	res.Objects = len(objs)
	cutoff := time.Now().Add(-m.cfg.ContentGCGrace)
	var candidates []*jetstream.ObjectInfo
	for _, o := range objs {
		if o.Deleted {
			continue
		}
		if _, ok := refs[o.Name]; ok {
			continue
		}
		if _, ok := released[o.Name]; ok || o.ModTime.Before(cutoff) {
			candidates = append(candidates, o)
		}
	}
	if len(candidates) == 0 {
		res.Took = time.Since(start)
		return res, nil
	}
	for _, o := range candidates {
		if err := m.unindex(ctx, o); err != nil {
			return nil, fmt.Errorf("content gc: %w", err)
		}
	}
	if err := m.waitApplied(ctx); err != nil {
		return nil, fmt.Errorf("content gc: %w", err)
	}
	if refs, err = m.references(ctx); err != nil {
		return nil, fmt.Errorf("content gc: mark again: %w", err)
	}
	for _, o := range candidates {
		if _, ok := refs[o.Name]; ok {
			res.Kept++
			m.reindex(ctx, o)
			continue
		}
		if err := m.content.Objects().Delete(ctx, o.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("content gc: delete %s: %w", o.Name, err)
		}
		res.Deleted++
		res.Bytes += o.Size
	}
	res.Took = time.Since(start)
	return res, nil
}

// unindex removes the index entry that names the object, if one does.
func (m *Manager) unindex(ctx context.Context, o *jetstream.ObjectInfo) error {
	digest := o.Headers.Get(content.HeaderContentSHA256)
	if digest == "" {
		return nil
	}
	ref, rev, err := m.store.Content.Get(ctx, digest)
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if ref.ContentID != o.Name {
		return nil
	}
	if err := m.store.Content.Delete(ctx, digest, rev); err != nil && !errors.Is(err, state.ErrConflict) {
		return err
	}
	return nil
}

// reindex names a kept candidate in the index again, unless another object
// holds its digest by now.
func (m *Manager) reindex(ctx context.Context, o *jetstream.ObjectInfo) {
	digest := o.Headers.Get(content.HeaderContentSHA256)
	if digest == "" {
		return
	}
	size := int64(min(o.Size, math.MaxInt64)) //nolint:gosec // bounded just before
	ref := &state.ContentRef{ContentID: o.Name, Size: size, ContentType: o.Headers.Get(content.HeaderContentType), CreatedAt: o.ModTime}
	if _, err := m.store.Content.Create(ctx, digest, ref); err != nil && !errors.Is(err, state.ErrExists) {
		m.log.Warn("content gc: index a kept object again", zap.String("content_id", o.Name), zap.Error(err))
	}
}

// waitApplied waits the settle time, then until the applier has applied
// every event the events stream held by then.
func (m *Manager) waitApplied(ctx context.Context) error {
	select {
	case <-time.After(m.cfg.ContentGCSettle):
	case <-ctx.Done():
		return ctx.Err()
	}
	st, err := m.js.Stream(ctx, events.StreamEvents)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	cons, err := m.js.Consumer(ctx, events.StreamEvents, ApplierConsumer)
	if err != nil {
		return err
	}
	for {
		ci, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if ci.AckFloor.Stream >= last {
			return nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("waiting for the applier to reach event %d (at %d): %w", last, ci.AckFloor.Stream, ctx.Err())
		}
	}
}

// gcLoop collects content every ContentGCInterval, and soon after a source
// deletion released some.
func (m *Manager) gcLoop(ctx context.Context) {
	defer close(m.gcDone)
	var tick <-chan time.Time
	if m.cfg.ContentGCInterval > 0 {
		t := time.NewTicker(m.cfg.ContentGCInterval)
		defer t.Stop()
		tick = t.C
	}
	idle := time.NewTicker(time.Minute)
	defer idle.Stop()
	for {
		released := map[string]struct{}{}
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			// Not content, but the same kind of chore: forget the
			// documents indexes nobody lists.
			if n := m.docs.evictIdle(m.cfg.DocIndexIdle); n > 0 {
				m.log.Debug("idle documents indexes dropped", zap.Int("sources", n))
			}
			continue
		case <-tick:
		case ids := <-m.gcKick:
			for _, id := range ids {
				released[id] = struct{}{}
			}
		}
		res, err := m.CollectContent(ctx, released)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("content garbage collection failed; next pass retries", zap.Error(err))
			}
			continue
		}
		if res.Deleted > 0 || res.Kept > 0 {
			m.log.Info("content garbage collected", zap.Int("objects", res.Objects), zap.Int("deleted", res.Deleted),
				zap.Uint64("bytes", res.Bytes), zap.Int("kept", res.Kept), zap.Duration("took", res.Took))
		}
	}
}

// releaseContent asks the collector to collect these objects soon, if no
// document names them.
func (m *Manager) releaseContent(ids []string) {
	if len(ids) == 0 {
		return
	}
	select {
	case m.gcKick <- ids:
	default:
		// A pass is pending: these wait for the periodic pass and its grace.
	}
}
