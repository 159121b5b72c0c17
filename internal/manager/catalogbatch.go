package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// The applier judges a batch's document events together, in steps that
// each cost one round trip for the whole batch rather than one per
// document:
//
//  1. read the catalog record of every document (one batch get);
//  2. judge each document's event against its record (planUpsert);
//  3. publish every change asynchronously and wait for all of them to be
//     stored;
//  4. write every catalog record asynchronously, with compare-and-set, and
//     wait for all of them.
//
// So a change is on the feed before the catalog records it, as with one
// document at a time: a crash between 3 and 4 redelivers the events, which
// find no record of their change and publish it again (same message id,
// stored once), or find it (ChangedSeq) and publish it again too. Events of
// one document are applied in stream order: a document's second event in
// the batch is judged in a second round, against what its first wrote.
// The batch holds the key locks of all its documents throughout, so a
// manual change or status report of one of them waits for the batch.

// docWork is one document's events of a batch and what the catalog holds.
type docWork struct {
	key  string
	ext  string
	evs  []applied
	next int // the event being applied

	known bool              // cur and rev were read (or written) by this batch
	cur   *state.CatalogDoc // nil: no record
	rev   uint64

	plan    catalogPlan
	hash    string
	pending *state.Pending
}

// judgeDocuments runs the batch's document events through the catalog
// before they are folded in. It selects the events exactly as applyRun's
// loop will (not yet applied, not after the run's end, stale attempts'
// documents included) and records what it made of each in judged.
func (m *Manager) judgeDocuments(ctx context.Context, run *state.Run, evs []applied, judged map[uint64]catalogResult) error {
	byDoc := map[string]*docWork{}
	var docs []*docWork
	ended, latest := run.Status.Terminal(), run.Attempt
	for _, a := range evs {
		if a.streamSeq <= run.LastEventSeq || ended {
			continue
		}
		if a.env.Type == events.TypeRunStarted {
			latest = max(latest, a.env.Attempt)
		}
		stale := a.env.Attempt > 0 && a.env.Attempt < latest
		if stale && !documentEvent(a.env.Type) {
			continue
		}
		if a.env.Type.Terminal() {
			ended = true
		}
		var id string
		switch p := a.env.Payload().(type) {
		case *events.DocumentUpserted:
			id = p.Document.ExternalID
		case *events.DocumentDeleted:
			id = p.ExternalID
		default:
			continue
		}
		if _, done := judged[a.streamSeq]; done {
			continue
		}
		d := byDoc[id]
		if d == nil {
			d = &docWork{key: state.CatalogKey(run.SourceID, id), ext: id}
			byDoc[id] = d
			docs = append(docs, d)
		}
		d.evs = append(d.evs, a)
	}
	if len(docs) == 0 {
		return nil
	}
	keys := make([]string, len(docs))
	for i, d := range docs {
		keys[i] = d.key
	}
	unlock := m.lockKeys(keys)
	defer unlock()
	for active := docs; len(active) > 0; {
		if err := m.readCatalog(ctx, active); err != nil {
			return err
		}
		if err := m.planDocuments(run, active); err != nil {
			return err
		}
		if err := m.publishChanges(ctx, run, active); err != nil {
			return err
		}
		var err error
		if active, err = m.writeCatalog(ctx, run, active, judged); err != nil {
			return err
		}
	}
	return nil
}

// readCatalog reads the record of every document not known yet, in one
// request.
func (m *Manager) readCatalog(ctx context.Context, docs []*docWork) error {
	byKey := make(map[string]*docWork, len(docs))
	keys := make([]string, 0, len(docs))
	for _, d := range docs {
		if !d.known {
			byKey[d.key] = d
			keys = append(keys, d.key)
			d.cur, d.rev, d.known = nil, 0, true
		}
	}
	if len(keys) == 0 {
		return nil
	}
	err := m.store.Catalog.GetMany(ctx, keys, func(key string, v *state.CatalogDoc, rev uint64) {
		if d := byKey[key]; d != nil {
			d.cur, d.rev = v, rev
		}
	})
	if err != nil {
		for _, d := range byKey {
			d.known = false
		}
	}
	return err
}

