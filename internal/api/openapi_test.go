package api_test

// The OpenAPI description (openapi.json) is kept true by three tests:
//
//   - TestOpenAPIRoutes: every route Server.Routes registers is an operation
//     of the spec, and every operation of the spec is a route.
//   - TestOpenAPIConformance: a real manager and worker answer requests that
//     cover every documented response of every operation; each answer's
//     status must be documented for its operation, its required headers
//     present, its media type documented and its JSON body valid against the
//     schema. A documented response no request produced fails the test too,
//     unless openAPIUncovered says why it cannot be produced.
//   - TestOpenAPILint: Redocly's linter (recommended rules, warnings are
//     errors; see redocly.yaml) accepts the spec.
//
// To add a route: register it in Server.routes, describe it in openapi.json
// (operationId, tag, security role, parameters, request body, every response
// with its schema), and add requests for each of its responses to
// TestOpenAPIConformance. docs/api.md ("Adding a route") says the same.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/internal/worker"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

// redoclyCLI is the pinned Redocly CLI that lints the spec.
const redoclyCLI = "@redocly/cli@2.77.0"

const specURL = "https://tributary.invalid/openapi.json"

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// openAPI is the spec loaded for checking answers against it.
type openAPI struct {
	doc map[string]any
	c   *jsonschema.Compiler
	mux *http.ServeMux // the spec's operations, to find the one a request is for

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema
	seen    map[string]bool // "GET /v1/sources/{id} 404"
}

