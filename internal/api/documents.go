package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// maxDocumentBody bounds a manual document's body: its content (at most
// manager.MaxDocumentContent bytes) as a JSON string, plus its fields.
const maxDocumentBody = 4*manager.MaxDocumentContent + 1<<20

// Document is a catalog document as the API shows it.
type Document struct {
	ID          string             `json:"id"`
	SourceID    string             `json:"source_id"`
	ExternalID  string             `json:"external_id"`
	Title       string             `json:"title"`
	ContentID   string             `json:"content_id,omitempty"`
	Fingerprint string             `json:"fingerprint"`
	Metadata    events.Metadata    `json:"metadata"`
	Permissions events.Permissions `json:"permissions"`
	Attributes  map[string]any     `json:"attributes,omitempty"`
	Status      state.DocStatus    `json:"status"`
	Error       string             `json:"error,omitempty"`
	StatusAt    *time.Time         `json:"status_at,omitempty"`
	Origin      string             `json:"origin"`
	// FirstSeenRun and LastSeenRun are the runs that first and last
	// emitted the document (empty for a document added by hand).
	FirstSeenRun string    `json:"first_seen_run,omitempty"`
	LastSeenRun  string    `json:"last_seen_run,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func documentView(d *state.CatalogDoc) Document {
	return Document{ID: state.DocID(d.ExternalID), SourceID: d.SourceID, ExternalID: d.ExternalID, Title: d.Title,
		ContentID: d.ContentID, Fingerprint: d.Hash, Metadata: d.Metadata, Permissions: d.Permissions,
		Attributes: d.Attributes, Status: d.Status, Error: d.Error, StatusAt: d.StatusAt, Origin: d.Origin,
		FirstSeenRun: d.FirstSeenRun, LastSeenRun: d.LastSeenRun, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
}

func (s *Server) listDocuments(w http.ResponseWriter, r *http.Request) {
	page, size, ok := paging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := manager.DocumentFilter{Status: state.DocStatus(q.Get("status")), Search: q.Get("search"), Page: page, Size: size}
	res, err := s.m.ListDocuments(r.Context(), r.PathValue("id"), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]Document, len(res.Items))
	for i, d := range res.Items {
		items[i] = documentView(d)
	}
	writeJSON(w, http.StatusOK, Page[Document]{Items: items, Total: res.Total, Page: page, Size: size})
}

func (s *Server) getDocument(w http.ResponseWriter, r *http.Request) {
	doc, err := s.m.GetDocument(r.Context(), r.PathValue("id"), r.PathValue("doc_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, documentView(doc))
}

// getContent streams a document's text, or with ?raw=true its original
// bytes, with the type they were stored with.
func (s *Server) getContent(w http.ResponseWriter, r *http.Request) {
	raw := false
	if v := r.URL.Query().Get("raw"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
				Loc: []any{"query", "raw"}, Msg: "Input should be a valid boolean", Type: "bool_parsing"}}})
			return
		}
		raw = b
	}
	obj, err := s.m.OpenContent(r.Context(), r.PathValue("id"), r.PathValue("doc_id"), raw)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer func() { _ = obj.Close() }()
	w.Header().Set("Content-Type", obj.ContentType)
	w.Header().Set("Content-Length", strconv.FormatUint(obj.Size, 10))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", "inline")
	if _, err := io.Copy(w, obj); err != nil && !errors.Is(err, r.Context().Err()) {
		s.log.Warn("content stream broke off", zap.String("path", r.URL.Path), zap.Error(err))
	}
}

// DocumentRequest is the body of POST and PUT on documents.
type DocumentRequest = manager.DocumentInput

func (s *Server) createDocument(w http.ResponseWriter, r *http.Request) {
	if _, err := s.m.GetSource(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req DocumentRequest
	if !decodeBodyLimit(w, r, &req, false, maxDocumentBody) {
		return
	}
	doc, err := s.m.CreateDocument(r.Context(), r.PathValue("id"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := documentView(doc)
	w.Header().Set("Location", "/v1/sources/"+doc.SourceID+"/documents/"+v.ID)
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) updateDocument(w http.ResponseWriter, r *http.Request) {
	if _, err := s.m.GetDocument(r.Context(), r.PathValue("id"), r.PathValue("doc_id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req DocumentRequest
	if !decodeBodyLimit(w, r, &req, false, maxDocumentBody) {
		return
	}
	if req.ExternalID != "" {
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
			Loc: []any{"body", "external_id"}, Msg: "external_id cannot be changed", Type: "extra_forbidden"}}})
		return
	}
	doc, err := s.m.UpdateDocument(r.Context(), r.PathValue("id"), r.PathValue("doc_id"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, documentView(doc))
}

func (s *Server) deleteDocument(w http.ResponseWriter, r *http.Request) {
	if err := s.m.DeleteDocument(r.Context(), r.PathValue("id"), r.PathValue("doc_id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DocumentStatusRequest is the body of POST .../documents/{doc_id}/status.
type DocumentStatusRequest = manager.DocumentStatus

func (s *Server) setDocumentStatus(w http.ResponseWriter, r *http.Request) {
	if _, err := s.m.GetDocument(r.Context(), r.PathValue("id"), r.PathValue("doc_id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req DocumentStatusRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	doc, err := s.m.SetDocumentStatus(r.Context(), r.PathValue("id"), r.PathValue("doc_id"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, documentView(doc))
}

// syncDocument re-fetches one document through its connector.
func (s *Server) syncDocument(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.SyncDocument(r.Context(), r.PathValue("id"), r.PathValue("doc_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/runs/"+run.ID)
	writeJSON(w, http.StatusAccepted, runView(run))
}

// stopDocument cancels the re-fetch of one document.
func (s *Server) stopDocument(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.StopDocumentSync(r.Context(), r.PathValue("id"), r.PathValue("doc_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, runView(run))
}
