package connector_test

import (
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/pkg/connector"
)

func TestManifestValidateActions(t *testing.T) {
	base := connector.Manifest{Name: "n", Version: "1.0.0"}
	for name, c := range map[string]struct {
		actions []connector.ActionDefinition
		err     string
	}{
		"ok": {actions: []connector.ActionDefinition{{Name: "purge-cache", Parameters: []connector.ActionParameter{
			{Name: "a", Type: "string"}, {Name: "b", Type: "integer"}, {Name: "c", Type: "number"}, {Name: "d", Type: "boolean"},
			{Name: "e", Type: "object"}, {Name: "f", Type: "array"}, {Name: "g"},
		}}}},
		"duplicate action": {actions: []connector.ActionDefinition{{Name: "x"}, {Name: "x"}}, err: "unique"},
		"not a token":      {actions: []connector.ActionDefinition{{Name: "a.b"}}, err: "letters, digits"},
		"duplicate param":  {actions: []connector.ActionDefinition{{Name: "x", Parameters: []connector.ActionParameter{{Name: "p"}, {Name: "p"}}}}, err: "parameter names"},
		"empty param":      {actions: []connector.ActionDefinition{{Name: "x", Parameters: []connector.ActionParameter{{Name: ""}}}}, err: "parameter names"},
		"unknown type":     {actions: []connector.ActionDefinition{{Name: "x", Parameters: []connector.ActionParameter{{Name: "p", Type: "int"}}}}, err: `type "int"`},
	} {
		m := base
		m.Actions = c.actions
		err := m.Validate()
		if (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %v, want %q", name, err, c.err)
		}
	}
	m := base
	m.Actions = []connector.ActionDefinition{{Name: "x"}}
	if _, ok := m.Action("x"); !ok {
		t.Error("Action(x) not found")
	}
	if _, ok := m.Action("y"); ok {
		t.Error("Action(y) found")
	}
}

func TestActionRequestDecode(t *testing.T) {
	req := &connector.ActionRequest{Params: []byte(`{"n":2}`), Credentials: []byte(`null`)}
	var p struct{ N int }
	if err := req.DecodeParams(&p); err != nil || p.N != 2 {
		t.Fatalf("params: %+v %v", p, err)
	}
	var creds map[string]string
	if has, err := req.DecodeCredentials(&creds); has || err != nil {
		t.Fatalf("null credentials: %v %v", has, err)
	}
	if err := (&connector.ActionRequest{}).DecodeParams(&p); err != nil || p.N != 2 {
		t.Fatalf("no params: %+v %v", p, err)
	}
}
