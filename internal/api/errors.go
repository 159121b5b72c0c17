package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/manager"
)

// Problem is the body of every error but 422: {"code":"not_found","message":"..."}.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RunID names the run a conflict is about.
	RunID string `json:"run_id,omitempty"`
}

// ValidationProblem is the body of a 422.
type ValidationProblem struct {
	Detail []manager.Detail `json:"detail"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func writeProblem(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Problem{Code: code, Message: msg})
}

// writeError maps an error from the manager to its status and shape.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		ve *manager.ValidationError
		nf *manager.NotFoundError
		ce *manager.ConflictError
		te *manager.TimeoutError
	)
	switch {
	case errors.As(err, &ve):
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: ve.Details})
	case errors.As(err, &nf):
		code := nf.Code
		if code == "" {
			code = "not_found"
		}
		writeProblem(w, http.StatusNotFound, code, capitalize(nf.Error()))
	case errors.As(err, &ce):
		writeJSON(w, http.StatusConflict, Problem{Code: ce.Code, Message: ce.Message, RunID: ce.RunID})
	case errors.As(err, &te):
		writeProblem(w, http.StatusGatewayTimeout, "timeout", te.Message)
	case errors.Is(err, manager.ErrUnavailable):
		s.log.Warn("request failed: bus unavailable", zap.String("path", r.URL.Path), zap.Error(err))
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", "The state store is unavailable; retry shortly")
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		writeProblem(w, http.StatusServiceUnavailable, "cancelled", "The request was cancelled")
	default:
		s.log.Error("request failed", zap.String("path", r.URL.Path), zap.Error(err))
		writeProblem(w, http.StatusInternalServerError, "internal", "Internal error")
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// decodeBody decodes a JSON object body into v. Malformed JSON is a 400;
// unknown fields and wrong types are a 422. It reports whether the caller
// should go on; on false the response is written.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	return decodeBodyLimit(w, r, v, allowEmpty, maxBody)
}

// decodeBodyLimit is decodeBody with a body limit of its own.
func decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool, limit int64) bool {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON object")
	} else if err == nil {
		var extra json.RawMessage
		if e := dec.Decode(&extra); e == nil {
			err = errors.New("unexpected data after the JSON object")
		} else if errors.As(e, new(*http.MaxBytesError)) {
			err = e // only whitespace follows, but too much of it
		}
	}
	if err == nil {
		return true
	}
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.Is(err, errEOF) && allowEmpty:
		return true
	case errors.Is(err, errEOF):
		writeProblem(w, http.StatusBadRequest, "bad_request", "Request body is required")
	case errors.As(err, &mbe):
		writeProblem(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("Request body is larger than %d bytes", limit))
	case errors.As(err, &syn):
		writeProblem(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("Malformed JSON at byte %d: %v", syn.Offset, err))
	case errors.As(err, &typ):
		loc := []any{"body"}
		if typ.Field != "" {
			for _, p := range strings.Split(typ.Field, ".") {
				loc = append(loc, p)
			}
		}
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
			Loc: loc, Msg: fmt.Sprintf("Input should be a valid %s", jsonKind(typ.Type.Kind().String())), Type: jsonKind(typ.Type.Kind().String()) + "_type",
		}}})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
			Loc: []any{"body", f}, Msg: "Extra inputs are not permitted", Type: "extra_forbidden",
		}}})
	default:
		writeProblem(w, http.StatusBadRequest, "bad_request", "Malformed JSON: "+err.Error())
	}
	return false
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "bool"
	case "map", "struct":
		return "dict"
	case "slice", "array":
		return "list"
	case "int", "int64", "int32", "uint", "uint64", "uint32", "float64", "float32":
		return "number"
	}
	return k
}
