package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// CreateSourceRequest is the body of POST /v1/sources.
type CreateSourceRequest struct {
	Name        string          `json:"name"`
	Connector   string          `json:"connector"`
	Config      json.RawMessage `json:"config"`
	Credentials json.RawMessage `json:"credentials"`
	// Schedule is {"every"|"cron", "mode", "paused"}; absent or null for
	// manual syncs only.
	Schedule json.RawMessage `json:"schedule"`
}

func (s *Server) createSource(w http.ResponseWriter, r *http.Request) {
	var req CreateSourceRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	sched, _, ok := decodeSchedule(w, req.Schedule)
	if !ok {
		return
	}
	src, err := s.m.CreateSource(r.Context(), manager.CreateSource{Name: req.Name, Connector: req.Connector,
		Config: req.Config, Credentials: req.Credentials, Schedule: sched})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/sources/"+src.ID)
	writeJSON(w, http.StatusCreated, sourceView(src))
}

func (s *Server) listSources(w http.ResponseWriter, r *http.Request) {
	page, size, ok := paging(w, r)
	if !ok {
		return
	}
	got, err := s.m.ListSourcesPage(r.Context(), page, size)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	views := make([]Source, len(got.Items))
	for i, src := range got.Items {
		views[i] = sourceView(src)
	}
	writeJSON(w, http.StatusOK, Page[Source]{Items: views, Total: got.Total, Page: page, Size: size})
}

func (s *Server) getSource(w http.ResponseWriter, r *http.Request) {
	src, err := s.m.GetSource(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sourceView(src))
}

// PatchSourceRequest is the body of PATCH /v1/sources/{id}; absent fields
// stay as they are, "credentials": null removes the credentials.
type PatchSourceRequest struct {
	Name        *string         `json:"name"`
	Config      json.RawMessage `json:"config"`
	Credentials json.RawMessage `json:"credentials"`
	// Schedule replaces the schedule's interval, cron and mode (paused
	// only when given); null removes the schedule.
	Schedule json.RawMessage `json:"schedule"`
}

func (s *Server) patchSource(w http.ResponseWriter, r *http.Request) {
	if _, err := s.m.GetSource(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req PatchSourceRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	sched, clear, ok := decodeSchedule(w, req.Schedule)
	if !ok {
		return
	}
	src, err := s.m.UpdateSource(r.Context(), r.PathValue("id"), manager.SourcePatch{Name: req.Name,
		Config: req.Config, Credentials: req.Credentials, Schedule: sched, ClearSchedule: clear})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sourceView(src))
}

