package harness

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// API drives the manager's HTTP API.
type API struct {
	T    testing.TB
	Base string // http://host:port
	// Token, when set, goes with every request as a bearer token.
	Token string
}

// Do sends a request and decodes a JSON answer into out (when not nil). It
// fails the test on a transport error or a non-JSON body.
func (a *API) Do(method, path string, body any, out any) int {
	a.T.Helper()
	code, err := a.TryDo(method, path, body, out)
	if err != nil {
		a.T.Fatal(err)
	}
	return code
}

// TryDo is Do returning transport errors instead of failing, for callers
// that expect the manager to be down for a while.
func (a *API) TryDo(method, path string, body any, out any) (int, error) {
	rd, err := encodeBody(body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.Base+path, rd)
	if err != nil {
		return 0, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if ct := resp.Header.Get("Content-Type"); len(data) > 0 && !strings.HasPrefix(ct, "application/json") {
		return resp.StatusCode, &BodyError{Method: method, Path: path, Status: resp.StatusCode, Body: string(data), Why: "content type " + ct}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, &BodyError{Method: method, Path: path, Status: resp.StatusCode, Body: string(data), Why: err.Error()}
		}
	}
	return resp.StatusCode, nil
}

// BodyError is an answer the API should never give.
type BodyError struct {
	Method, Path string
	Status       int
	Body         string
	Why          string
}

func (e *BodyError) Error() string {
	return e.Method + " " + e.Path + ": " + e.Why + ": " + e.Body
}

// Must sends a request and fails the test unless it answers want.
func (a *API) Must(want int, method, path string, body any, out any) {
	a.T.Helper()
	var raw json.RawMessage
	if got := a.Do(method, path, body, &raw); got != want {
		a.T.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.T.Fatal(err)
		}
	}
}

// Source is a source as the API shows it.
type Source struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Connector string          `json:"connector"`
	Config    json.RawMessage `json:"config"`
}

// Run is a run as the API shows it.
type Run struct {
	ID         string `json:"id"`
	SourceID   string `json:"source_id"`
	Mode       string `json:"mode"`
	Status     string `json:"status"`
	Attempt    int    `json:"attempt"`
	WorkerID   string `json:"worker_id"`
	Scanned    int    `json:"documents_scanned"`
	Emitted    int    `json:"documents_emitted"`
	Updated    int    `json:"documents_updated"`
	Deleted    int    `json:"documents_deleted"`
	Errors     int    `json:"documents_errors"`
	New        int    `json:"documents_new"`
	Changed    int    `json:"documents_changed"`
	Unchanged  int    `json:"documents_unchanged"`
	Error      string `json:"error"`
	StartedAt  string `json:"started_at"`
	FinishedAt string `json:"finished_at"`
	Cancel     bool   `json:"cancel_requested"`
}

// Terminal reports whether the run has ended.
func (r Run) Terminal() bool { return Terminal(r.Status) }

// Terminal reports whether a run status is an end state.
func Terminal(status string) bool {
	return status == "completed" || status == "failed" || status == "cancelled"
}

// CreateSource creates a source and returns it.
func (a *API) CreateSource(name, connector string, config any) Source {
	a.T.Helper()
	var src Source
	a.Must(http.StatusCreated, "POST", "/v1/sources", map[string]any{"name": name, "connector": connector, "config": config}, &src)
	return src
}

// Sync triggers a sync of the source and returns the queued run.
func (a *API) Sync(sourceID string, body any) Run {
	a.T.Helper()
	var r Run
	a.Must(http.StatusAccepted, "POST", "/v1/sources/"+sourceID+"/sync", body, &r)
	return r
}

// Run reads one run.
func (a *API) Run(id string) Run {
	a.T.Helper()
	var r Run
	a.Must(http.StatusOK, "GET", "/v1/runs/"+id, nil, &r)
	return r
}

// WaitRun polls the run until cond holds, failing after timeout.
func (a *API) WaitRun(id string, timeout time.Duration, what string, cond func(Run) bool) Run {
	a.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := a.Run(id)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			a.T.Fatalf("run %s: not %s within %s: %+v", id, what, timeout, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitStatus waits for the run to reach status, failing at once if it ends
// in another.
func (a *API) WaitStatus(id, status string, timeout time.Duration) Run {
	a.T.Helper()
	return a.WaitRun(id, timeout, status, func(r Run) bool {
		if r.Terminal() && r.Status != status {
			a.T.Fatalf("run %s ended %s, want %s: %+v", id, r.Status, status, r)
		}
		return r.Status == status
	})
}
