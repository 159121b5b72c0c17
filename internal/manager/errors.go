package manager

import (
	"errors"
	"fmt"
	"strings"
)

// Detail is one validation failure, in the 422 shape of the API:
// {"loc":["body","config","root"],"msg":"Field required","type":"missing"}.
type Detail struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

// ValidationError is returned when a request fails validation; the API
// answers 422 with its details.
type ValidationError struct {
	Details []Detail
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Details))
	for _, d := range e.Details {
		parts = append(parts, fmt.Sprintf("%v: %s", d.Loc, d.Msg))
	}
	return "validation failed: " + strings.Join(parts, "; ")
}

func invalid(typ, msg string, loc ...any) *ValidationError {
	return &ValidationError{Details: []Detail{{Loc: loc, Msg: msg, Type: typ}}}
}

// NotFoundError is returned for an unknown id; the API answers 404 with
// code Code, or not_found when it is empty.
type NotFoundError struct {
	Kind string
	ID   string
	Code string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %s does not exist", e.Kind, e.ID) }

// ConflictError is returned when the request conflicts with the current
// state; the API answers 409 with its code.
type ConflictError struct {
	Code    string
	Message string
	// RunID names the run in the way, when there is one.
	RunID string
}

func (e *ConflictError) Error() string { return e.Message }

// Conflict codes.
const (
	CodeRunActive    = "run_active"
	CodeRunNotActive = "run_not_active"
	// CodeDocumentExists: a document with that external id exists.
	CodeDocumentExists = "document_exists"
	// CodeNotSupported: the source's connector cannot do what was asked.
	CodeNotSupported = "not_supported"
	// CodeStale: a status report on a version the document has left.
	CodeStale = "stale"
	// CodeCredentialsUnreadable: a source's stored credentials cannot be
	// opened with this manager's secret key.
	CodeCredentialsUnreadable = "credentials_unreadable"
	// CodeNoWorker: no live worker hosts what the request needs.
	CodeNoWorker = "no_worker"
)

// CodeActionNotFound is the NotFoundError code of an action the source's
// connector does not declare.
const CodeActionNotFound = "action_not_found"

// TimeoutError is returned when a worker did not answer in time; the API
// answers 504 with code timeout.
type TimeoutError struct {
	Message string
}

func (e *TimeoutError) Error() string { return e.Message }

// ErrUnavailable wraps failures of the bus; the API answers 503.
var ErrUnavailable = errors.New("state store unavailable")

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