func loadOpenAPI(t *testing.T) *openAPI {
	t.Helper()
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		t.Fatal("openapi.json is not an object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1 schemas are JSON Schema 2020-12
	c.AssertFormat()
	if err := c.AddResource(specURL, doc); err != nil {
		t.Fatal(err)
	}
	s := &openAPI{doc: doc, c: c, mux: http.NewServeMux(), schemas: map[string]*jsonschema.Schema{}, seen: map[string]bool{}}
	for _, op := range s.operations() {
		s.mux.HandleFunc(op, func(http.ResponseWriter, *http.Request) {})
	}
	return s
}

// operations lists the spec's operations as ServeMux patterns
// ("GET /v1/sources/{id}"), sorted.
func (s *openAPI) operations() []string {
	var ops []string
	for path, item := range s.doc["paths"].(map[string]any) {
		for _, m := range httpMethods {
			if _, ok := item.(map[string]any)[m]; ok {
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

// operation returns the operation object of "METHOD /path".
func (s *openAPI) operation(op string) map[string]any {
	method, path, _ := strings.Cut(op, " ")
	return s.doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
}

// ptr escapes a JSON pointer token.
func ptr(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// deref follows an OpenAPI $ref (a local one) and returns the object and its
// JSON pointer.
func (s *openAPI) deref(obj map[string]any, at string) (map[string]any, string) {
	for {
		ref, ok := obj["$ref"].(string)
		if !ok {
			return obj, at
		}
		at = strings.TrimPrefix(ref, "#")
		var cur any = s.doc
		for _, tok := range strings.Split(at, "/")[1:] {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			cur = cur.(map[string]any)[tok]
		}
		obj = cur.(map[string]any)
	}
}

func (s *openAPI) schema(t *testing.T, at string) *jsonschema.Schema {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[at]; ok {
		return sch
	}
	sch, err := s.c.Compile(specURL + "#" + at)
	if err != nil {
		t.Fatalf("compile the schema at %s: %v", at, err)
	}
	s.schemas[at] = sch
	return sch
}

func (s *openAPI) validate(t *testing.T, what, at string, body []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s: body is not JSON: %v: %q", what, err, body)
		return
	}
	if err := s.schema(t, at).Validate(v); err != nil {
		t.Errorf("%s: does not match the schema at %s:\n%v\nbody: %s", what, at, err, body)
	}
}

// answer is one real answer, and the request it answered.
type answer struct {
	method, path string
	reqBody      string
	status       int
	header       http.Header
	body         []byte
}

// check checks an answer against the spec: the request must be one of its
// operations, and the answer one of that operation's responses.
func (s *openAPI) check(t *testing.T, a *answer) {
	t.Helper()
	req := httptest.NewRequest(a.method, a.path, nil)
	_, op := s.mux.Handler(req)
	if op == "" {
		t.Errorf("%s %s: no operation of the spec matches", a.method, a.path)
		return
	}
	opAt := "/paths/" + ptr(strings.SplitN(op, " ", 2)[1]) + "/" + strings.ToLower(strings.SplitN(op, " ", 2)[0])
	what := fmt.Sprintf("%s %s (%s) answered %d", a.method, a.path, op, a.status)
	resps := s.operation(op)["responses"].(map[string]any)
	raw, ok := resps[fmt.Sprint(a.status)].(map[string]any)
	if !ok {
		t.Errorf("%s, which the spec does not document for %s: %s", what, op, a.body)
		return
	}
	s.mu.Lock()
	s.seen[fmt.Sprintf("%s %d", op, a.status)] = true
	s.mu.Unlock()
	resp, at := s.deref(raw, opAt+"/responses/"+fmt.Sprint(a.status))
	if hs, ok := resp["headers"].(map[string]any); ok {
		for name, h := range hs {
			if h, _ := s.deref(h.(map[string]any), ""); h["required"] == true && a.header.Get(name) == "" {
				t.Errorf("%s without the required header %s", what, name)
			}
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(a.body) > 0 {
			t.Errorf("%s with a body, but the spec documents none: %q", what, a.body)
		}
		return
	}
	mt, _, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	if err != nil {
		t.Errorf("%s with Content-Type %q: %v", what, a.header.Get("Content-Type"), err)
		return
	}
	documented := ""
	for k := range content {
		if k == mt || k == "*/*" || (strings.HasSuffix(k, "/*") && strings.HasPrefix(mt, strings.TrimSuffix(k, "*"))) {
			documented = k
		}
	}
	if documented == "" {
		t.Errorf("%s with Content-Type %s; the spec documents %v", what, mt, slices.Sorted(maps.Keys(content)))
		return
	}
	if documented == "application/json" {
		s.validate(t, what, at+"/content/"+ptr(documented)+"/schema", a.body)
	}
	// A request the server accepted must be one the spec allows.
	if a.status < 300 && strings.TrimSpace(a.reqBody) != "" {
		if rb, ok := s.operation(op)["requestBody"].(map[string]any); ok {
			rb, rbAt := s.deref(rb, opAt+"/requestBody")
			if _, ok := rb["content"].(map[string]any)["application/json"]; ok {
				s.validate(t, fmt.Sprintf("%s %s: the request body the server accepted", a.method, a.path),
					rbAt+"/content/application~1json/schema", []byte(a.reqBody))
			}
		} else {
			t.Errorf("%s %s: the spec documents no request body, but the request had one", a.method, a.path)
		}
	}
}

// openAPIUncoverable says why the conformance test does not produce a
// documented response, or "" when some request must produce it.
func openAPIUncoverable(op string, status int) string {
	switch {
	case status == http.StatusInternalServerError:
		return "an unexpected error: nothing produces one on purpose"
	case status == http.StatusServiceUnavailable && op != "GET /health":
		return "NATS down: produced for GET /health only (openAPIUnavailable)"
	case op == "POST /v1/sources/{id}/test-connection" && (status == http.StatusGatewayTimeout || status == http.StatusUnprocessableEntity):
		return "a connection test that hangs or panics: no built-in one does; the actions route shows both shapes"
	}
	return ""
}

// TestOpenAPIRoutes checks that the spec describes every route the server
// registers, and nothing else.
func TestOpenAPIRoutes(t *testing.T) {
	spec := loadOpenAPI(t)
	routes := api.New(nil, nil, api.WithMetrics(prometheus.NewRegistry())).Routes()
	if len(routes) == 0 {
		t.Fatal("the server registers no route")
	}
	for i, r := range routes {
		routes[i] = openAPIPath(r)
	}
	ops := spec.operations()
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %q is not described in internal/api/openapi.json: add it to paths (see docs/api.md, Adding a route)", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("openapi.json describes %q, which the server does not register", op)
		}
	}
	// Every /v1 operation names the least role it needs; the open ones none.
	for _, op := range ops {
		sec, ok := spec.operation(op)["security"].([]any)
		_, path, _ := strings.Cut(op, " ")
		open := !strings.HasPrefix(path, "/v1/")
		switch {
		case !ok:
			t.Errorf("%s: no security: list [] (open) or the bearerAuth role it needs", op)
		case open && len(sec) != 0:
			t.Errorf("%s is open: its security must be []", op)
		case !open && (len(sec) != 1 || len(sec[0].(map[string]any)["bearerAuth"].([]any)) != 1):
			t.Errorf("%s: security must be [{bearerAuth: [<role>]}]", op)
		}
	}
}

// openAPIPath turns a ServeMux pattern into the OpenAPI path of the same
// route: a wildcard {name...} is {name}, and {$} ends the path.
func openAPIPath(pattern string) string {
	pattern = strings.TrimSuffix(pattern, "{$}")
	for {
		i := strings.Index(pattern, "...}")
		if i < 0 {
			return pattern
		}
		pattern = pattern[:i] + pattern[i+3:]
	}
}

// TestOpenAPIServed checks that /openapi.json serves the embedded spec.
func TestOpenAPIServed(t *testing.T) {
	want, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(api.OpenAPI(), want) {
		t.Fatal("api.OpenAPI() differs from openapi.json")
	}
	srv := httptest.NewServer(api.New(nil, nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(got, want) {
		t.Fatalf("GET /openapi.json: %d %s, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
	}
}

// TestOpenAPILint runs Redocly's linter on the spec with redocly.yaml.
func TestOpenAPILint(t *testing.T) {
	npx, err := exec.LookPath("npx")
	if err != nil {
		t.Skip("npx is not on PATH: install Node.js to lint openapi.json with " + redoclyCLI)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npx, "--yes", redoclyCLI, "lint", "--config", "redocly.yaml", "--format", "stylish")
	cmd.Dir = root
	cmd.Stdin = nil // no TTY, no prompt
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1", "CI=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npx %s lint: %v\n%s", redoclyCLI, err, out)
	}
	t.Logf("%s", out)
}

// refetcher is a test connector that can re-fetch one document: Sync emits
// one document, SyncDocument blocks until cancelled. Its manifest lists no
// sync modes (full only) and declares an action.
type refetcher struct{}

func (refetcher) Manifest() connector.Manifest {
	return connector.Manifest{Name: "refetch", Version: "1.0.0", Description: "re-fetches",
		Actions: []connector.ActionDefinition{{Name: "ping", Parameters: []connector.ActionParameter{{Name: "n", Type: "integer", Required: true}}}}}
}

func (refetcher) Sync(ctx context.Context, _ *connector.SyncRequest, sc connector.SyncContext) error {
	if err := sc.Emit(ctx, connector.Document{ExternalID: "r-1", Title: "r"}); err != nil {
		return err
	}
	return sc.Complete(ctx, nil)
}

func (refetcher) SyncDocument(ctx context.Context, _ *connector.SyncRequest, _ connector.SyncContext) error {
	<-ctx.Done()
	return ctx.Err()
}

func (refetcher) ExecuteAction(_ context.Context, req *connector.ActionRequest) (any, error) {
	return map[string]any{"pong": string(req.Params)}, nil
}

// oaClient sends requests to one server and checks every answer against the
// spec.
type oaClient struct {
	t    *testing.T
	spec *openAPI
	url  string
}

func (c *oaClient) do(method, path, body string, token ...string) *answer {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(token) > 0 {
		req.Header.Set("Authorization", "Bearer "+token[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	a := &answer{method: method, path: path, reqBody: body, status: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// A stream may never end: its first line is enough.
		line := make([]byte, len("retry: 2000\n"))
		if _, err := io.ReadFull(resp.Body, line); err != nil || string(line) != "retry: 2000\n" {
			c.t.Errorf("%s %s: event stream starts %q (%v)", method, path, line, err)
		}
	} else if a.body, err = io.ReadAll(resp.Body); err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	c.spec.check(c.t, a)
	return a
}

// want sends a request, checks the answer against the spec and its status,
// and returns its JSON body decoded.
func (c *oaClient) want(status int, method, path, body string, token ...string) map[string]any {
	c.t.Helper()
	a := c.do(method, path, body, token...)
	if a.status != status {
		c.t.Fatalf("%s %s %.80s: %d, want %d: %s", method, path, body, a.status, status, a.body)
	}
	var out map[string]any
	if len(a.body) > 0 && strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(a.body, &out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out
}

func (c *oaClient) waitRun(id, status string) {
	c.t.Helper()
	testutil.Eventually(c.t, 15*time.Second, func() bool {
		return c.want(200, "GET", "/v1/runs/"+id, "")["status"] == status
	}, "run "+id+" "+status)
}

// TestOpenAPIConformance drives a real manager and worker through every
// documented response of every operation and checks each answer against the
// spec.
func TestOpenAPIConformance(t *testing.T) {
	spec := loadOpenAPI(t)
	n := testutil.StartNATS(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	m, err := manager.New(n.Conn, manager.Config{Logger: log, ActionTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	wnc, _ := n.Connect(t)
	w, err := worker.New(wnc, worker.Config{Connectors: []connector.Connector{&counter{}, refetcher{}, synthetic.New()}, Logger: log, HeartbeatTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	server := func(opts ...api.Option) *oaClient {
		srv := httptest.NewServer(api.New(m, log, opts...))
		t.Cleanup(srv.Close)
		return &oaClient{t: t, spec: spec, url: srv.URL}
	}
	c := server(api.WithLogLevel(zap.NewAtomicLevelAt(zap.InfoLevel)), api.WithKeepAlive(100*time.Millisecond), api.WithMetrics(prometheus.NewRegistry()))
	fixed := server() // its log level cannot be changed

	big := func(limit int) string { return `{"title":"` + strings.Repeat("a", limit) + `"}` }
	const mib = 1 << 20

	// System.
	c.want(200, "GET", "/health", "")
	c.want(200, "GET", "/api/version", "")
	c.want(200, "GET", "/openapi.json", "")
	c.want(200, "GET", "/metrics", "")

	// Sources.
	src := c.want(201, "POST", "/v1/sources", `{"name":"a","connector":"counter","config":{"count":3}}`)["id"].(string)
	blocking := c.want(201, "POST", "/v1/sources", `{"name":"b","connector":"counter","config":{"count":1,"block":true},"credentials":{"token":"s3cret"}}`)["id"].(string)
	c.want(400, "POST", "/v1/sources", `{"name":`)
	c.want(413, "POST", "/v1/sources", big(mib))
	c.want(422, "POST", "/v1/sources", `{"name":"x","connector":"nope","bogus":1}`)
	c.want(422, "POST", "/v1/sources", `{"connector":"counter","config":{"count":"many"}}`)
	c.want(200, "GET", "/v1/sources?page=1&size=1", "")
	c.want(422, "GET", "/v1/sources?page=0&size=1001", "")
	c.want(200, "GET", "/v1/sources/"+src, "")
	c.want(404, "GET", "/v1/sources/nope", "")
	c.want(200, "PATCH", "/v1/sources/"+src, `{"name":"renamed","credentials":null}`)
	c.want(404, "PATCH", "/v1/sources/nope", `{"name":"x"}`)
	c.want(400, "PATCH", "/v1/sources/"+src, `{"config":`)
	c.want(413, "PATCH", "/v1/sources/"+src, big(mib))
	c.want(422, "PATCH", "/v1/sources/"+src, `{"config":{"count":-1}}`)

	run := c.want(202, "POST", "/v1/sources/"+src+"/sync", "")["id"].(string)
	c.waitRun(run, "completed")
	c.want(404, "POST", "/v1/sources/nope/sync", "")
	c.want(400, "POST", "/v1/sources/"+src+"/sync", `{"mode":`)
	c.want(413, "POST", "/v1/sources/"+src+"/sync", big(mib))
	c.want(422, "POST", "/v1/sources/"+src+"/sync", `{"mode":"sideways"}`)
	c.want(202, "POST", "/v1/sources/"+src+"/replay", "")
	c.want(404, "POST", "/v1/sources/nope/replay", "")

	// Schedules and checkpoints.
	c.want(200, "PATCH", "/v1/sources/"+src, `{"schedule":{"cron":"@hourly","mode":"full"}}`)
	c.want(422, "PATCH", "/v1/sources/"+src, `{"schedule":{"every":"soon","cron":"* * * * *"}}`)
	c.want(200, "POST", "/v1/sources/"+src+"/pause", "")
	c.want(404, "POST", "/v1/sources/nope/pause", "")
	c.want(200, "POST", "/v1/sources/"+src+"/resume", "")
	c.want(404, "POST", "/v1/sources/nope/resume", "")
	c.want(200, "PATCH", "/v1/sources/"+src, `{"schedule":null}`)
	cp := "/v1/sources/" + src + "/checkpoint"
	c.want(200, "PUT", cp, `{"checkpoint":{"after":"doc-2"}}`)
	c.want(200, "GET", cp, "")
	c.want(400, "PUT", cp, `{"checkpoint":`)
	c.want(404, "PUT", "/v1/sources/nope/checkpoint", `{"checkpoint":1}`)
	c.want(413, "PUT", cp, big(mib))
	c.want(422, "PUT", cp, `{"checkpoint":null}`)
	c.want(204, "DELETE", cp, "")
	c.want(404, "GET", cp, "")
	c.want(404, "DELETE", "/v1/sources/nope/checkpoint", "")
	c.want(409, "POST", "/v1/runs/"+run+"/retry", "")
	c.want(404, "POST", "/v1/runs/nope/retry", "")

	// A run to cancel by its id, then one to cancel through its source.
	active := c.want(202, "POST", "/v1/sources/"+blocking+"/sync", `{"mode":"full"}`)["id"].(string)
	c.waitRun(active, "running")
	c.want(409, "POST", "/v1/sources/"+blocking+"/sync", "")
	c.want(409, "DELETE", "/v1/sources/"+blocking, "")
	c.want(409, "PUT", "/v1/sources/"+blocking+"/checkpoint", `{"checkpoint":1}`)
	c.want(409, "DELETE", "/v1/sources/"+blocking+"/checkpoint", "")
	c.want(202, "POST", "/v1/runs/"+active+"/cancel", "")
	c.waitRun(active, "cancelled")
	c.want(409, "POST", "/v1/runs/"+active+"/cancel", "")
	c.want(404, "POST", "/v1/runs/nope/cancel", "")
	active = c.want(202, "POST", "/v1/sources/"+blocking+"/sync", `{}`)["id"].(string)
	c.waitRun(active, "running")
	c.want(202, "POST", "/v1/sources/"+blocking+"/cancel", "")
	c.waitRun(active, "cancelled")
	retried := c.want(202, "POST", "/v1/runs/"+active+"/retry", "")["id"].(string)
	c.waitRun(retried, "running")
	c.want(202, "POST", "/v1/sources/"+blocking+"/cancel", "")
	c.waitRun(retried, "cancelled")
	c.want(409, "POST", "/v1/sources/"+blocking+"/cancel", "")
	c.want(404, "POST", "/v1/sources/nope/cancel", "")
	c.want(204, "DELETE", "/v1/sources/"+blocking, "")
	c.want(404, "DELETE", "/v1/sources/"+blocking, "")

	// Runs.
	c.want(200, "GET", "/v1/runs?source_id="+src+"&status=completed", "")
	c.want(422, "GET", "/v1/runs?status=bogus", "")
	c.want(200, "GET", "/v1/runs/"+run, "")
	c.want(404, "GET", "/v1/runs/nope", "")
	c.want(200, "GET", "/v1/runs/"+run+"/errors", "")
	c.want(404, "GET", "/v1/runs/nope/errors", "")
	c.want(422, "GET", "/v1/runs/"+run+"/errors?size=0", "")
	c.want(200, "GET", "/v1/runs/"+run+"/events", "")
	c.want(404, "GET", "/v1/runs/nope/events", "")
	c.want(422, "GET", "/v1/runs/"+run+"/events?last_event_id=x", "")
	c.want(200, "GET", "/v1/events?source_id="+src+"&type=document.upserted", "")
	c.want(422, "GET", "/v1/events?type=nothing", "")

	// Documents.
	docs := "/v1/sources/" + src + "/documents"
	c.want(200, "GET", docs+"?status=pending&search=t&size=2", "")
	c.want(404, "GET", "/v1/sources/nope/documents", "")
	c.want(422, "GET", docs+"?status=done", "")
	doc := c.want(201, "POST", docs, `{"external_id":"notes/1","title":"Notes","content":"# Notes","content_type":"text/markdown",
		"metadata":{"url":"https://example.com/notes","size":7,"extra":{"k":1}},"permissions":{"public":false,"groups":["support"]},"attributes":{"lang":"en"}}`)["id"].(string)
	c.want(409, "POST", docs, `{"external_id":"notes/1"}`)
	c.want(400, "POST", docs, `{"title":`)
	c.want(404, "POST", "/v1/sources/nope/documents", `{"title":"x"}`)
	c.want(413, "POST", docs, big(22*mib))
	c.want(422, "POST", docs, `{"title":"x","colour":"red"}`)
	c.want(200, "GET", docs+"/"+doc, "")
	c.want(404, "GET", docs+"/nope", "")
	c.want(200, "PUT", docs+"/"+doc, `{"title":"Notes, edited","metadata":null}`)
	c.want(400, "PUT", docs+"/"+doc, `{"title":`)
	c.want(404, "PUT", docs+"/0123456789abcdef0123456789abcdef", `{"title":"x"}`)
	c.want(413, "PUT", docs+"/"+doc, big(22*mib))
	c.want(422, "PUT", docs+"/"+doc, `{"external_id":"other"}`)
	c.want(200, "GET", docs+"/"+doc+"/content", "")
	c.want(200, "GET", docs+"/"+doc+"/content?raw=true", "")
	synced := c.want(200, "GET", docs+"?size=1", "")["items"].([]any)[0].(map[string]any)["id"].(string)
	c.want(404, "GET", docs+"/"+synced+"/content", "") // the counter connector stores no content
	c.want(422, "GET", docs+"/"+doc+"/content?raw=maybe", "")
	c.want(200, "POST", docs+"/"+doc+"/status", `{"status":"failed","error":"boom"}`)
	c.want(400, "POST", docs+"/"+doc+"/status", `{"status":`)
	c.want(404, "POST", docs+"/nope/status", `{"status":"indexed"}`)
	c.want(409, "POST", docs+"/"+doc+"/status", `{"status":"indexed","fingerprint":"0000"}`)
	c.want(413, "POST", docs+"/"+doc+"/status", big(mib))
	c.want(422, "POST", docs+"/"+doc+"/status", `{"status":"great"}`)
	c.want(409, "POST", docs+"/"+synced+"/sync", "") // counter cannot re-fetch one document
	c.want(204, "DELETE", docs+"/"+doc, "")
	c.want(404, "DELETE", docs+"/"+doc, "")

	// Re-fetching one document.
	rsrc := c.want(201, "POST", "/v1/sources", `{"name":"r","connector":"refetch"}`)["id"].(string)
	c.waitRun(c.want(202, "POST", "/v1/sources/"+rsrc+"/sync", "")["id"].(string), "completed")
	rdocs := "/v1/sources/" + rsrc + "/documents/"
	rdoc := c.want(200, "GET", "/v1/sources/"+rsrc+"/documents", "")["items"].([]any)[0].(map[string]any)["id"].(string)
	refetch := c.want(202, "POST", rdocs+rdoc+"/sync", "")["id"].(string)
	c.waitRun(refetch, "running")
	c.want(409, "POST", rdocs+rdoc+"/sync", "")
	c.want(404, "POST", rdocs+"nope/sync", "")
	c.want(202, "POST", rdocs+rdoc+"/stop", "")
	c.waitRun(refetch, "cancelled")
	c.want(409, "POST", rdocs+rdoc+"/stop", "")
	c.want(404, "POST", rdocs+"nope/stop", "")

	// Actions and connection tests, on a live worker. A connector that
	// some worker registered once but none hosts now: no worker answers.
	ghost, _ := json.Marshal(connector.Manifest{Name: "ghost", Version: "1.0.0", ConnectionTest: true,
		Actions: []connector.ActionDefinition{{Name: "ping"}}})
	if _, err := m.Store().Connectors.Put(t.Context(), "ghost", &state.ConnectorInfo{Manifest: ghost, RegisteredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	syn := c.want(201, "POST", "/v1/sources", `{"name":"syn","connector":"synthetic","config":{"count":1}}`)["id"].(string)
	gone := c.want(201, "POST", "/v1/sources", `{"name":"ghost","connector":"ghost"}`)["id"].(string)
	c.want(200, "POST", "/v1/sources/"+syn+"/test-connection", "")
	c.want(404, "POST", "/v1/sources/nope/test-connection", "")
	c.want(409, "POST", "/v1/sources/"+src+"/test-connection", "") // counter has none
	c.want(409, "POST", "/v1/sources/"+gone+"/test-connection", "")
	acts := "/v1/sources/" + syn + "/actions/"
	c.want(200, "POST", acts+"echo", `{"params":{"message":"hi","tags":["a"]}}`)
	c.want(400, "POST", acts+"echo", `{"params":`)
	c.want(404, "POST", "/v1/sources/nope/actions/echo", "")
	c.want(404, "POST", acts+"reindex", "")
	c.want(409, "POST", "/v1/sources/"+gone+"/actions/ping", "")
	c.want(413, "POST", acts+"echo", big(mib))
	c.want(422, "POST", acts+"echo", `{"params":{"times":"2","colour":"red"}}`)
	c.want(422, "POST", acts+"fail", `{"params":{"message":"no"}}`)
	c.want(504, "POST", acts+"sleep", `{"params":{"duration":"10s"}}`)
	c.want(204, "DELETE", "/v1/sources/"+gone, "")
	c.want(204, "DELETE", "/v1/sources/"+syn, "")

	// Connectors, workers, administration.
	if got := c.want(200, "GET", "/v1/connectors", "")["total"]; got != 4.0 {
		t.Errorf("connectors: total %v, want 4", got)
	}
	c.want(200, "GET", "/v1/workers", "")
	c.want(200, "PUT", "/v1/admin/log-level", `{"level":"debug"}`)
	c.want(200, "GET", "/v1/admin/log-level", "")
	c.want(400, "PUT", "/v1/admin/log-level", `{"level":`)
	c.want(413, "PUT", "/v1/admin/log-level", big(mib))
	c.want(422, "PUT", "/v1/admin/log-level", `{"level":"loud"}`)
	fixed.want(409, "GET", "/v1/admin/log-level", "")
	fixed.want(409, "PUT", "/v1/admin/log-level", `{"level":"info"}`)

	openAPIMethods(t, c, spec)
	openAPIAuth(t, m, spec)
	openAPIUnavailable(t, spec)

	// Every documented response was produced, but those that cannot be.
	for _, op := range spec.operations() {
		for status := range spec.operation(op)["responses"].(map[string]any) {
			key := op + " " + status
			code, err := strconv.Atoi(status)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", op, status)
				continue
			}
			if spec.seen[key] || openAPIUncoverable(op, code) != "" {
				continue
			}
			t.Errorf("%s is documented, but no request of TestOpenAPIConformance produced it: add one", key)
		}
	}
}

// pathOf fills a spec path's parameters with x.
func pathOf(template string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(template, '{')
		if i < 0 {
			b.WriteString(template)
			return b.String()
		}
		j := strings.IndexByte(template, '}')
		b.WriteString(template[:i] + "x")
		template = template[j+1:]
	}
}

// openAPIMethods checks that a path answers every method the spec does not
// list for it with 405, an Allow header naming exactly those it lists, and
// the Problem shape; and that an unknown path is a 404 in that shape.
func openAPIMethods(t *testing.T, c *oaClient, spec *openAPI) {
	problem := "/components/schemas/Problem"
	for path, item := range spec.doc["paths"].(map[string]any) {
		var allowed []string
		for _, m := range httpMethods {
			if _, ok := item.(map[string]any)[m]; ok {
				allowed = append(allowed, strings.ToUpper(m))
				if m == "get" {
					allowed = append(allowed, "HEAD")
				}
			}
		}
		sort.Strings(allowed)
		for _, m := range []string{"GET", "PUT", "POST", "DELETE", "PATCH"} {
			if slices.Contains(allowed, m) {
				continue
			}
			req, _ := http.NewRequestWithContext(t.Context(), m, c.url+pathOf(path), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			what := fmt.Sprintf("%s %s (not in the spec)", m, path)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s: %d, want 405: %s", what, resp.StatusCode, body)
				continue
			}
			got := strings.Split(resp.Header.Get("Allow"), ", ")
			sort.Strings(got)
			if !slices.Equal(got, allowed) {
				t.Errorf("%s: Allow %v, but the spec lists %v", what, got, allowed)
			}
			spec.validate(t, what, problem, body)
			if !bytes.Contains(body, []byte(`"code":"method_not_allowed"`)) {
				t.Errorf("%s: %s", what, body)
			}
		}
	}
	resp, err := http.Get(c.url + "/v1/nothing")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/nothing: %d", resp.StatusCode)
	}
	spec.validate(t, "GET /v1/nothing", problem, body)
}

// openAPIAuth calls every operation with no token, a wrong token and a
// token of each role: the answer must be 401 without a valid token, 403
// exactly when the role is below the one the spec lists, and documented.
func openAPIAuth(t *testing.T, m *manager.Manager, spec *openAPI) {
	path := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, path, adminTok+" admin\n"+operatorTok+" operator\n"+viewerTok+" viewer\n")
	tokens, err := api.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(m, zap.NewNop(), api.WithTokens(tokens)))
	t.Cleanup(srv.Close)
	c := &oaClient{t: t, spec: spec, url: srv.URL}
	roles := []struct{ name, token string }{{"viewer", viewerTok}, {"operator", operatorTok}, {"admin", adminTok}}
	rank := func(role string) int {
		return slices.IndexFunc(roles, func(r struct{ name, token string }) bool { return r.name == role })
	}
	for _, op := range spec.operations() {
		method, tmpl, _ := strings.Cut(op, " ")
		sec := spec.operation(op)["security"].([]any)
		if len(sec) == 0 {
			continue // open
		}
		need := sec[0].(map[string]any)["bearerAuth"].([]any)[0].(string)
		if rank(need) < 0 {
			t.Errorf("%s: role %q is not viewer, operator or admin", op, need)
			continue
		}
		p := pathOf(tmpl)
		for _, tok := range []string{"", "wrong-token-0123456789"} {
			var a *answer
			if tok == "" {
				a = c.do(method, p, "")
			} else {
				a = c.do(method, p, "", tok)
			}
			if a.status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", method, p, tok, a.status)
			}
		}
		for _, r := range roles {
			a := c.do(method, p, "", r.token)
			if forbidden := a.status == http.StatusForbidden; forbidden != (rank(r.name) < rank(need)) {
				t.Errorf("%s %s as %s: %d, but the spec says it needs %s", method, p, r.name, a.status, need)
			}
		}
	}
}

// openAPIUnavailable checks GET /health's 503 against the spec: a manager
// whose NATS server is gone.
func openAPIUnavailable(t *testing.T, spec *openAPI) {
	n := testutil.StartNATS(t)
	m, err := manager.New(n.Conn, manager.Config{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(m, zap.NewNop()))
	t.Cleanup(srv.Close)
	c := &oaClient{t: t, spec: spec, url: srv.URL}
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	testutil.Eventually(t, 10*time.Second, func() bool { return !n.Conn.IsConnected() }, "the manager to lose NATS")
	c.want(503, "GET", "/health", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Logf("stop a manager without NATS: %v", err)
	}
}
