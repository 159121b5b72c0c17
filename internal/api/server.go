// Package api serves the operators' HTTP API: /v1 resources, /health,
// /api/version, /openapi.json and /metrics, with the error shapes
// documented in docs/api.md and described in openapi.json.
package api

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/version"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

const maxBody = 1 << 20

var errEOF = io.EOF

// Server is the HTTP API over a manager.
type Server struct {
	m         *manager.Manager
	log       *zap.Logger
	mux       *http.ServeMux
	tokens    *Tokens
	level     *zap.AtomicLevel
	keepAlive time.Duration
	// patterns are the routes' patterns, in the order routes registers them.
	patterns []string
	metrics  prometheus.Gatherer
}

// Option configures a Server.
type Option func(*Server)

// WithTokens requires a bearer token on every /v1 route (/health,
// /api/version, /openapi.json and /metrics stay open).
func WithTokens(t *Tokens) Option { return func(s *Server) { s.tokens = t } }

// WithLogLevel lets PUT /v1/admin/log-level change the level of the
// manager's logger at run time.
func WithLogLevel(l zap.AtomicLevel) Option { return func(s *Server) { s.level = &l } }

// WithMetrics serves what g gathers at GET /metrics, in the Prometheus
// text format; without it there is no /metrics.
func WithMetrics(g prometheus.Gatherer) Option { return func(s *Server) { s.metrics = g } }

// New returns the API handler.
func New(m *manager.Manager, log *zap.Logger, opts ...Option) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{m: m, log: log, mux: http.NewServeMux()}
	for _, o := range opts {
		o(s)
	}
	s.routes()
	return s
}

// routes registers every route. A route added here must also be described
// in openapi.json: TestOpenAPIRoutes fails until it is (see "Adding a
// route" in docs/api.md).
func (s *Server) routes() {
	h := func(pattern string, fn http.HandlerFunc) {
		s.patterns = append(s.patterns, pattern)
		s.mux.HandleFunc(pattern, fn)
	}
	h("GET /health", s.health)
	h("GET /api/version", s.version)
	h("GET /openapi.json", s.openAPI)
	if s.metrics != nil {
		// Open like /health: scrapers seldom carry tokens, and it shows
		// counts, connector and consumer names, never a source or a
		// credential. A failed collector leaves its metrics out rather
		// than fail the scrape.
		s.patterns = append(s.patterns, "GET /metrics")
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{
			ErrorLog: zap.NewStdLog(s.log), ErrorHandling: promhttp.ContinueOnError,
		}))
	}

	h("POST /v1/sources", s.createSource)
	h("GET /v1/sources", s.listSources)
	h("GET /v1/sources/{id}", s.getSource)
	h("PATCH /v1/sources/{id}", s.patchSource)
	h("DELETE /v1/sources/{id}", s.deleteSource)
	h("POST /v1/sources/{id}/sync", s.syncSource)
	h("POST /v1/sources/{id}/cancel", s.cancelSource)
	h("POST /v1/sources/{id}/replay", s.replaySource)
	h("POST /v1/sources/{id}/pause", s.pauseSource)
	h("POST /v1/sources/{id}/resume", s.resumeSource)
	h("GET /v1/sources/{id}/checkpoint", s.getCheckpoint)
	h("PUT /v1/sources/{id}/checkpoint", s.putCheckpoint)
	h("DELETE /v1/sources/{id}/checkpoint", s.deleteCheckpoint)
	h("POST /v1/sources/{id}/test-connection", s.testConnection)
	h("POST /v1/sources/{id}/actions/{name}", s.runAction)

	h("GET /v1/sources/{id}/documents", s.listDocuments)
	h("POST /v1/sources/{id}/documents", s.createDocument)
	h("GET /v1/sources/{id}/documents/{doc_id}", s.getDocument)
	h("PUT /v1/sources/{id}/documents/{doc_id}", s.updateDocument)
	h("DELETE /v1/sources/{id}/documents/{doc_id}", s.deleteDocument)
	h("GET /v1/sources/{id}/documents/{doc_id}/content", s.getContent)
	h("POST /v1/sources/{id}/documents/{doc_id}/status", s.setDocumentStatus)
	h("POST /v1/sources/{id}/documents/{doc_id}/sync", s.syncDocument)
	h("POST /v1/sources/{id}/documents/{doc_id}/stop", s.stopDocument)

	h("GET /v1/runs", s.listRuns)
	h("GET /v1/runs/{id}", s.getRun)
	h("POST /v1/runs/{id}/cancel", s.cancelRun)
	h("POST /v1/runs/{id}/retry", s.retryRun)
	h("GET /v1/runs/{id}/errors", s.runErrors)
	h("GET /v1/runs/{id}/events", s.runEvents)
	h("GET /v1/events", s.allEvents)

	h("GET /v1/admin/log-level", s.getLogLevel)
	h("PUT /v1/admin/log-level", s.putLogLevel)

	h("GET /v1/connectors", s.listConnectors)
	h("GET /v1/workers", s.listWorkers)
}

