package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/test/harness"
)

// TestAuthOverHTTP runs the manager with a tokens file: /v1 needs a token
// of the right role, /health does not, and SIGHUP loads a new file. Without
// tokens, the manager refuses an address other than loopback.
func TestAuthOverHTTP(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("viewer-token-0123456789 viewer\nadmin-token-0123456789 admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startManager(t, "--auth-tokens-file", tokens)
	call := func(token, method, path string, body any) int {
		t.Helper()
		a := harness.API{T: t, Base: s.Base, Token: token}
		return a.Do(method, path, body, nil)
	}
	if c := call("", "GET", "/health", nil); c != http.StatusOK {
		t.Fatalf("/health without a token: %d", c)
	}
	if c := call("", "GET", "/v1/sources", nil); c != http.StatusUnauthorized {
		t.Fatalf("/v1 without a token: %d", c)
	}
	if c := call("viewer-token-0123456789", "GET", "/v1/sources", nil); c != http.StatusOK {
		t.Fatalf("viewer lists: %d", c)
	}
	body := map[string]any{"name": "x", "connector": "synthetic", "config": map[string]any{"count": 1}}
	if c := call("viewer-token-0123456789", "POST", "/v1/sources", body); c != http.StatusForbidden {
		t.Fatalf("viewer creates a source: %d", c)
	}
	if c := call("admin-token-0123456789", "POST", "/v1/sources", body); c != http.StatusCreated {
		t.Fatalf("admin creates a source: %d", c)
	}

	// A new file, then SIGHUP: the old viewer token is gone.
	if err := os.WriteFile(tokens, []byte("rotated-token-0123456789 viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.manager.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.manager.WaitLog("auth tokens reloaded", 10*time.Second)
	if c := call("viewer-token-0123456789", "GET", "/v1/sources", nil); c != http.StatusUnauthorized {
		t.Fatalf("old token after reload: %d", c)
	}
	if c := call("rotated-token-0123456789", "GET", "/v1/sources", nil); c != http.StatusOK {
		t.Fatalf("new token after reload: %d", c)
	}

	// No tokens and every interface: refused.
	p := start(t, "manager", "--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0", "--nats-listen", "")
	harness.Eventually(t, 30*time.Second, 50*time.Millisecond, "the manager to refuse to start", p.Exited)
	if !strings.Contains(p.Log(), "--insecure") {
		t.Fatalf("refusal does not say why:\n%s", p.Log())
	}
}
