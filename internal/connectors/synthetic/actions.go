package synthetic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// MaxSleep bounds the sleep action.
const MaxSleep = 10 * time.Minute

var actions = []connector.ActionDefinition{
	{
		Name:        "echo",
		Description: "Return the params as given, with the source's document count",
		Parameters: []connector.ActionParameter{
			{Name: "message", Type: "string", Required: true, Description: "Any text."},
			{Name: "times", Type: "integer", Description: "Any integer."},
			{Name: "ratio", Type: "number", Description: "Any number."},
			{Name: "loud", Type: "boolean", Description: "Any boolean."},
			{Name: "data", Type: "object", Description: "Any object."},
			{Name: "tags", Type: "array", Description: "Any list."},
		},
	},
	{
		Name:        "sleep",
		Description: "Wait, then return; cancelled when the request times out",
		Parameters: []connector.ActionParameter{
			{Name: "duration", Type: "string", Required: true, Description: "How long, a Go duration such as 2s; at most 10m."},
		},
	},
	{
		Name:        "fail",
		Description: "Fail with the given message",
		Parameters: []connector.ActionParameter{
			{Name: "message", Type: "string", Description: `The error message; default "synthetic failure".`},
		},
	},
}

// EchoResult is the result of the echo action.
type EchoResult struct {
	Params         json.RawMessage `json:"params"`
	SourceID       string          `json:"source_id"`
	Count          int             `json:"count"`
	HasCredentials bool            `json:"has_credentials"`
}

// ExecuteAction implements connector.ActionExecutor.
func (c *Connector) ExecuteAction(ctx context.Context, req *connector.ActionRequest) (any, error) {
	p, err := parse(&connector.SyncRequest{Config: req.Config})
	if err != nil {
		return nil, err
	}
	switch req.Action {
	case "echo":
		params := req.Params
		if len(params) == 0 {
			params = json.RawMessage("{}")
		}
		var creds map[string]any
		has, err := req.DecodeCredentials(&creds)
		if err != nil {
			return nil, err
		}
		return EchoResult{Params: params, SourceID: req.SourceID, Count: p.cfg.Count, HasCredentials: has}, nil
	case "sleep":
		var in struct {
			Duration string `json:"duration"`
		}
		if err := req.DecodeParams(&in); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(in.Duration)
		if err != nil || d < 0 || d > MaxSleep {
			return nil, fmt.Errorf("duration %q is not a duration from 0 to %s", in.Duration, MaxSleep)
		}
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		return map[string]string{"slept": d.String()}, nil
	case "fail":
		var in struct {
			Message string `json:"message"`
		}
		if err := req.DecodeParams(&in); err != nil {
			return nil, err
		}
		if in.Message == "" {
			in.Message = "synthetic failure"
		}
		return nil, errors.New(in.Message)
	}
	return nil, fmt.Errorf("unknown action %q", req.Action)
}

// TestConnection implements connector.ConnectionTester: there is nothing to
// connect to, so it passes when the config is usable.
func (c *Connector) TestConnection(_ context.Context, req *connector.ActionRequest) error {
	_, err := parse(&connector.SyncRequest{Config: req.Config})
	return err
}
