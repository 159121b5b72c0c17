package api

import (
	"encoding/json"
	"net/http"
)

// ActionRequest is the body of POST /v1/sources/{id}/actions/{name}.
type ActionRequest struct {
	// Params are the action's parameters, a JSON object.
	Params json.RawMessage `json:"params"`
}

// ActionResponse is the answer of an action.
type ActionResponse struct {
	Action     string          `json:"action"`
	SourceID   string          `json:"source_id"`
	WorkerID   string          `json:"worker_id"`
	DurationMS int64           `json:"duration_ms"`
	Result     json.RawMessage `json:"result"`
}

// ConnectionTestResponse is the answer of a connection test.
type ConnectionTestResponse struct {
	OK         bool   `json:"ok"`
	Message    string `json:"message,omitempty"`
	SourceID   string `json:"source_id"`
	WorkerID   string `json:"worker_id"`
	DurationMS int64  `json:"duration_ms"`
}

func (s *Server) runAction(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.m.GetSource(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req ActionRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	res, err := s.m.ExecuteAction(r.Context(), id, r.PathValue("name"), req.Params)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ActionResponse{Action: res.Action, SourceID: id, WorkerID: res.WorkerID,
		DurationMS: res.Duration.Milliseconds(), Result: res.Result})
}

func (s *Server) testConnection(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, err := s.m.TestConnection(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ConnectionTestResponse{OK: res.OK, Message: res.Message, SourceID: id,
		WorkerID: res.WorkerID, DurationMS: res.Duration.Milliseconds()})
}