// planDocuments judges each document's current event against its record.
func (m *Manager) planDocuments(run *state.Run, docs []*docWork) error {
	now := time.Now().UTC()
	for _, d := range docs {
		a := d.evs[d.next]
		switch p := a.env.Payload().(type) {
		case *events.DocumentUpserted:
			hash, err := docHash(&p.Document)
			if err != nil {
				return err
			}
			d.hash = hash
			d.plan = planUpsert(run, d.cur, d.rev, &p.Document, hash, a.streamSeq, now)
		case *events.DocumentDeleted:
			d.hash = ""
			if d.cur == nil {
				d.plan = catalogPlan{}
			} else {
				d.plan = catalogPlan{out: outcomeDeleted, change: events.TypeChangeDeleted, write: writeDelete, rev: d.rev}
			}
		}
	}
	return nil
}

// publishChanges publishes the planned changes, all at once, and waits until
// every one is stored.
func (m *Manager) publishChanges(ctx context.Context, run *state.Run, docs []*docWork) error {
	type sent struct {
		fut jetstream.PubAckFuture
		t   events.Type
	}
	var futs []sent
	for _, d := range docs {
		if d.plan.change == "" {
			continue
		}
		a := d.evs[d.next]
		doc := &events.Document{ExternalID: d.ext}
		reason := ""
		if p, ok := a.env.Payload().(*events.DocumentUpserted); ok {
			doc = &p.Document
		} else {
			reason = ReasonDeletedInSource
		}
		msg, err := changeMsg(run, a.env.Time, d.plan.change, doc, d.hash, reason, causeOfEvent(a.streamSeq))
		if err != nil {
			return err
		}
		fut, err := m.js.PublishMsgAsync(msg, jetstream.WithExpectStream(events.StreamChanges))
		if err != nil {
			return fmt.Errorf("publish change: %w", err)
		}
		futs = append(futs, sent{fut, d.plan.change})
	}
	for _, f := range futs {
		select {
		case ack := <-f.fut.Ok():
			m.metrics.changePublished(run.Connector, f.t, ack.Duplicate)
		case err := <-f.fut.Err():
			return fmt.Errorf("publish change: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("publish change: %w", ctx.Err())
		}
	}
	return nil
}

// writeCatalog writes the planned records, all at once, waits for every
// write, and records each event's outcome in judged. It returns the
// documents with an event left to apply: their next one, or the same one
// again when its write met a record that changed since it was read.
func (m *Manager) writeCatalog(ctx context.Context, run *state.Run, docs []*docWork, judged map[uint64]catalogResult) ([]*docWork, error) {
	for _, d := range docs {
		var err error
		switch d.plan.write {
		case writeNone:
			d.pending = nil
		case writeCreate:
			d.pending, err = m.store.Catalog.CreateAsync(d.key, d.plan.rec)
		case writeUpdate:
			d.pending, err = m.store.Catalog.UpdateAsync(d.key, d.plan.rec, d.plan.rev)
		case writeDelete:
			d.pending, err = m.store.Catalog.DeleteAsync(d.key, d.plan.rev)
		}
		if err != nil {
			return nil, err
		}
	}
	var left []*docWork
	for _, d := range docs {
		a := d.evs[d.next]
		if d.pending != nil {
			rev, err := d.pending.Wait(ctx)
			if errors.Is(err, state.ErrExists) && d.plan.write == writeCreate {
				// A deleted record's marker is the key's last revision:
				// Create writes over it.
				rev, err = m.store.Catalog.Create(ctx, d.key, d.plan.rec)
			}
			if errors.Is(err, state.ErrExists) || errors.Is(err, state.ErrConflict) {
				d.known = false // read it again and judge the event again
				left = append(left, d)
				continue
			}
			if err != nil {
				return nil, err
			}
			switch d.plan.write {
			case writeDelete:
				m.docs.remove(run.SourceID, d.ext, d.rev)
				d.cur, d.rev = nil, 0
			default:
				m.docs.put(run.SourceID, d.plan.rec, rev)
				d.cur, d.rev = d.plan.rec, rev
			}
		}
		judged[a.streamSeq] = catalogResult{outcome: d.plan.out}
		if d.next++; d.next < len(d.evs) {
			left = append(left, d)
		}
	}
	return left, nil
}
