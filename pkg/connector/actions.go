package connector

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tributary-sync/tributary/pkg/events"
)

// ActionDefinition declares a custom action: something an operator runs on
// one source with POST /v1/sources/{id}/actions/{name}, answered by the
// connector's ActionExecutor on a live worker.
type ActionDefinition struct {
	// Name identifies the action within the connector: 1-128 letters,
	// digits, '_' or '-' (it is a NATS subject token).
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Parameters are the action's parameters. The manager checks a request's
	// params against them before the action runs: each required one present,
	// each present one of its type, no other.
	Parameters []ActionParameter `json:"parameters,omitempty"`
}

// ActionParameter declares one parameter of an action.
type ActionParameter struct {
	// Name is the parameter's key in the params object; non-empty and unique
	// within the action.
	Name string `json:"name"`
	// Type is a JSON Schema type: string, integer, number, boolean, object,
	// array. Empty accepts any JSON value.
	Type        string `json:"type"`
	Required    bool   `json:"required,omitempty"`
	Description string `json:"description,omitempty"`
}

// ParameterTypes are the JSON Schema types an ActionParameter may declare.
var ParameterTypes = []string{"string", "integer", "number", "boolean", "object", "array"}

func (a ActionDefinition) validate() error {
	if !events.ValidToken(a.Name) {
		return fmt.Errorf("action name %q must be 1-128 letters, digits, '_' or '-'", a.Name)
	}
	seen := map[string]bool{}
	for _, p := range a.Parameters {
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("action %s: parameter names must be unique and non-empty", a.Name)
		}
		seen[p.Name] = true
		if !validParameterType(p.Type) {
			return fmt.Errorf("action %s: parameter %s: type %q is not one of %v", a.Name, p.Name, p.Type, ParameterTypes)
		}
	}
	return nil
}

func validParameterType(t string) bool {
	if t == "" {
		return true
	}
	for _, v := range ParameterTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Action returns the manifest's action of that name.
func (m Manifest) Action(name string) (ActionDefinition, bool) {
	for _, a := range m.Actions {
		if a.Name == name {
			return a, true
		}
	}
	return ActionDefinition{}, false
}

// ActionExecutor is implemented by connectors that declare actions in their
// manifest; a worker refuses a connector that declares actions without it.
type ActionExecutor interface {
	// ExecuteAction runs the action req.Action with its parameters and the
	// source's configuration and credentials, and returns a JSON-encodable
	// result (nil is the JSON null) that the API hands back to the operator.
	//
	// Params arrive already checked against the action's declared
	// Parameters. An error is the action's failure: its message reaches the
	// operator (422, type action_failed), so it must not contain
	// credentials. A panic is reported the same way; the worker keeps going.
	//
	// Cancellation: ctx ends when the manager stops waiting (its action
	// timeout, 30 s by default) or the worker shuts down; return promptly
	// then. Calls may run concurrently, for the same source or others.
	ExecuteAction(ctx context.Context, req *ActionRequest) (any, error)
}

// ConnectionTester is implemented by connectors that can check a source's
// connection: that its configuration and credentials reach what they
// describe (a folder exists, a server answers, the token is accepted),
// without reading documents. Operators call it with
// POST /v1/sources/{id}/test-connection; a connector without it answers
// 409 not_supported there.
type ConnectionTester interface {
	// TestConnection returns nil when the source's connection works and an
	// error saying what is wrong when it does not; the error's message is
	// shown to the operator as is (not as a server error), so it must not
	// contain credentials. req.Action and req.Params are empty.
	//
	// Cancellation and concurrency are those of ActionExecutor.ExecuteAction.
	TestConnection(ctx context.Context, req *ActionRequest) error
}

// ActionRequest is what an action or a connection test runs with.
type ActionRequest struct {
	// SourceID is the source the action runs on.
	SourceID string
	// Action is the action's name; empty for a connection test.
	Action string
	// Params is the JSON object of parameters, valid against the action's
	// declared Parameters, or nil when none were given.
	Params json.RawMessage
	// Config is the source configuration, valid against the manifest's
	// ConfigSchema.
	Config json.RawMessage
	// Credentials are the source's credentials, or nil.
	Credentials json.RawMessage
}

// DecodeParams unmarshals the parameters into v; no parameters leave v as
// it is.
func (r *ActionRequest) DecodeParams(v any) error {
	if len(r.Params) == 0 || string(r.Params) == "null" {
		return nil
	}
	if err := json.Unmarshal(r.Params, v); err != nil {
		return fmt.Errorf("decode params: %w", err)
	}
	return nil
}

// DecodeConfig unmarshals the source configuration into v.
func (r *ActionRequest) DecodeConfig(v any) error {
	if len(r.Config) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Config, v); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	return nil
}

// DecodeCredentials unmarshals the source's credentials into v and reports
// whether there were any.
func (r *ActionRequest) DecodeCredentials(v any) (bool, error) {
	if len(r.Credentials) == 0 || string(r.Credentials) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(r.Credentials, v); err != nil {
		return false, fmt.Errorf("decode credentials: %w", err)
	}
	return true, nil
}
