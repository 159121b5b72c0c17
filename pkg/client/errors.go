package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Error is a non-2xx answer of the API. Branch on it with errors.As:
//
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == client.CodeRunActive {
//		// wait for apiErr.RunID to finish
//	}
//
// Every error but a 422 carries Code and Message; a 422 carries Detail
// (one entry per problem found) and the Code CodeValidation. An answer
// that is not in either documented shape (a proxy's HTML page, say) keeps
// its status, an empty Code and the start of its body in Message.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the machine-readable reason, one of the Code constants.
	Code string
	// Message is the server's explanation for people.
	Message string
	// RunID names the run a conflict (409) is about, when there is one.
	RunID string
	// Detail lists the validation problems of a 422.
	Detail []Detail
}

// Detail is one validation problem of a 422 answer.
type Detail struct {
	// Loc is the path to the bad value: "body" or "query" (or "header")
	// first, then field names and, in lists, indexes (as float64, the way
	// encoding/json decodes numbers).
	Loc []any `json:"loc"`
	// Msg says what is wrong.
	Msg string `json:"msg"`
	// Type is a stable machine name: missing, extra_forbidden, enum,
	// string_type, range, a JSON Schema keyword, ... (see docs/api.md).
	Type string `json:"type"`
}

// Field is Loc joined with dots, such as "body.config.count".
func (d Detail) Field() string {
	parts := make([]string, len(d.Loc))
	for i, l := range d.Loc {
		parts[i] = fmt.Sprint(l)
	}
	return strings.Join(parts, ".")
}

// Error codes of the API (docs/api.md, "Errors").
const (
	CodeBadRequest            = "bad_request"            // 400: empty or malformed body
	CodeUnauthorized          = "unauthorized"           // 401: no valid bearer token
	CodeForbidden             = "forbidden"              // 403: the token's role is too low
	CodeNotFound              = "not_found"              // 404: unknown source, run, document or route
	CodeMethodNotAllowed      = "method_not_allowed"     // 405
	CodeRunActive             = "run_active"             // 409: the source has a queued or running run (RunID)
	CodeRunNotActive          = "run_not_active"         // 409: nothing to cancel or stop
	CodeNotRetryable          = "not_retryable"          // 409: only failed and cancelled runs can be retried
	CodeNoWorker              = "no_worker"              // 409: no live worker hosts the connector
	CodeActionNotFound        = "action_not_found"       // 404: the connector declares no such action
	CodeTimeout               = "timeout"                // 504: the worker did not answer in time
	CodeDocumentExists        = "document_exists"        // 409: the source has a document with that external id
	CodeCredentialsUnreadable = "credentials_unreadable" // 409: credentials sealed under another key
	CodeStale                 = "stale"                  // 409: a status report on a version the document has left
	CodeNotSupported          = "not_supported"          // 409: the connector or server cannot do it
	CodeTooLarge              = "too_large"              // 413: request body over the limit
	CodeInternal              = "internal"               // 500
	CodeUnavailable           = "unavailable"            // 503: NATS/JetStream did not answer
	CodeCancelled             = "cancelled"              // 503: the request went away while served

	// CodeValidation is set by the client on a 422, whose body has no
	// code, only Detail.
	CodeValidation = "validation_error"
)

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tributary: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	for i, d := range e.Detail {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.Field() + ": " + d.Msg)
	}
	return b.String()
}

// HasCode reports whether err is an *Error with the given code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// decodeError reads a non-2xx answer into an *Error.
func decodeError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		RunID   string          `json:"run_id"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(b, &body) == nil {
		e.Code, e.Message, e.RunID = body.Code, body.Message, body.RunID
		if len(body.Detail) > 0 {
			var ds []Detail
			if json.Unmarshal(body.Detail, &ds) == nil {
				e.Detail = ds
			} else {
				// FastAPI's other shape: "detail" as one string.
				var s string
				if json.Unmarshal(body.Detail, &s) == nil && e.Message == "" {
					e.Message = s
				}
			}
		}
		if e.Code == "" && resp.StatusCode == http.StatusUnprocessableEntity {
			e.Code = CodeValidation
		}
		if e.Code != "" || e.Message != "" || len(e.Detail) > 0 {
			return e
		}
	}
	// Not one of the API's shapes.
	e.Code = ""
	e.Message = http.StatusText(resp.StatusCode)
	if snippet := strings.TrimSpace(string(b)); snippet != "" {
		if len(snippet) > 200 {
			snippet = snippet[:200]
			for !utf8.ValidString(snippet) {
				snippet = snippet[:len(snippet)-1]
			}
			snippet += "…"
		}
		e.Message += ": " + snippet
	}
	return e
}

var errBothCredentials = errors.New("tributary client: UpdateSourceRequest sets both Credentials and RemoveCredentials")
var errBothSchedule = errors.New("tributary client: UpdateSourceRequest sets both Schedule and RemoveSchedule")

// ErrInvalidID is returned, before any request, for an id that is empty,
// "." or "..": the API has no such ids.
var ErrInvalidID = errors.New("tributary client: invalid id")
