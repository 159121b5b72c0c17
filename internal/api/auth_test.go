package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/internal/testutil"
)

const (
	adminTok    = "admin-token-0123456789"
	operatorTok = "operator-token-0123456789"
	viewerTok   = "viewer-token-0123456789"
)

func writeTokens(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startManager starts a manager, without a worker, on an embedded NATS.
func startManager(t *testing.T) *manager.Manager {
	t.Helper()
	n := testutil.StartNATS(t)
	m, err := manager.New(n.Conn, manager.Config{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(context.Background()) })
	return m
}

func TestTokensFile(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"empty":      "# nobody\n\n",
		"bad role":   adminTok + " root\n",
		"short":      "abc admin\n",
		"three":      adminTok + " admin extra\n",
		"duplicated": adminTok + " admin\n" + adminTok + " viewer\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		writeTokens(t, path, text)
		if _, err := api.LoadTokens(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := api.LoadTokens(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// Every /v1 route needs a token of a role high enough; /health and
// /metrics do not (a token there, even a wrong one, is ignored); a reload
// replaces the tokens, and a bad file keeps the old ones.
func TestAuth(t *testing.T) {
	m := startManager(t)
	path := filepath.Join(t.TempDir(), "tokens")
	writeTokens(t, path, "# the operators' tokens\n"+adminTok+" admin\n"+operatorTok+" operator # on call\n"+viewerTok+" viewer\n")
	tokens, err := api.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(m, zap.NewNop(), api.WithTokens(tokens), api.WithMetrics(prometheus.NewRegistry())))
	t.Cleanup(srv.Close)
	call := func(token, method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		token, method, path, body string
		want                      int
	}{
		{"", "GET", "/health", "", 200},
		{"", "GET", "/api/version", "", 200},
		{"", "GET", "/metrics", "", 200},
		{"wrong-token-0123456789", "GET", "/metrics", "", 200},
		{"", "POST", "/metrics", "", 405},
		{"", "GET", "/v1/sources", "", 401},
		{"", "GET", "/v1/nothing-here", "", 401},
		{"wrong-token-0123456789", "GET", "/v1/sources", "", 401},
		{viewerTok, "GET", "/v1/sources", "", 200},
		{viewerTok, "GET", "/v1/runs", "", 200},
		{viewerTok, "POST", "/v1/sources/x/sync", "", 403},
		{viewerTok, "POST", "/v1/sources", `{}`, 403},
		{operatorTok, "POST", "/v1/sources/x/sync", "", 404},
		{"", "POST", "/v1/sources/x/test-connection", "", 401},
		{"wrong-token-0123456789", "POST", "/v1/sources/x/actions/echo", `{}`, 401},
		{viewerTok, "POST", "/v1/sources/x/test-connection", "", 403},
		{viewerTok, "POST", "/v1/sources/x/actions/echo", `{}`, 403},
		{operatorTok, "POST", "/v1/sources/x/test-connection", "", 404},
		{operatorTok, "POST", "/v1/sources/x/actions/echo", `{}`, 404},
		{adminTok, "POST", "/v1/sources/x/actions/echo", `{}`, 404},
		{operatorTok, "POST", "/v1/sources/x/documents", `{}`, 404},
		{operatorTok, "POST", "/v1/sources", `{}`, 403},
		{operatorTok, "DELETE", "/v1/sources/x", "", 403},
		{adminTok, "POST", "/v1/sources", `{"name":"a","connector":"none"}`, 422},
		{adminTok, "DELETE", "/v1/sources/x", "", 404},
		{adminTok, "GET", "/v1/nothing-here", "", 404},
	} {
		if got := call(c.token, c.method, c.path, c.body); got != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}

	writeTokens(t, path, "new-viewer-token-0123 viewer\n")
	if err := tokens.Reload(); err != nil {
		t.Fatal(err)
	}
	if call(adminTok, "GET", "/v1/sources", "") != 401 || call("new-viewer-token-0123", "GET", "/v1/sources", "") != 200 {
		t.Fatal("reload did not replace the tokens")
	}
	writeTokens(t, path, "garbage\n")
	if err := tokens.Reload(); err == nil {
		t.Fatal("a bad file was accepted")
	}
	if call("new-viewer-token-0123", "GET", "/v1/sources", "") != 200 {
		t.Fatal("a failed reload dropped the tokens")
	}
}

func TestLogLevel(t *testing.T) {
	m := startManager(t)
	level := zap.NewAtomicLevelAt(zap.InfoLevel)
	srv := httptest.NewServer(api.New(m, zap.NewNop(), api.WithLogLevel(level)))
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL}
	if code, body := e.do("PUT", "/v1/admin/log-level", `{"level":"debug"}`); code != 200 || body["level"] != "debug" || level.Level() != zap.DebugLevel {
		t.Fatalf("set debug: %d %v", code, body)
	}
	if code, body := e.do("GET", "/v1/admin/log-level", ""); code != 200 || body["level"] != "debug" {
		t.Fatalf("get: %d %v", code, body)
	}
	for _, bad := range []string{`{"level":"loud"}`, `{"level":"fatal"}`, `{"level":3}`, `{}`} {
		if code, body := e.do("PUT", "/v1/admin/log-level", bad); code != 422 || body["detail"] == nil {
			t.Errorf("%s: %d %v", bad, code, body)
		}
	}
	if level.Level() != zap.DebugLevel {
		t.Fatal("a refused change changed the level")
	}
}