// Routes returns the pattern of every route ("GET /v1/sources/{id}"), in
// the order they are registered.
func (s *Server) Routes() []string { return slices.Clone(s.patterns) }

// ServeHTTP serves the API: unknown routes and methods answer in the JSON
// error shape, and a panic is a 500, never a dropped connection.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panicked", zap.Any("panic", p), zap.String("path", r.URL.Path))
			writeProblem(sw, http.StatusInternalServerError, "internal", "Internal error")
		}
		s.log.Debug("http", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", sw.status), zap.Duration("took", time.Since(start)))
	}()
	_, pattern := s.mux.Handler(r)
	if s.tokens != nil && (r.URL.Path == "/v1" || strings.HasPrefix(r.URL.Path, "/v1/")) && !s.authorize(sw, r, pattern) {
		return
	}
	if pattern == "" {
		// No route: let the mux decide between 404 and 405, answer in JSON.
		rec := httptest.NewRecorder()
		s.mux.ServeHTTP(rec, r)
		if allow := rec.Header().Get("Allow"); allow != "" {
			sw.Header().Set("Allow", allow)
		}
		if rec.Code == http.StatusMethodNotAllowed {
			writeProblem(sw, rec.Code, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
			return
		}
		writeProblem(sw, http.StatusNotFound, "not_found", "No route "+r.URL.Path)
		return
	}
	s.mux.ServeHTTP(sw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": version.Version, "protocol": version.Protocol})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	nc := s.m.Conn()
	natsInfo := map[string]any{"connected": nc.IsConnected(), "status": nc.Status().String(), "url": s.m.ClientURL()}
	if rtt, err := nc.RTT(); err == nil {
		natsInfo["rtt_ms"] = float64(rtt.Microseconds()) / 1000
	}
	jsInfo := map[string]any{"ok": false}
	status, code := "ok", http.StatusOK
	if ai, err := s.m.JetStream().AccountInfo(ctx); err != nil {
		jsInfo["error"] = err.Error()
		status, code = "unavailable", http.StatusServiceUnavailable
	} else {
		jsInfo["ok"] = true
		jsInfo["streams"] = ai.Streams
		jsInfo["consumers"] = ai.Consumers
		jsInfo["storage_bytes"] = ai.Store
		jsInfo["memory_bytes"] = ai.Memory
		jsInfo["domain"] = ai.Domain
	}
	if !nc.IsConnected() {
		status, code = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "version": version.Version, "nats": natsInfo, "jetstream": jsInfo})
}

// Page is the shape of every list: {"items":[...],"total":N,"page":P,"size":S}.
type Page[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
	Page  int `json:"page"`
	Size  int `json:"size"`
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// paging reads page and size; it writes a 422 and returns false when they
// are not positive integers.
func paging(w http.ResponseWriter, r *http.Request) (page, size int, ok bool) {
	page, size = 1, defaultPageSize
	var details []manager.Detail
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			details = append(details, manager.Detail{Loc: []any{"query", "page"}, Msg: "Input should be an integer greater than or equal to 1", Type: "greater_than_equal"})
		}
		page = n
	}
	if v := q.Get("size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			details = append(details, manager.Detail{Loc: []any{"query", "size"}, Msg: "Input should be an integer from 1 to " + strconv.Itoa(maxPageSize), Type: "range"})
		}
		size = n
	}
	if len(details) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: details})
		return 0, 0, false
	}
	return page, size, true
}

func paginate[T any](items []T, page, size int) Page[T] {
	p := Page[T]{Items: []T{}, Total: len(items), Page: page, Size: size}
	if page-1 > len(items)/size { // also keeps (page-1)*size from overflowing
		return p
	}
	start := (page - 1) * size
	if start >= len(items) {
		return p
	}
	end := min(start+size, len(items))
	p.Items = items[start:end]
	return p
}

