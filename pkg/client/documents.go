package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Documents: the catalog of each source, under
// /v1/sources/{id}/documents. Documents are addressed by their API id
// (Document.ID, derived from the external id: state.DocID).

// Document is a catalog document as the API shows it.
type Document struct {
	// ID is the document's id in the API: 32 hex digits derived from
	// ExternalID (state.DocID).
	ID         string `json:"id"`
	SourceID   string `json:"source_id"`
	ExternalID string `json:"external_id"`
	Title      string `json:"title"`
	// ContentID names its text in the content store; empty for a
	// metadata-only document.
	ContentID string `json:"content_id,omitempty"`
	// Fingerprint identifies the version: equal fingerprints, equal
	// document.
	Fingerprint string             `json:"fingerprint"`
	Metadata    events.Metadata    `json:"metadata"`
	Permissions events.Permissions `json:"permissions"`
	Attributes  map[string]any     `json:"attributes,omitempty"`
	// Status is what indexers made of the latest version.
	Status state.DocStatus `json:"status"`
	Error  string          `json:"error,omitempty"`
	// StatusAt is when an indexer last reported.
	StatusAt *time.Time `json:"status_at,omitempty"`
	// Origin is state.OriginSync or state.OriginManual.
	Origin string `json:"origin"`
	// FirstSeenRun and LastSeenRun are the runs that first and last
	// emitted it (empty for a manual document).
	FirstSeenRun string    `json:"first_seen_run,omitempty"`
	LastSeenRun  string    `json:"last_seen_run,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ListDocumentsParams chooses the documents ListDocuments returns.
type ListDocumentsParams struct {
	PageParams
	// Status, when set, keeps documents in that status.
	Status state.DocStatus
	// Search, when set, keeps documents whose title or metadata.path
	// contains it, case-insensitively.
	Search string
}

// DocumentRequest is the body of CreateDocument and UpdateDocument. Nil
// fields are left out: on create they take their defaults, on update they
// keep their current value.
type DocumentRequest struct {
	// ExternalID is the document's id in its source; create only
	// (default: a new ULID).
	ExternalID string  `json:"external_id,omitempty"`
	Title      *string `json:"title,omitempty"`
	// Content is UTF-8 text, at most 5 MiB.
	Content *string `json:"content,omitempty"`
	// ContentType defaults to "text/plain; charset=utf-8".
	ContentType string              `json:"content_type,omitempty"`
	Metadata    *events.Metadata    `json:"metadata,omitempty"`
	Permissions *events.Permissions `json:"permissions,omitempty"`
	Attributes  map[string]any      `json:"attributes,omitempty"`
}

// DocumentStatusRequest is the body of SetDocumentStatus.
type DocumentStatusRequest struct {
	// Status is state.DocPending, state.DocIndexed or state.DocFailed.
	Status state.DocStatus `json:"status"`
	// Error says why, with state.DocFailed only; at most 4 KiB.
	Error string `json:"error,omitempty"`
	// Fingerprint, when set, is the version the indexer handled; a report
	// on a version the document has left is an *Error with CodeStale.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Content is a document's content being downloaded. Close its Body.
type Content struct {
	Body io.ReadCloser
	// ContentType is the type it was stored with.
	ContentType string
	// Size is its length in bytes, or -1 when unknown.
	Size int64
}

// ContentParams chooses what GetDocumentContent returns.
type ContentParams struct {
	// Raw asks for the original bytes where text was extracted from them
	// (a PDF, say) instead of the text.
	Raw bool
}

// ListDocuments returns a page of a source's documents in external_id
// order.
//
// Route: GET /v1/sources/{id}/documents.
func (c *Client) ListDocuments(ctx context.Context, sourceID string, p ListDocumentsParams) (*Page[Document], error) {
	q := p.values()
	if p.Status != "" {
		q.Set("status", string(p.Status))
	}
	if p.Search != "" {
		q.Set("search", p.Search)
	}
	var out Page[Document]
	if err := c.do(ctx, http.MethodGet, q, nil, &out, "v1", "sources", sourceID, "documents"); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDocument reads one document.
//
// Route: GET /v1/sources/{id}/documents/{doc_id}.
func (c *Client) GetDocument(ctx context.Context, sourceID, docID string) (*Document, error) {
	var out Document
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "sources", sourceID, "documents", docID); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDocumentContent opens a document's content. Config.Timeout does not
// apply: the download lasts as long as ctx allows. The caller must close
// Content.Body. A document without content is an *Error with Status 404.
//
// Route: GET /v1/sources/{id}/documents/{doc_id}/content.
func (c *Client) GetDocumentContent(ctx context.Context, sourceID, docID string, p ContentParams) (*Content, error) {
	var q url.Values
	if p.Raw {
		q = url.Values{"raw": {"true"}}
	}
	u, err := c.url(q, "v1", "sources", sourceID, "documents", docID, "content")
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req) //nolint:bodyclose // returned to the caller in Content.Body
	if err != nil {
		return nil, err
	}
	return &Content{Body: resp.Body, ContentType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}, nil
}

// ReadDocumentContent reads a document's whole content, up to limit bytes
// (an error beyond).
func (c *Client) ReadDocumentContent(ctx context.Context, sourceID, docID string, p ContentParams, limit int64) ([]byte, string, error) {
	ct, err := c.GetDocumentContent(ctx, sourceID, docID, p)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = ct.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(ct.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("tributary client: read content of document %s: %w", docID, err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("tributary client: content of document %s is larger than %d bytes", docID, limit)
	}
	return b, ct.ContentType, nil
}

// CreateDocument adds a document by hand (origin manual); a change.created
// goes on the change feed. An external id the source has is an *Error
// with CodeDocumentExists.
//
// Route: POST /v1/sources/{id}/documents.
func (c *Client) CreateDocument(ctx context.Context, sourceID string, req DocumentRequest) (*Document, error) {
	var out Document
	if err := c.do(ctx, http.MethodPost, nil, req, &out, "v1", "sources", sourceID, "documents"); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateDocument changes a document by hand: each field given replaces
// the current one. ExternalID must be empty.
//
// Route: PUT /v1/sources/{id}/documents/{doc_id}.
func (c *Client) UpdateDocument(ctx context.Context, sourceID, docID string, req DocumentRequest) (*Document, error) {
	var out Document
	if err := c.do(ctx, http.MethodPut, nil, req, &out, "v1", "sources", sourceID, "documents", docID); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteDocument deletes a document by hand; a change.deleted goes on the
// change feed.
//
// Route: DELETE /v1/sources/{id}/documents/{doc_id}.
func (c *Client) DeleteDocument(ctx context.Context, sourceID, docID string) error {
	return c.do(ctx, http.MethodDelete, nil, nil, nil, "v1", "sources", sourceID, "documents", docID)
}

// SetDocumentStatus records what an indexer made of a document.
//
// Route: POST /v1/sources/{id}/documents/{doc_id}/status.
func (c *Client) SetDocumentStatus(ctx context.Context, sourceID, docID string, req DocumentStatusRequest) (*Document, error) {
	var out Document
	if err := c.do(ctx, http.MethodPost, nil, req, &out, "v1", "sources", sourceID, "documents", docID, "status"); err != nil {
		return nil, err
	}
	return &out, nil
}

// SyncDocument re-fetches one document through the source's connector, as
// a run of the source (trigger "document"), and returns that run, queued.
// A connector that cannot is an *Error with CodeNotSupported.
//
// Route: POST /v1/sources/{id}/documents/{doc_id}/sync.
func (c *Client) SyncDocument(ctx context.Context, sourceID, docID string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", sourceID, "documents", docID, "sync"); err != nil {
		return nil, err
	}
	return &out, nil
}

// StopDocumentSync cancels the re-fetch of one document and returns its
// run. Nothing to stop is an *Error with CodeRunNotActive.
//
// Route: POST /v1/sources/{id}/documents/{doc_id}/stop.
func (c *Client) StopDocumentSync(ctx context.Context, sourceID, docID string) (*Run, error) {
	var out Run
	if err := c.do(ctx, http.MethodPost, nil, nil, &out, "v1", "sources", sourceID, "documents", docID, "stop"); err != nil {
		return nil, err
	}
	return &out, nil
}
