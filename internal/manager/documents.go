package manager

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime/debug"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"golang.org/x/sync/errgroup"

	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// The documents API: list, read and change a source's catalog documents.
// Manual changes go through the change feed exactly like synced ones.

// Run ids of changes no run made.
const (
	// ManualRunID is the run_id of changes made through the documents API.
	ManualRunID = "manual"
)

// ReasonDeletedByOperator is the reason of a deletion through the API.
const ReasonDeletedByOperator = "deleted_by_operator"

// Limits of manually added documents.
const (
	MaxDocumentContent = 5 << 20
	maxErrorLen        = 4096
)

// keyLocks serialise the catalog writes of one document key in this
// manager (the applier, manual changes and status reports), so a change is
// published and recorded as one step. Everyone takes one stripe at a time,
// except the applier, which takes a batch's stripes in ascending order
// (lockKeys): no cycle, no deadlock.
type keyLocks [keyStripes]sync.Mutex

const keyStripes = 4096

func keyStripe(key string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return h.Sum32() % keyStripes
}

func (m *Manager) lockKey(key string) func() {
	mu := &m.keyLocks[keyStripe(key)]
	mu.Lock()
	return mu.Unlock
}

// lockKeys locks the stripes of every key, in ascending order.
func (m *Manager) lockKeys(keys []string) func() {
	stripes := make([]uint32, len(keys))
	for i, k := range keys {
		stripes[i] = keyStripe(k)
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes {
		m.keyLocks[s].Lock()
	}
	return func() {
		for _, s := range stripes {
			m.keyLocks[s].Unlock()
		}
	}
}

// DocumentFilter selects a page of documents.
type DocumentFilter struct {
	Status state.DocStatus
	// Search matches title or path, case-insensitively.
	Search     string
	Page, Size int
}

// DocumentPage is one page of documents and how many match in all.
type DocumentPage struct {
	Items []*state.CatalogDoc
	Total int
}

// ListDocuments returns a page of the source's documents in external-id
// order.
func (m *Manager) ListDocuments(ctx context.Context, sourceID string, f DocumentFilter) (*DocumentPage, error) {
	if f.Status != "" && !f.Status.Valid() {
		return nil, invalid("enum", "Input should be 'pending', 'indexed' or 'failed'", "query", "status")
	}
	if f.Page < 1 || f.Size < 1 {
		return nil, invalid("greater_than_equal", "page and size must be at least 1", "query", "page")
	}
	if _, err := m.GetSource(ctx, sourceID); err != nil {
		return nil, err
	}
	si, err := m.docs.get(ctx, sourceID, func(fn func(*state.CatalogDoc, uint64)) error {
		return m.loadIndex(sourceID, fn)
	})
	if err != nil {
		return nil, unavailable("list documents", err)
	}
	total, ids := si.query(f.Status, f.Search, f.Page, f.Size)
	docs := make([]*state.CatalogDoc, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i, id := range ids {
		g.Go(func() error {
			doc, _, err := m.store.Catalog.Get(gctx, state.CatalogKey(sourceID, id))
			if errors.Is(err, state.ErrNotFound) {
				return nil // deleted since the index was read
			}
			docs[i] = doc
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, unavailable("list documents", err)
	}
	page := &DocumentPage{Items: make([]*state.CatalogDoc, 0, len(docs)), Total: total}
	for _, d := range docs {
		if d != nil {
			page.Items = append(page.Items, d)
		}
	}
	return page, nil
}

// loadIndex streams the source's catalog into fn, decoding only what the
// index keeps.
func (m *Manager) loadIndex(sourceID string, fn func(*state.CatalogDoc, uint64)) error {
	n := 0
	err := m.scanCatalog(m.applyCtx, sourceID+".*", func(rec *catalogScan, rev uint64) error {
		fn(&state.CatalogDoc{ExternalID: rec.ExternalID, Title: rec.Title, Status: rec.Status,
			Metadata: events.Metadata{Path: rec.Metadata.Path}}, rev)
		n++
		return nil
	})
	if err == nil && n > 50_000 {
		// Loading a big source leaves much garbage behind (every record
		// decoded once): give it back now rather than carry it at the
		// heap's next goal.
		debug.FreeOSMemory()
	}
	return err
}

func validDocID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// GetDocument returns one document by its id (state.DocID).
func (m *Manager) GetDocument(ctx context.Context, sourceID, docID string) (*state.CatalogDoc, error) {
	_, doc, err := m.sourceDocument(ctx, sourceID, docID)
	return doc, err
}

// docKey is the catalog key of a document of an existing source.
func (m *Manager) docKey(ctx context.Context, sourceID, docID string) (string, error) {
	if _, err := m.GetSource(ctx, sourceID); err != nil {
		return "", err
	}
	if !validDocID(docID) {
		return "", &NotFoundError{Kind: "document", ID: docID}
	}
	return sourceID + "." + docID, nil
}

// sourceDocument returns a source and one of its documents.
func (m *Manager) sourceDocument(ctx context.Context, sourceID, docID string) (*state.Source, *state.CatalogDoc, error) {
	src, err := m.GetSource(ctx, sourceID)
	if err != nil {
		return nil, nil, err
	}
	if !validDocID(docID) {
		return nil, nil, &NotFoundError{Kind: "document", ID: docID}
	}
	doc, _, err := m.store.Catalog.Get(ctx, sourceID+"."+docID)
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil, &NotFoundError{Kind: "document", ID: docID}
	}
	if err != nil {
		return nil, nil, unavailable("get document", err)
	}
	return src, doc, nil
}

// RawContentKey is the metadata.extra key naming the original bytes of a
// document whose content is text extracted from them.
const RawContentKey = "raw_content_id"

// OpenContent opens a document's content: its text, or with raw the
// original bytes where the text was extracted from them. The caller closes
// it.
func (m *Manager) OpenContent(ctx context.Context, sourceID, docID string, raw bool) (*content.Object, error) {
	doc, err := m.GetDocument(ctx, sourceID, docID)
	if err != nil {
		return nil, err
	}
	id := doc.ContentID
	if raw {
		if r, ok := doc.Metadata.Extra[RawContentKey].(string); ok && r != "" {
			id = r
		}
	}
	if id == "" {
		return nil, &NotFoundError{Kind: "content of document", ID: docID}
	}
	obj, err := m.content.Open(ctx, id)
	if errors.Is(err, content.ErrNotFound) {
		return nil, &NotFoundError{Kind: "content", ID: id}
	}
	if err != nil {
		return nil, unavailable("open content", err)
	}
	return obj, nil
}

// DocumentInput is a manually added or updated document. On update, a nil
// field keeps its current value.
type DocumentInput struct {
	ExternalID  string              `json:"external_id"`
	Title       *string             `json:"title"`
	Content     *string             `json:"content"`
	ContentType string              `json:"content_type"`
	Metadata    *events.Metadata    `json:"metadata"`
	Permissions *events.Permissions `json:"permissions"`
	Attributes  map[string]any      `json:"attributes"`
}

func (in *DocumentInput) validate(create bool) error {
	var details []Detail
	if create && in.ExternalID != "" {
		if err := (&events.Document{ExternalID: in.ExternalID}).Validate(); err != nil {
			details = append(details, Detail{Loc: []any{"body", "external_id"}, Msg: err.Error(), Type: "value_error"})
		}
	}
	if in.Content != nil && len(*in.Content) > MaxDocumentContent {
		details = append(details, Detail{Loc: []any{"body", "content"}, Msg: fmt.Sprintf("Content is longer than %d bytes", MaxDocumentContent), Type: "too_long"})
	}
	if in.Content != nil && !utf8.ValidString(*in.Content) {
		details = append(details, Detail{Loc: []any{"body", "content"}, Msg: "Content must be UTF-8 text", Type: "value_error"})
	}
	if in.Metadata != nil && in.Metadata.Size < 0 {
		details = append(details, Detail{Loc: []any{"body", "metadata", "size"}, Msg: "Input should be greater than or equal to 0", Type: "greater_than_equal"})
	}
	if len(details) > 0 {
		return &ValidationError{Details: details}
	}
	return nil
}

// CreateDocument adds a document by hand and publishes its creation.
func (m *Manager) CreateDocument(ctx context.Context, sourceID string, in DocumentInput) (*state.CatalogDoc, error) {
	if err := in.validate(true); err != nil {
		return nil, err
	}
	if _, err := m.GetSource(ctx, sourceID); err != nil {
		return nil, err
	}
	if in.ExternalID == "" {
		in.ExternalID = ulid.Make().String()
	}
	doc := events.Document{ExternalID: in.ExternalID, Permissions: events.Permissions{Public: true}}
	if err := m.fill(ctx, &doc, &in); err != nil {
		return nil, err
	}
	key := state.CatalogKey(sourceID, doc.ExternalID)
	unlock := m.lockKey(key)
	defer unlock()
	if _, _, err := m.store.Catalog.Get(ctx, key); err == nil {
		return nil, &ConflictError{Code: CodeDocumentExists, Message: fmt.Sprintf("Source %s already has a document with external_id %q", sourceID, doc.ExternalID)}
	} else if !errors.Is(err, state.ErrNotFound) {
		return nil, unavailable("create document", err)
	}
	hash, err := docHash(&doc)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	pseudo := &state.Run{ID: ManualRunID, SourceID: sourceID}
	if err := m.publishChange(ctx, pseudo, now, events.TypeChangeCreated, &doc, hash, "", "manual."+ulid.Make().String()); err != nil {
		return nil, unavailable("create document", err)
	}
	rec := catalogRecord(pseudo, &doc, hash, now)
	rec.Origin, rec.FirstSeenRun, rec.LastSeenRun, rec.CreatedAt = state.OriginManual, "", "", now
	rev, err := m.store.Catalog.Create(ctx, key, rec)
	if err != nil {
		return nil, unavailable("create document", err)
	}
	m.docs.put(sourceID, rec, rev)
	return rec, nil
}

// fill applies the input's fields to doc, storing its content.
func (m *Manager) fill(ctx context.Context, doc *events.Document, in *DocumentInput) error {
	if in.Title != nil {
		doc.Title = *in.Title
	}
	if in.Metadata != nil {
		extra := doc.Metadata.Extra
		doc.Metadata = *in.Metadata
		if _, ok := in.Metadata.Extra[RawContentKey]; !ok && in.Content == nil && extra != nil {
			// Keep the link to the original bytes while the text stays.
			if raw, ok := extra[RawContentKey]; ok {
				if doc.Metadata.Extra == nil {
					doc.Metadata.Extra = map[string]any{}
				}
				doc.Metadata.Extra[RawContentKey] = raw
			}
		}
	}
	if in.Permissions != nil {
		doc.Permissions = *in.Permissions
	}
	if in.Attributes != nil {
		doc.Attributes = in.Attributes
	}
	if in.Content != nil {
		ct := in.ContentType
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		id, err := m.content.Put(ctx, []byte(*in.Content), ct)
		if err != nil {
			return unavailable("store content", err)
		}
		doc.ContentID = id
		// New text: whatever raw bytes it came from are no longer its source.
		delete(doc.Metadata.Extra, RawContentKey)
	}
	return nil
}

// UpdateDocument changes a document by hand; an update that changes
// nothing publishes nothing.
func (m *Manager) UpdateDocument(ctx context.Context, sourceID, docID string, in DocumentInput) (*state.CatalogDoc, error) {
	if err := in.validate(false); err != nil {
		return nil, err
	}
	key, err := m.docKey(ctx, sourceID, docID)
	if err != nil {
		return nil, err
	}
	unlock := m.lockKey(key)
	defer unlock()
	cur, rev, err := m.store.Catalog.Get(ctx, key)
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "document", ID: docID}
	} else if err != nil {
		return nil, unavailable("update document", err)
	}
	doc := events.Document{ExternalID: cur.ExternalID, Title: cur.Title, ContentID: cur.ContentID,
		Metadata: cur.Metadata, Permissions: cur.Permissions, Attributes: cur.Attributes}
	if err := m.fill(ctx, &doc, &in); err != nil {
		return nil, err
	}
	hash, err := docHash(&doc)
	if err != nil {
		return nil, err
	}
	if hash == cur.Hash {
		return cur, nil
	}
	now := time.Now().UTC()
	pseudo := &state.Run{ID: ManualRunID, SourceID: sourceID}
	if err := m.publishChange(ctx, pseudo, now, events.TypeChangeUpdated, &doc, hash, "", "manual."+ulid.Make().String()); err != nil {
		return nil, unavailable("update document", err)
	}
	rec := catalogRecord(pseudo, &doc, hash, now)
	rec.Origin, rec.FirstSeenRun, rec.LastSeenRun = state.OriginManual, cur.FirstSeenRun, cur.LastSeenRun
	rec.CreatedSeq, rec.CreatedAt = cur.CreatedSeq, cur.CreatedAt
	nrev, err := m.store.Catalog.Update(ctx, key, rec, rev)
	if err != nil {
		return nil, unavailable("update document", err)
	}
	m.docs.put(sourceID, rec, nrev)
	return rec, nil
}

// DeleteDocument deletes a document by hand and publishes its deletion.
func (m *Manager) DeleteDocument(ctx context.Context, sourceID, docID string) error {
	doc, err := m.GetDocument(ctx, sourceID, docID)
	if err != nil {
		return err
	}
	pseudo := &state.Run{ID: ManualRunID, SourceID: sourceID}
	out, err := m.catalogDelete(ctx, pseudo, time.Now().UTC(), doc.ExternalID, ReasonDeletedByOperator, "manual."+ulid.Make().String())
	if err != nil {
		return unavailable("delete document", err)
	}
	if out != outcomeDeleted {
		return &NotFoundError{Kind: "document", ID: docID}
	}
	return nil
}

// DocumentStatus is an indexer's report on one document.
type DocumentStatus struct {
	Status state.DocStatus `json:"status"`
	Error  string          `json:"error"`
	// Fingerprint, when given, is the version the indexer handled (the
	// change's fingerprint); a report on a version the document has since
	// left is refused as stale and changes nothing.
	Fingerprint string `json:"fingerprint"`
}

// SetDocumentStatus records what an indexer made of a document.
func (m *Manager) SetDocumentStatus(ctx context.Context, sourceID, docID string, st DocumentStatus) (*state.CatalogDoc, error) {
	switch {
	case !st.Status.Valid():
		return nil, invalid("enum", "Input should be 'pending', 'indexed' or 'failed'", "body", "status")
	case st.Error != "" && st.Status != state.DocFailed:
		return nil, invalid("value_error", "error is only allowed with status 'failed'", "body", "error")
	case len(st.Error) > maxErrorLen:
		return nil, invalid("too_long", fmt.Sprintf("error is longer than %d bytes", maxErrorLen), "body", "error")
	}
	key, err := m.docKey(ctx, sourceID, docID)
	if err != nil {
		return nil, err
	}
	unlock := m.lockKey(key)
	defer unlock()
	now := time.Now().UTC()
	doc, rev, err := m.store.Catalog.Mutate(ctx, key, func(d *state.CatalogDoc) error {
		if st.Fingerprint != "" && st.Fingerprint != d.Hash {
			return &ConflictError{Code: CodeStale, Message: fmt.Sprintf("document %s has changed since version %s; its status is that of the newer version", docID, st.Fingerprint)}
		}
		d.Status, d.Error, d.StatusAt = st.Status, st.Error, &now
		return nil
	})
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "document", ID: docID}
	}
	var ce *ConflictError
	if errors.As(err, &ce) {
		return nil, ce
	}
	if err != nil {
		return nil, unavailable("set document status", err)
	}
	m.docs.put(sourceID, doc, rev)
	return doc, nil
}

