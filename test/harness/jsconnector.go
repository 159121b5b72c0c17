package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// InstallJSConnector installs examples/js-connector (npm ci, with the
// versions its lockfile pins) into a temporary directory and returns the
// node binary and the path of its connector.js. It skips the test when node
// or npm is missing.
func InstallJSConnector(t testing.TB) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: skipping the JavaScript connector test (examples/js-connector needs Node.js 18 or later and npm)")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: skipping the JavaScript connector test (examples/js-connector needs Node.js 18 or later and npm)")
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the example's own files, so that the test leaves no
	// node_modules in the source tree and ignores one a developer made.
	src := filepath.Join(root, "examples", "js-connector")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error")
	cmd.Dir = dir
	cmd.Stdin = nil // no TTY: npm must not prompt
	cmd.Env = append(os.Environ(), "CI=true", "npm_config_update_notifier=false")
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s (the npm registry must be reachable): %v\n%s", dir, err, out)
	}
	t.Logf("npm ci: %s", time.Since(began).Round(time.Millisecond))
	return node, filepath.Join(dir, "connector.js")
}
