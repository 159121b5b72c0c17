package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// The catalog is the manager's record of every document of every source
// (bucket tributary_catalog). The applier runs each document event through
// it: a document whose fingerprint did not change is only marked seen; a
// new, changed or deleted one is published on the change feed first and
// recorded after, so a crash in between republishes the same change (same
// Nats-Msg-Id, stored once) rather than losing it.

// catalogOutcome is how the catalog judged one document event.
type catalogOutcome int

const (
	outcomeNone catalogOutcome = iota
	outcomeNew
	outcomeChanged
	outcomeUnchanged
	outcomeDeleted
)

// Deletion reasons on the change feed.
const (
	ReasonDeletedInSource = "deleted_in_source"
	ReasonNotSeen         = "not_seen_in_full_sync"
	ReasonSourceDeleted   = "source_deleted"
)

// SourceDeletedRunID is the run_id of the changes a source deletion causes.
const SourceDeletedRunID = "source-deleted"

// dropCatalog deletes every catalog document of the source, publishing each
// deletion (reason source_deleted), and returns the content ids they named.
// Repeating it after an interruption publishes each deletion once (same
// message ids) and finishes the rest.
func (m *Manager) dropCatalog(ctx context.Context, sourceID string) ([]string, error) {
	var ids, contents []string
	if err := m.scanCatalog(ctx, sourceID+".*", func(doc *catalogScan, _ uint64) error {
		ids = append(ids, doc.ExternalID)
		if doc.ContentID != "" {
			contents = append(contents, doc.ContentID)
		}
		if raw := doc.rawContentID(); raw != "" {
			contents = append(contents, raw)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	pseudo := &state.Run{ID: SourceDeletedRunID, SourceID: sourceID}
	if src, _, err := m.store.Sources.Get(ctx, sourceID); err == nil {
		pseudo.Connector = src.Connector // for metrics only
	}
	now := time.Now().UTC()
	for _, id := range ids {
		if _, err := m.catalogDelete(ctx, pseudo, now, id, ReasonSourceDeleted, "source-delete."+id); err != nil {
			return nil, err
		}
	}
	return contents, nil
}

// docHash fingerprints what indexers care about. Content is stored once per
// digest, so equal content has an equal content id.
func docHash(d *events.Document) (string, error) {
	b, err := json.Marshal(struct {
		Title       string             `json:"t"`
		ContentID   string             `json:"c"`
		Metadata    events.Metadata    `json:"m"`
		Permissions events.Permissions `json:"p"`
		Attributes  map[string]any     `json:"a"`
	}{d.Title, d.ContentID, d.Metadata, d.Permissions, d.Attributes})
	if err != nil {
		return "", fmt.Errorf("fingerprint %q: %w", d.ExternalID, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// catalogUpsert applies a document.upserted at stream sequence seq, on its
// own (the applier judges a batch's documents together: catalogbatch.go).
func (m *Manager) catalogUpsert(ctx context.Context, run *state.Run, env *events.Envelope, seq uint64) (catalogOutcome, error) {
	p, ok := env.Payload().(*events.DocumentUpserted)
	if !ok {
		return outcomeNone, nil
	}
	doc := &p.Document
	key := state.CatalogKey(run.SourceID, doc.ExternalID)
	hash, err := docHash(doc)
	if err != nil {
		return outcomeNone, err
	}
	unlock := m.lockKey(key)
	defer unlock()
	for {
		cur, rev, err := m.store.Catalog.Get(ctx, key)
		if errors.Is(err, state.ErrNotFound) {
			cur, rev = nil, 0
		} else if err != nil {
			return outcomeNone, err
		}
		pl := planUpsert(run, cur, rev, doc, hash, seq, time.Now().UTC())
		if pl.change != "" {
			if err := m.publishChange(ctx, run, env.Time, pl.change, doc, hash, "", causeOfEvent(seq)); err != nil {
				return outcomeNone, err
			}
		}
		var nrev uint64
		switch pl.write {
		case writeNone:
			return pl.out, nil
		case writeCreate:
			nrev, err = m.store.Catalog.Create(ctx, key, pl.rec)
		default:
			nrev, err = m.store.Catalog.Update(ctx, key, pl.rec, pl.rev)
		}
		if errors.Is(err, state.ErrExists) || errors.Is(err, state.ErrConflict) {
			continue
		} else if err != nil {
			return outcomeNone, err
		}
		m.docs.put(run.SourceID, pl.rec, nrev)
		return pl.out, nil
	}
}

// catalogWrite is the catalog write a plan makes.
type catalogWrite int

const (
	writeNone catalogWrite = iota
	writeCreate
	writeUpdate
	writeDelete
)

// catalogPlan is what one document event does, given the catalog's record:
// the change to publish first, if any, then the record to write.
type catalogPlan struct {
	out    catalogOutcome
	change events.Type // "" for none
	write  catalogWrite
	rec    *state.CatalogDoc // what writeCreate and writeUpdate store
	rev    uint64            // the revision writeUpdate and writeDelete expect
}

// planUpsert judges a document.upserted at stream sequence seq against the
// catalog's record cur at revision rev (nil: none). A document whose
// fingerprint did not change is only marked seen; a new or changed one is
// published, then recorded with ChangedSeq seq, so that the same event
// applied again after a crash finds its own change and publishes it again
// (the same message id, stored once).
func planUpsert(run *state.Run, cur *state.CatalogDoc, rev uint64, doc *events.Document, hash string, seq uint64, now time.Time) catalogPlan {
	switch {
	case cur != nil && cur.Hash == hash:
		pl := catalogPlan{out: outcomeUnchanged, rev: rev}
		if cur.ChangedSeq == seq {
			// This very event made the change, and the manager stopped
			// before acknowledging it: the same change again, the same
			// message id, stored once.
			pl.out, pl.change = outcomeChanged, events.TypeChangeUpdated
			if cur.CreatedSeq == seq {
				pl.out, pl.change = outcomeNew, events.TypeChangeCreated
			}
		}
		if cur.LastSeenRun == run.ID && cur.Origin == state.OriginSync {
			return pl
		}
		// A document the source emits is the source's, even if it was
		// added by hand: the sweep may delete it from now on.
		rec := *cur
		rec.LastSeenRun, rec.Origin, rec.UpdatedAt = run.ID, state.OriginSync, now
		pl.write, pl.rec = writeUpdate, &rec
		return pl
	case cur == nil:
		rec := catalogRecord(run, doc, hash, now)
		rec.FirstSeenRun, rec.CreatedSeq, rec.ChangedSeq, rec.CreatedAt = run.ID, seq, seq, now
		return catalogPlan{out: outcomeNew, change: events.TypeChangeCreated, write: writeCreate, rec: rec}
	default:
		rec := catalogRecord(run, doc, hash, now)
		rec.FirstSeenRun, rec.CreatedSeq, rec.CreatedAt, rec.ChangedSeq = cur.FirstSeenRun, cur.CreatedSeq, cur.CreatedAt, seq
		return catalogPlan{out: outcomeChanged, change: events.TypeChangeUpdated, write: writeUpdate, rec: rec, rev: rev}
	}
}

func catalogRecord(run *state.Run, doc *events.Document, hash string, now time.Time) *state.CatalogDoc {
	return &state.CatalogDoc{
		SourceID: run.SourceID, ExternalID: doc.ExternalID, Title: doc.Title, ContentID: doc.ContentID,
		Hash: hash, Metadata: doc.Metadata, Permissions: doc.Permissions, Attributes: doc.Attributes,
		Status: state.DocPending, Origin: state.OriginSync, LastSeenRun: run.ID, UpdatedAt: now,
	}
}

// catalogDelete removes a document from the catalog and publishes its
// deletion; a document the catalog does not hold is no change.
func (m *Manager) catalogDelete(ctx context.Context, run *state.Run, at time.Time, externalID, reason, cause string) (catalogOutcome, error) {
	key := state.CatalogKey(run.SourceID, externalID)
	unlock := m.lockKey(key)
	defer unlock()
	for {
		_, rev, err := m.store.Catalog.Get(ctx, key)
		if errors.Is(err, state.ErrNotFound) {
			return outcomeNone, nil
		}
		if err != nil {
			return outcomeNone, err
		}
		if err := m.publishChange(ctx, run, at, events.TypeChangeDeleted, &events.Document{ExternalID: externalID}, "", reason, cause); err != nil {
			return outcomeNone, err
		}
		if err := m.store.Catalog.Delete(ctx, key, rev); errors.Is(err, state.ErrConflict) {
			continue
		} else if err != nil {
			return outcomeNone, err
		}
		m.docs.remove(run.SourceID, externalID, rev)
		return outcomeDeleted, nil
	}
}

// sweep deletes every catalog document of the run's source that the run
// did not see: after a completed full sync, they are gone from the source.
func (m *Manager) sweep(ctx context.Context, run *state.Run, at time.Time) (uint64, error) {
	var gone []string
	if err := m.scanCatalog(ctx, run.SourceID+".*", func(doc *catalogScan, _ uint64) error {
		if !run.Saw(doc.LastSeenRun) && doc.Origin != state.OriginManual {
			gone = append(gone, doc.ExternalID)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	var n uint64
	for _, id := range gone {
		out, err := m.catalogDelete(ctx, run, at, id, ReasonNotSeen, "sweep."+run.ID+"."+id)
		if err != nil {
			return n, err
		}
		if out == outcomeDeleted {
			n++
		}
	}
	return n, nil
}

func causeOfEvent(seq uint64) string { return "event." + strconv.FormatUint(seq, 10) }

// publishChange publishes one change and waits for it to be stored. Its id
// is derived from what caused it, so a republish after a crash is the same
// message and JetStream stores it once.
func (m *Manager) publishChange(ctx context.Context, run *state.Run, at time.Time, t events.Type, doc *events.Document, fingerprint, reason, cause string) error {
	msg, err := changeMsg(run, at, t, doc, fingerprint, reason, cause)
	if err != nil {
		return err
	}
	ack, err := m.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(events.StreamChanges))
	if err != nil {
		return fmt.Errorf("publish change: %w", err)
	}
	m.metrics.changePublished(run.Connector, t, ack.Duplicate)
	return nil
}

// changeMsg is the message of one change, its id derived from its cause.
func changeMsg(run *state.Run, at time.Time, t events.Type, doc *events.Document, fingerprint, reason, cause string) (*nats.Msg, error) {
	c := events.Change{ExternalID: doc.ExternalID, Fingerprint: fingerprint, Reason: reason}
	if t != events.TypeChangeDeleted {
		c.Document = doc
	}
	var payload any
	switch t {
	case events.TypeChangeCreated:
		payload = (*events.ChangeCreated)(&c)
	case events.TypeChangeUpdated:
		payload = (*events.ChangeUpdated)(&c)
	default:
		payload = (*events.ChangeDeleted)(&c)
	}
	env, err := events.New(run.SourceID, run.ID, payload)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(run.SourceID + "\x00" + run.ID + "\x00" + cause))
	id, err := ulid.New(ulid.Timestamp(at), bytes.NewReader(sum[:]))
	if err != nil {
		return nil, fmt.Errorf("change id: %w", err)
	}
	env.ID, env.Time = id.String(), at
	return env.Msg()
}

// ReasonReplay marks the changes a replay publishes.
const ReasonReplay = "replay"

// Replay is the outcome of ReplaySource.
type Replay struct {
	SourceID string `json:"source_id"`
	// ReplayID is the run_id of the replayed changes.
	ReplayID  string `json:"replay_id"`
	Documents int    `json:"documents"`
}

// ReplaySource publishes every catalog document of the source again as a
// change.created (reason "replay"), so an indexer can rebuild the source's
// documents without the source being read again.
func (m *Manager) ReplaySource(ctx context.Context, sourceID string) (*Replay, error) {
	src, err := m.GetSource(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	rp := &Replay{SourceID: sourceID, ReplayID: "replay-" + ulid.Make().String()}
	pseudo := &state.Run{ID: rp.ReplayID, SourceID: sourceID, Connector: src.Connector}
	now := time.Now().UTC()
	err = m.eachCatalogDoc(ctx, sourceID, func(rec *state.CatalogDoc) error {
		doc := events.Document{ExternalID: rec.ExternalID, Title: rec.Title, ContentID: rec.ContentID,
			Metadata: rec.Metadata, Permissions: rec.Permissions, Attributes: rec.Attributes}
		if err := m.publishChange(ctx, pseudo, now, events.TypeChangeCreated, &doc, rec.Hash, ReasonReplay, "replay."+rec.ExternalID); err != nil {
			return err
		}
		rp.Documents++
		return nil
	})
	if err != nil {
		return nil, unavailable("replay", err)
	}
	return rp, nil
}

// catalogScan is what the passes over the whole catalog (sweep, source
// deletion, content collection, the documents index) read of each record:
// decoding only these fields keeps a pass over a million records fast and
// light.
type catalogScan struct {
	ExternalID  string          `json:"external_id"`
	Title       string          `json:"title"`
	ContentID   string          `json:"content_id"`
	Status      state.DocStatus `json:"status"`
	Origin      string          `json:"origin"`
	LastSeenRun string          `json:"last_seen_run"`
	Metadata    struct {
		Path  string `json:"path"`
		Extra struct {
			RawContentID any `json:"raw_content_id"`
		} `json:"extra"`
	} `json:"metadata"`
}

// rawContentID is the record's raw content id, if it names one.
func (c *catalogScan) rawContentID() string {
	s, _ := c.Metadata.Extra.RawContentID.(string)
	return s
}

// scanCatalog streams every record whose key matches filter ("<source>.*",
// or ">" for all) into fn, through one watcher, failing rather than
// stopping early. fn must not keep the *catalogScan.
func (m *Manager) scanCatalog(ctx context.Context, filter string, fn func(*catalogScan, uint64) error) error {
	w, err := m.store.Catalog.KV().Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("scan catalog: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var rec catalogScan
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("scan catalog: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("scan catalog: watcher closed before the initial values were read")
			}
			if e == nil {
				return nil
			}
			rec = catalogScan{}
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return fmt.Errorf("scan catalog: %s: %w", e.Key(), err)
			}
			if err := fn(&rec, e.Revision()); err != nil {
				return err
			}
		}
	}
}

// eachCatalogDoc calls fn with every catalog document of the source,
// streamed through one watcher.
func (m *Manager) eachCatalogDoc(ctx context.Context, sourceID string, fn func(*state.CatalogDoc) error) error {
	return m.store.Catalog.Each(ctx, sourceID+".*", func(e state.Entry[state.CatalogDoc]) error {
		return fn(e.Value)
	})
}
