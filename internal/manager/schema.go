package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemas compiles and caches connector config schemas.
type schemas struct {
	mu    sync.Mutex
	cache map[string]*compiled // by connector name
}

type compiled struct {
	raw    []byte
	schema *jsonschema.Schema
}

func newSchemas() *schemas { return &schemas{cache: map[string]*compiled{}} }

// compile returns the compiled schema for raw, reusing the cached one when
// the connector's schema is unchanged.
func (s *schemas) compile(connector string, raw json.RawMessage) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[connector]; ok && bytes.Equal(c.raw, raw) {
		return c.schema, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("connector %s: config schema: %w", connector, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "tributary://connectors/" + connector + "/config.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("connector %s: config schema: %w", connector, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("connector %s: config schema: %w", connector, err)
	}
	s.cache[connector] = &compiled{raw: append([]byte(nil), raw...), schema: sch}
	return sch, nil
}

var printer = message.NewPrinter(language.English)

// validateJSON validates the instance doc against sch and returns one Detail
// per violation, located under prefix.
func validateJSON(sch *jsonschema.Schema, doc []byte, prefix ...any) []Detail {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return []Detail{{Loc: prefix, Msg: "Input should be valid JSON", Type: "json_invalid"}}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []Detail{{Loc: prefix, Msg: err.Error(), Type: "value_error"}}
	}
	var out []Detail
	collect(verr, prefix, &out)
	sort.SliceStable(out, func(i, j int) bool { return fmt.Sprint(out[i].Loc) < fmt.Sprint(out[j].Loc) })
	return out
}

func collect(e *jsonschema.ValidationError, prefix []any, out *[]Detail) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collect(c, prefix, out)
		}
		return
	}
	loc := append(append([]any{}, prefix...), toAny(e.InstanceLocation)...)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			*out = append(*out, Detail{Loc: append(append([]any{}, loc...), m), Msg: "Field required", Type: "missing"})
		}
		return
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			*out = append(*out, Detail{Loc: append(append([]any{}, loc...), p), Msg: "Extra inputs are not permitted", Type: "extra_forbidden"})
		}
		return
	}
	typ := "value_error"
	if kp := e.ErrorKind.KeywordPath(); len(kp) > 0 {
		typ = kp[len(kp)-1]
	}
	*out = append(*out, Detail{Loc: loc, Msg: e.ErrorKind.LocalizedString(printer), Type: typ})
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