// statusReport handles one StatusReport from the NATS subject.
func (m *Manager) statusReport(ctx context.Context, sourceID string, data []byte) events.StatusReply {
	var r events.StatusReport
	if err := json.Unmarshal(data, &r); err != nil {
		return events.StatusReply{Error: &events.StatusError{Code: "invalid", Message: "report is not a JSON status report: " + err.Error()}}
	}
	docID := r.DocID
	if docID == "" && r.ExternalID != "" {
		docID = state.DocID(r.ExternalID)
	}
	if docID == "" {
		return events.StatusReply{Error: &events.StatusError{Code: "invalid", Message: "doc_id or external_id is required"}}
	}
	_, err := m.SetDocumentStatus(ctx, sourceID, docID, DocumentStatus{Status: state.DocStatus(r.Status), Error: r.Error, Fingerprint: r.Fingerprint})
	var nf *NotFoundError
	var ve *ValidationError
	var ce *ConflictError
	switch {
	case err == nil:
		return events.StatusReply{OK: true}
	case errors.As(err, &ce):
		return events.StatusReply{Error: &events.StatusError{Code: ce.Code, Message: ce.Message}}
	case errors.As(err, &nf):
		return events.StatusReply{Error: &events.StatusError{Code: "not_found", Message: nf.Error()}}
	case errors.As(err, &ve):
		return events.StatusReply{Error: &events.StatusError{Code: "invalid", Message: ve.Error()}}
	default:
		return events.StatusReply{Error: &events.StatusError{Code: "unavailable", Message: err.Error()}}
	}
}