func (s *Server) deleteSource(w http.ResponseWriter, r *http.Request) {
	if err := s.m.DeleteSource(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SyncRequest is the body of POST /v1/sources/{id}/sync; it may be empty.
type SyncRequest struct {
	// Mode is "full" or "incremental"; default incremental, full when the
	// source has no checkpoint.
	Mode events.SyncMode `json:"mode"`
}

func (s *Server) syncSource(w http.ResponseWriter, r *http.Request) {
	if _, err := s.m.GetSource(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req SyncRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	run, err := s.m.TriggerSync(r.Context(), r.PathValue("id"), req.Mode, manager.TriggerManual)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/runs/"+run.ID)
	writeJSON(w, http.StatusAccepted, runView(run))
}

// replaySource publishes the source's documents again on the change feed.
func (s *Server) replaySource(w http.ResponseWriter, r *http.Request) {
	rp, err := s.m.ReplaySource(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, rp)
}

func (s *Server) cancelSource(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.CancelSource(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, runView(run))
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	page, size, ok := paging(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := manager.RunFilter{SourceID: q.Get("source_id"), Status: state.RunStatus(q.Get("status"))}
	if f.Status != "" && !f.Status.Valid() {
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
			Loc: []any{"query", "status"}, Msg: "Input should be one of queued, running, completed, failed, cancelled", Type: "enum"}}})
		return
	}
	runs, err := s.m.ListRuns(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	views := make([]Run, len(runs))
	for i, run := range runs {
		views[i] = runView(run)
	}
	writeJSON(w, http.StatusOK, paginate(views, page, size))
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.GetRun(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runView(run))
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.CancelRun(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, runView(run))
}

func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request) {
	conns, err := s.m.ListConnectors(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": conns, "total": len(conns)})
}

func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) {
	workers, err := s.m.ListWorkers(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": workers, "total": len(workers)})
}

// LogLevel is the body and answer of /v1/admin/log-level.
type LogLevel struct {
	Level string `json:"level"`
}

func (s *Server) getLogLevel(w http.ResponseWriter, r *http.Request) {
	if s.level == nil {
		writeProblem(w, http.StatusConflict, manager.CodeNotSupported, "This server's log level cannot be changed")
		return
	}
	writeJSON(w, http.StatusOK, LogLevel{Level: s.level.String()})
}

// putLogLevel changes the manager's log level until it restarts.
func (s *Server) putLogLevel(w http.ResponseWriter, r *http.Request) {
	if s.level == nil {
		writeProblem(w, http.StatusConflict, manager.CodeNotSupported, "This server's log level cannot be changed")
		return
	}
	var req LogLevel
	if !decodeBody(w, r, &req, false) {
		return
	}
	lvl, err := zapcore.ParseLevel(req.Level)
	if err != nil || req.Level == "" || lvl < zapcore.DebugLevel || lvl > zapcore.ErrorLevel {
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
			Loc: []any{"body", "level"}, Msg: "Input should be 'debug', 'info', 'warn' or 'error'", Type: "enum"}}})
		return
	}
	old := s.level.Level()
	s.level.SetLevel(lvl)
	s.log.Info("log level changed", zap.Stringer("from", old), zap.Stringer("to", lvl))
	writeJSON(w, http.StatusOK, LogLevel{Level: lvl.String()})
}

// runErrors pages through the run's document.error events.
func (s *Server) runErrors(w http.ResponseWriter, r *http.Request) {
	page, size, ok := paging(w, r)
	if !ok {
		return
	}
	items, total, err := s.m.RunErrors(r.Context(), r.PathValue("id"), page, size)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[manager.RunError]{Items: items, Total: total, Page: page, Size: size})
}

// decodeSchedule reads a "schedule" member: nil when absent, clear when
// null. A wrong shape is answered with a 422 and ok false.
func decodeSchedule(w http.ResponseWriter, raw json.RawMessage) (in *manager.ScheduleInput, clear, ok bool) {
	if raw == nil {
		return nil, false, true
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, true, true
	}
	in = new(manager.ScheduleInput)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(in); err != nil {
		d := manager.Detail{Loc: []any{"body", "schedule"}, Msg: "Input should be an object with every, cron, mode and paused", Type: "dict_type"}
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typ) && typ.Field != "":
			d.Loc = append(d.Loc, typ.Field)
			d.Msg = "Input should be a valid " + jsonKind(typ.Type.Kind().String())
			d.Type = jsonKind(typ.Type.Kind().String()) + "_type"
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			d.Loc = append(d.Loc, strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
			d.Msg, d.Type = "Extra inputs are not permitted", "extra_forbidden"
		}
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{d}})
		return nil, false, false
	}
	return in, false, true
}

func (s *Server) pauseSource(w http.ResponseWriter, r *http.Request) {
	src, err := s.m.PauseSource(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sourceView(src))
}

func (s *Server) resumeSource(w http.ResponseWriter, r *http.Request) {
	src, err := s.m.ResumeSource(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sourceView(src))
}

// CheckpointRequest is the body of PUT /v1/sources/{id}/checkpoint.
type CheckpointRequest struct {
	// Checkpoint is the connector's position, as its runs save it.
	Checkpoint json.RawMessage `json:"checkpoint"`
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := s.m.GetCheckpoint(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *Server) putCheckpoint(w http.ResponseWriter, r *http.Request) {
	if _, err := s.m.GetSource(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req CheckpointRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	cp, err := s.m.SetCheckpoint(r.Context(), r.PathValue("id"), req.Checkpoint)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cp)
}

func (s *Server) deleteCheckpoint(w http.ResponseWriter, r *http.Request) {
	if err := s.m.ResetCheckpoint(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) retryRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.RetryRun(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/runs/"+run.ID)
	writeJSON(w, http.StatusAccepted, runView(run))
}
