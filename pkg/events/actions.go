package events

import (
	"encoding/json"
	"time"
)

// Connector actions and connection tests are NATS requests (core NATS, not
// JetStream) from the manager to the workers hosting the source's connector.
// Each worker serves them as a NATS micro service (ActionServiceName), with
// one endpoint per hosted action and per connector that can test a
// connection, all in one queue group so one worker answers each request.
const (
	// SubjectActionPrefix prefixes action requests:
	// tributary.action.<connector>.<action>.
	SubjectActionPrefix = "tributary.action."
	// SubjectTestConnectionPrefix prefixes connection tests:
	// tributary.test_connection.<connector>.
	SubjectTestConnectionPrefix = "tributary.test_connection."
	// ActionServiceName is the NATS micro service name of every worker
	// (`nats micro ls` lists them).
	ActionServiceName = "tributary-worker"
	// ActionQueueGroup is the queue group of every action and connection
	// test endpoint.
	ActionQueueGroup = "tributary-worker"
)

// ActionSubject is the subject of an action request.
func ActionSubject(connector, action string) string {
	return SubjectActionPrefix + connector + "." + action
}

// ActionSubjectsAll matches every action request.
const ActionSubjectsAll = SubjectActionPrefix + "*.*"

// TestConnectionSubject is the subject of a connection test request.
func TestConnectionSubject(connector string) string {
	return SubjectTestConnectionPrefix + connector
}

// TestConnectionSubjectsAll matches every connection test request.
const TestConnectionSubjectsAll = SubjectTestConnectionPrefix + "*"

// ActionRequest is the body of a request on ActionSubject or
// TestConnectionSubject. It carries the source's credentials in clear: it
// travels only as this one request, and is never logged or stored.
type ActionRequest struct {
	SourceID string `json:"source_id"`
	// Action is the action's name; empty for a connection test.
	Action string `json:"action,omitempty"`
	// Params is the parameters object, already valid against the action's
	// declared parameters; absent when none were given.
	Params json.RawMessage `json:"params,omitempty"`
	// Config is the source configuration.
	Config json.RawMessage `json:"config"`
	// Credentials are the source's credentials; absent when it has none.
	Credentials json.RawMessage `json:"credentials,omitempty"`
	// TimeoutMS is how long the manager waits for the answer, in
	// milliseconds from when the request was sent: the worker gives up (and
	// cancels the action) after it. 0 means no limit of the requester's.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// Timeout is TimeoutMS as a duration.
func (r *ActionRequest) Timeout() time.Duration {
	return time.Duration(r.TimeoutMS) * time.Millisecond
}

// ActionReply is a worker's answer. Exactly one of these holds: Error is
// set (the action or test could not run, or the action failed); the request
// was a connection test and OK says whether the connection works (Message
// says why not); the request was an action and Result is its JSON result.
type ActionReply struct {
	// WorkerID names the worker that answered.
	WorkerID string `json:"worker_id"`
	// Result is the action's result (any JSON; null when it returned nil).
	Result json.RawMessage `json:"result,omitempty"`
	// OK is a connection test's outcome: a failed test is a normal answer.
	OK bool `json:"ok,omitempty"`
	// Message says why a connection test failed.
	Message string `json:"message,omitempty"`
	// Error is set when the request did not produce an answer of the kinds
	// above.
	Error *ActionError `json:"error,omitempty"`
}

// ActionError is the error of an ActionReply. A worker also sets the micro
// error headers (Nats-Service-Error-Code, Nats-Service-Error) on such a
// reply, with the HTTP-like status of ActionErrorStatus, so generic micro
// clients see an error too.
type ActionError struct {
	// Code is one of the ActionError* codes.
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ActionError) Error() string { return e.Code + ": " + e.Message }

// ActionError codes.
const (
	// ActionErrorFailed: the connector returned an error or panicked.
	ActionErrorFailed = "action_failed"
	// ActionErrorTimeout: the request's timeout passed before the connector
	// returned (or before a slot for it was free).
	ActionErrorTimeout = "timeout"
	// ActionErrorStopping: the worker is shutting down and cancelled the
	// action.
	ActionErrorStopping = "worker_stopping"
	// ActionErrorBadRequest: the request did not decode.
	ActionErrorBadRequest = "bad_request"
	// ActionErrorNotFound: the worker does not host that action (or that
	// connector's connection test).
	ActionErrorNotFound = "action_not_found"
)

// ActionErrorStatus is the micro error code (an HTTP status, as a string)
// of an ActionError code.
func ActionErrorStatus(code string) string {
	switch code {
	case ActionErrorFailed:
		return "422"
	case ActionErrorTimeout:
		return "504"
	case ActionErrorStopping:
		return "503"
	case ActionErrorBadRequest:
		return "400"
	case ActionErrorNotFound:
		return "404"
	}
	return "500"
}
