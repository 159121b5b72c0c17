package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// MaxParamsSize bounds an action's params (compact JSON): they travel with
// the source's config and credentials in one NATS message.
const MaxParamsSize = 256 << 10

// actionReplyGrace is how much longer than the timeout it sends the
// manager waits for the worker's own "timeout" answer.
const actionReplyGrace = 500 * time.Millisecond

// ActionResult is what a connector's action answered.
type ActionResult struct {
	Action   string
	WorkerID string
	// Result is the action's JSON result.
	Result   json.RawMessage
	Duration time.Duration
}

// ConnectionTest is the outcome of a connection test: a failed test is an
// outcome (OK false, Message says why), not an error.
type ConnectionTest struct {
	OK       bool
	Message  string
	WorkerID string
	Duration time.Duration
}

// ExecuteAction runs one of the actions the source's connector declares,
// on a live worker hosting it, and returns its result. params is a JSON
// object (nil or null for none), checked against the action's declared
// parameters first: every violation is one detail of a ValidationError.
//
// Errors: NotFoundError for an unknown source, or an action the connector
// does not declare (code action_not_found); ConflictError no_worker when
// no live worker hosts it; TimeoutError when no answer came within
// Config.ActionTimeout; a ValidationError of type action_failed when the
// connector returned an error.
func (m *Manager) ExecuteAction(ctx context.Context, sourceID, action string, params json.RawMessage) (*ActionResult, error) {
	src, man, err := m.actionTarget(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	def, ok := man.Action(action)
	if !ok {
		return nil, &NotFoundError{Kind: "action", ID: action, Code: CodeActionNotFound}
	}
	params, details := validateParams(def, params)
	if len(details) > 0 {
		return nil, &ValidationError{Details: details}
	}
	req := &events.ActionRequest{Action: action, Params: params}
	rep, took, err := m.requestWorker(ctx, src, events.ActionSubject(man.Name, action), req,
		fmt.Sprintf("connector %q with action %q", man.Name, action))
	if err != nil {
		return nil, err
	}
	res := rep.Result
	if len(res) == 0 {
		res = json.RawMessage("null")
	}
	return &ActionResult{Action: action, WorkerID: rep.WorkerID, Result: res, Duration: took}, nil
}

// TestConnection asks a live worker hosting the source's connector to
// check the source's connection. Errors are those of ExecuteAction, and a
// ConflictError not_supported for a connector that cannot test one.
func (m *Manager) TestConnection(ctx context.Context, sourceID string) (*ConnectionTest, error) {
	src, man, err := m.actionTarget(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	if !man.ConnectionTest {
		return nil, &ConflictError{Code: CodeNotSupported, Message: fmt.Sprintf("Connector %q cannot test a connection", man.Name)}
	}
	rep, took, err := m.requestWorker(ctx, src, events.TestConnectionSubject(man.Name), &events.ActionRequest{},
		fmt.Sprintf("connector %q", man.Name))
	if err != nil {
		return nil, err
	}
	return &ConnectionTest{OK: rep.OK, Message: rep.Message, WorkerID: rep.WorkerID, Duration: took}, nil
}

// actionTarget returns the source and its connector's manifest.
func (m *Manager) actionTarget(ctx context.Context, sourceID string) (*state.Source, *connector.Manifest, error) {
	src, err := m.GetSource(ctx, sourceID)
	if err != nil {
		return nil, nil, err
	}
	man, err := m.Connector(ctx, src.Connector)
	var nf *NotFoundError
	if errors.As(err, &nf) {
		return nil, nil, &ConflictError{Code: CodeNoWorker, Message: fmt.Sprintf("Connector %q of this source is not registered by any worker", src.Connector)}
	}
	return src, man, err
}

// requestWorker sends req, completed with the source's config and
// credentials, on subject and returns the worker's answer. what names the
// target in errors.
func (m *Manager) requestWorker(ctx context.Context, src *state.Source, subject string, req *events.ActionRequest, what string) (*events.ActionReply, time.Duration, error) {
	sr, err := m.syncRequestFor(ctx, src)
	if err != nil {
		return nil, 0, err
	}
	timeout := m.cfg.ActionTimeout
	req.SourceID, req.Config, req.Credentials, req.TimeoutMS = src.ID, sr.Config, sr.Credentials, timeout.Milliseconds()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, fmt.Errorf("encode action request: %w", err)
	}
	if limit := m.nc.MaxPayload(); int64(len(body)) > limit {
		return nil, 0, invalid("too_long", fmt.Sprintf("The request (params with the source's config and credentials) is %d bytes, over the %d-byte message limit", len(body), limit), "body", "params")
	}
	log := m.log.With(zap.String("source_id", src.ID), zap.String("subject", subject))
	rctx, cancel := context.WithTimeout(ctx, timeout+actionReplyGrace)
	defer cancel()
	start := time.Now()
	msg, err := m.nc.RequestWithContext(rctx, subject, body)
	took := time.Since(start)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, took, &ConflictError{Code: CodeNoWorker, Message: fmt.Sprintf("No live worker hosts %s", what)}
	case err != nil && ctx.Err() != nil:
		return nil, took, fmt.Errorf("action request: %w", ctx.Err())
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
		log.Warn("action request timed out", zap.Duration("timeout", timeout))
		return nil, took, &TimeoutError{Message: fmt.Sprintf("No answer within %s", timeout)}
	case err != nil:
		return nil, took, unavailable("action request", err)
	}
	var rep events.ActionReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		code := msg.Header.Get(micro.ErrorCodeHeader)
		if code == "" {
			return nil, took, fmt.Errorf("action reply from a worker does not decode: %w", err)
		}
		// A worker that answered with the micro error headers only.
		rep.Error = &events.ActionError{Code: actionErrorCode(code), Message: msg.Header.Get(micro.ErrorHeader)}
	}
	log = log.With(zap.String("worker_id", rep.WorkerID), zap.Duration("took", took))
	if e := rep.Error; e != nil {
		log.Info("action request answered with an error", zap.String("code", e.Code))
		switch e.Code {
		case events.ActionErrorFailed:
			name := req.Action
			if name == "" {
				name = "test_connection"
			}
			return nil, took, invalid("action_failed", e.Message, "action", name)
		case events.ActionErrorTimeout:
			return nil, took, &TimeoutError{Message: fmt.Sprintf("No answer within %s (worker %s %s)", timeout, rep.WorkerID, e.Message)}
		case events.ActionErrorStopping:
			return nil, took, &ConflictError{Code: CodeNoWorker, Message: fmt.Sprintf("Worker %s %s; retry", rep.WorkerID, e.Message)}
		case events.ActionErrorNotFound:
			return nil, took, &NotFoundError{Kind: "action", ID: req.Action, Code: CodeActionNotFound}
		}
		return nil, took, fmt.Errorf("worker %s refused the action request: %w", rep.WorkerID, e)
	}
	log.Info("action request answered")
	return &rep, took, nil
}

