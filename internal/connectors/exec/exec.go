// Package exec runs connectors as child processes: any program, in any
// language, that speaks the newline-delimited JSON protocol of
// docs/exec-protocol.md over its stdin and stdout.
//
// Operators declare exec connectors in a JSON file (the workers' and the
// manager's --exec-connectors flag) that Load reads; each declaration is a
// Spec, and becomes a Connector whose manifest comes from the Spec. Every
// sync starts one child process: the worker writes one request line to its
// stdin and turns each line of its stdout into a SyncContext call, in order.
//
// Cancellation closes the child's stdin and sends SIGTERM to its process
// group, then SIGKILL once the grace period has passed. A child that breaks
// the protocol, or exits before done or fail, or with a non-zero status,
// fails the run with an error that quotes the last lines of its stderr.
package exec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Defaults of a Spec's optional fields, and the bounds they must keep.
const (
	DefaultGrace        = 5 * time.Second
	MaxGrace            = 5 * time.Minute
	DefaultMaxLineBytes = 16 << 20
	MinMaxLineBytes     = 4 << 10
	MaxMaxLineBytes     = 256 << 20
)

// stderrLines and stderrLineBytes bound what an error quotes of stderr.
const (
	stderrLines     = 20
	stderrLineBytes = 512
)

// baseEnv lists the variables every child gets from the worker's
// environment, when set. Nothing else is inherited unless a Spec names it in
// PassEnv: the worker's environment may hold secrets (the manager's
// TRIBUTARY_SECRET_KEY) that no connector should see.
var baseEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// Spec declares one exec connector.
type Spec struct {
	// Name, Version, Description, SyncModes and ConfigSchema make the
	// connector's manifest (see connector.Manifest).
	Name         string               `json:"name"`
	Version      string               `json:"version"`
	Description  string               `json:"description,omitempty"`
	SyncModes    []connector.SyncMode `json:"sync_modes,omitempty"`
	ConfigSchema json.RawMessage      `json:"config_schema,omitempty"`

	// Command is the program to run: a path, or a name looked up in PATH.
	// Load resolves a relative path containing a slash against the
	// directory of the file.
	Command string `json:"command"`
	// Args are the program's arguments.
	Args []string `json:"args,omitempty"`
	// Env sets variables in the child's environment.
	Env map[string]string `json:"env,omitempty"`
	// PassEnv names variables of the worker's environment the child gets
	// too. PATH, HOME, LANG, LC_ALL, TZ and TMPDIR always pass; nothing
	// else does unless named here.
	PassEnv []string `json:"pass_env,omitempty"`
	// Dir is the child's working directory; Load defaults it to the
	// directory of the file, New to the worker's.
	Dir string `json:"dir,omitempty"`
	// Grace is how long a child has to exit after SIGTERM before SIGKILL,
	// and to exit after done or fail (default 5s).
	Grace Duration `json:"grace,omitempty"`
	// MaxLineBytes bounds one line of the child's stdout (default 16 MiB);
	// a longer line fails the run.
	MaxLineBytes int `json:"max_line_bytes,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("5s", "1m30s").
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// File is the format of an --exec-connectors file.
type File struct {
	Connectors []Spec `json:"connectors"`
}

// Load reads a JSON file of exec connector declarations (see File).
// Unknown fields are errors, so that a typo does not go unnoticed. A
// relative command path with a slash, and a relative or empty Dir, are
// taken relative to the file's directory.
func Load(path string) ([]*Connector, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("exec connectors: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("exec connectors %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("exec connectors %s: data after the JSON object", path)
	}
	if len(f.Connectors) == 0 {
		return nil, fmt.Errorf("exec connectors %s: \"connectors\" lists none", path)
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("exec connectors %s: %w", path, err)
	}
	seen := map[string]bool{}
	out := make([]*Connector, 0, len(f.Connectors))
	for i, s := range f.Connectors {
		if strings.Contains(s.Command, "/") && !filepath.IsAbs(s.Command) {
			s.Command = filepath.Join(base, s.Command)
		}
		switch {
		case s.Dir == "":
			s.Dir = base
		case !filepath.IsAbs(s.Dir):
			s.Dir = filepath.Join(base, s.Dir)
		}
		c, err := New(s)
		if err != nil {
			return nil, fmt.Errorf("exec connectors %s: connectors[%d]: %w", path, i, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("exec connectors %s: connector %q declared twice", path, s.Name)
		}
		seen[s.Name] = true
		out = append(out, c)
	}
	return out, nil
}

// Connector is an exec connector: it implements connector.Connector by
// running its Spec's command once per sync. It is safe for concurrent use.
type Connector struct {
	spec     Spec
	path     string // Command, resolved
	manifest connector.Manifest
}

var _ connector.Connector = (*Connector)(nil)

// New checks a Spec, applies its defaults and returns its connector. The
// command must exist and be executable now.
func New(s Spec) (*Connector, error) {
	m := connector.Manifest{
		Name: s.Name, Version: s.Version, Description: s.Description,
		SyncModes: s.SyncModes, ConfigSchema: s.ConfigSchema,
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := compileSchema(s.Name, s.ConfigSchema); err != nil {
		return nil, err
	}
	if s.Command == "" {
		return nil, fmt.Errorf("connector %s: command is required", s.Name)
	}
	path, err := osexec.LookPath(s.Command)
	if err != nil && !errors.Is(err, osexec.ErrDot) {
		return nil, fmt.Errorf("connector %s: command: %w", s.Name, err)
	}
	if errors.Is(err, osexec.ErrDot) {
		// Found in the current directory through a relative PATH entry:
		// refuse, as os/exec does, rather than run whatever is there.
		return nil, fmt.Errorf("connector %s: command %q resolves to the current directory through PATH; give a path", s.Name, s.Command)
	}
	if s.Dir != "" {
		if st, err := os.Stat(s.Dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("connector %s: dir %q is not a directory", s.Name, s.Dir)
		}
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("connector %s: env name %q is invalid", s.Name, k)
		}
	}
	for _, k := range s.PassEnv {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("connector %s: pass_env name %q is invalid", s.Name, k)
		}
	}
	switch {
	case s.Grace == 0:
		s.Grace = Duration(DefaultGrace)
	case s.Grace < 0 || time.Duration(s.Grace) > MaxGrace:
		return nil, fmt.Errorf("connector %s: grace %s must be within (0, %s]", s.Name, time.Duration(s.Grace), MaxGrace)
	}
	switch {
	case s.MaxLineBytes == 0:
		s.MaxLineBytes = DefaultMaxLineBytes
	case s.MaxLineBytes < MinMaxLineBytes || s.MaxLineBytes > MaxMaxLineBytes:
		return nil, fmt.Errorf("connector %s: max_line_bytes %d must be within [%d, %d]", s.Name, s.MaxLineBytes, MinMaxLineBytes, MaxMaxLineBytes)
	}
	s.Args = append([]string(nil), s.Args...)
	return &Connector{spec: s, path: path, manifest: m}, nil
}

// compileSchema checks that a declared config schema compiles, as the
// manager will compile it, so that a mistake in the file stops the worker at
// start rather than every source creation later.
func compileSchema(name string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("connector %s: config schema: %w", name, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "tributary://connectors/" + name + "/config.json"
	if err := c.AddResource(url, doc); err != nil {
		return fmt.Errorf("connector %s: config schema: %w", name, err)
	}
	if _, err := c.Compile(url); err != nil {
		return fmt.Errorf("connector %s: config schema: %w", name, err)
	}
	return nil
}

// Manifest implements connector.Connector.
func (c *Connector) Manifest() connector.Manifest { return c.manifest }

// Spec returns the connector's declaration with its defaults applied.
func (c *Connector) Spec() Spec { return c.spec }

// env is the child's environment.
func (c *Connector) env() []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range append(append([]string(nil), baseEnv...), c.spec.PassEnv...) {
		if v, ok := os.LookupEnv(k); ok && !seen[k] {
			if _, over := c.spec.Env[k]; !over {
				out = append(out, k+"="+v)
			}
			seen[k] = true
		}
	}
	keys := make([]string, 0, len(c.spec.Env))
	for k := range c.spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+c.spec.Env[k])
	}
	return out
}