// Source is a source as the API shows it: never its credentials.
type Source struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	Connector      string          `json:"connector"`
	Config         json.RawMessage `json:"config"`
	HasCredentials bool            `json:"has_credentials"`
	LastRunID      string          `json:"last_run_id,omitempty"`
	Schedule       state.Schedule  `json:"schedule"`
	// NextRunAt is when the scheduler syncs the source next.
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
	// Status is "active", "paused" or "degraded" (failing: see LastError).
	Status              string    `json:"status"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	LastError           string    `json:"last_error,omitempty"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
}

func sourceView(s *state.Source) Source {
	return Source{ID: s.ID, Name: s.Name, Connector: s.Connector, Config: s.Config,
		HasCredentials: s.HasCredentials, LastRunID: s.LastRunID, Schedule: s.Schedule, NextRunAt: s.NextRunAt,
		Status: sourceStatus(s), ConsecutiveFailures: s.ConsecutiveFailures, LastError: s.LastError,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

func sourceStatus(s *state.Source) string {
	switch {
	case s.Schedule.Paused:
		return "paused"
	case s.Degraded:
		return "degraded"
	}
	return "active"
}

// Run is a run as the API shows it.
type Run struct {
	ID        string          `json:"id"`
	SourceID  string          `json:"source_id"`
	Connector string          `json:"connector"`
	Mode      events.SyncMode `json:"mode"`
	Status    state.RunStatus `json:"status"`
	Trigger   string          `json:"trigger"`
	Document  string          `json:"document,omitempty"`
	Attempt   int             `json:"attempt"`
	WorkerID  string          `json:"worker_id,omitempty"`
	state.Counters
	Error           string     `json:"error,omitempty"`
	CancelRequested bool       `json:"cancel_requested"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	UpdatedAt       time.Time  `json:"updated_at"`
	// QueueReason says why a queued run waits (run limits).
	QueueReason string          `json:"queue_reason,omitempty"`
	RetryOf     string          `json:"retry_of,omitempty"`
	Continues   []string        `json:"continues,omitempty"`
	Attempts    []state.Attempt `json:"attempts"`
	// Progress is computed when the run is read; absent before it starts.
	Progress *Progress `json:"progress,omitempty"`
}

// Progress is how far a run got and how fast.
type Progress struct {
	// ElapsedSeconds runs from the start to the end (or now).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// RatePerSecond is items scanned per second over that time.
	RatePerSecond float64 `json:"rate_per_second"`
	// Total is what the connector expects to scan, when it said.
	Total uint64 `json:"total,omitempty"`
	// Percent and ETASeconds need a total; the ETA only while running.
	Percent    *float64 `json:"percent,omitempty"`
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
}

func runView(r *state.Run) Run {
	attempts := r.Attempts
	if attempts == nil {
		attempts = []state.Attempt{}
	}
	return Run{ID: r.ID, SourceID: r.SourceID, Connector: r.Connector, Mode: r.Mode, Status: r.Status,
		Trigger: r.Trigger, Document: r.Document, Attempt: r.Attempt, WorkerID: r.WorkerID, Counters: r.Counters, Error: r.Error,
		CancelRequested: r.CancelRequested, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt,
		FinishedAt: r.FinishedAt, UpdatedAt: r.UpdatedAt, QueueReason: r.QueueReason, RetryOf: r.RetryOf,
		Continues: r.Continues, Attempts: attempts, Progress: progressOf(r, time.Now())}
}

func progressOf(r *state.Run, now time.Time) *Progress {
	if r.StartedAt == nil {
		return nil
	}
	end := now
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	elapsed := max(end.Sub(*r.StartedAt).Seconds(), 0)
	p := &Progress{ElapsedSeconds: round2(elapsed), Total: r.Total}
	if elapsed > 0 {
		p.RatePerSecond = round2(float64(r.DocumentsScanned) / elapsed)
	}
	if r.Total > 0 {
		pct := round2(min(100, 100*float64(r.DocumentsScanned)/float64(r.Total)))
		p.Percent = &pct
		if r.Status == state.RunRunning && p.RatePerSecond > 0 && r.Total > r.DocumentsScanned {
			eta := round2(float64(r.Total-r.DocumentsScanned) / (float64(r.DocumentsScanned) / elapsed))
			p.ETASeconds = &eta
		}
	}
	return p
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