// actionErrorCode maps a micro error code (an HTTP status) to an
// ActionError code.
func actionErrorCode(status string) string {
	switch status {
	case "422":
		return events.ActionErrorFailed
	case "504":
		return events.ActionErrorTimeout
	case "404":
		return events.ActionErrorNotFound
	case "503":
		return events.ActionErrorStopping
	}
	return "error_" + status
}

// validateParams checks params against the action's declared parameters
// and returns them compacted (nil when there are none).
func validateParams(def connector.ActionDefinition, params json.RawMessage) (json.RawMessage, []Detail) {
	params = bytes.TrimSpace(params)
	if len(params) == 0 || string(params) == "null" {
		params = nil
	} else if !isObject(params) {
		return nil, []Detail{{Loc: []any{"body", "params"}, Msg: "Input should be a valid dictionary", Type: "dict_type"}}
	}
	if d := sizeDetail("params", params, MaxParamsSize); d != nil {
		return nil, d
	}
	got := map[string]json.RawMessage{}
	if params != nil {
		if err := json.Unmarshal(params, &got); err != nil {
			return nil, []Detail{{Loc: []any{"body", "params"}, Msg: "Input should be a valid dictionary", Type: "dict_type"}}
		}
	}
	var details []Detail
	declared := map[string]bool{}
	for _, p := range def.Parameters {
		declared[p.Name] = true
		v, ok := got[p.Name]
		if !ok {
			if p.Required {
				details = append(details, Detail{Loc: []any{"body", "params", p.Name}, Msg: "Field required", Type: "missing"})
			}
			continue
		}
		if typ, msg := checkParamType(p.Type, v); typ != "" {
			details = append(details, Detail{Loc: []any{"body", "params", p.Name}, Msg: msg, Type: typ})
		}
	}
	extra := make([]string, 0)
	for k := range got {
		if !declared[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		details = append(details, Detail{Loc: []any{"body", "params", k}, Msg: "Extra inputs are not permitted", Type: "extra_forbidden"})
	}
	if len(details) > 0 {
		return nil, details
	}
	if params == nil {
		return nil, nil
	}
	return compact(params), nil
}

// checkParamType returns the 422 type and message when v is not of the
// JSON Schema type typ, or "".
func checkParamType(typ string, v json.RawMessage) (string, string) {
	var first byte
	if len(v) > 0 {
		first = v[0]
	}
	switch typ {
	case "":
		return "", ""
	case "string":
		if first == '"' {
			return "", ""
		}
		return "string_type", "Input should be a valid string"
	case "boolean":
		if first == 't' || first == 'f' {
			return "", ""
		}
		return "bool_type", "Input should be a valid boolean"
	case "object":
		if first == '{' {
			return "", ""
		}
		return "dict_type", "Input should be a valid dictionary"
	case "array":
		if first == '[' {
			return "", ""
		}
		return "list_type", "Input should be a valid list"
	case "number":
		if first == '-' || (first >= '0' && first <= '9') {
			return "", ""
		}
		return "number_type", "Input should be a valid number"
	case "integer":
		if first == '-' || (first >= '0' && first <= '9') {
			if isInteger(string(v)) {
				return "", ""
			}
		}
		return "int_type", "Input should be a valid integer"
	}
	return "type", fmt.Sprintf("The connector declares an unknown type %q", typ)
}

// isInteger reports whether the JSON number n is an integer, as JSON
// Schema counts them (1.0 is one).
func isInteger(n string) bool {
	if _, err := strconv.ParseInt(n, 10, 64); err == nil {
		return true
	}
	f, err := strconv.ParseFloat(n, 64)
	return err == nil && !math.IsInf(f, 0) && f == math.Trunc(f)
}
