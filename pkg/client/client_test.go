package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/internal/version"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

func TestMetaAndRegistry(t *testing.T) {
	level := zap.NewAtomicLevelAt(zap.InfoLevel)
	s := start(t, api.WithLogLevel(level))
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()

	v, err := c.Version(ctx)
	if err != nil || v.Version != version.Version || v.Protocol != version.Protocol {
		t.Fatalf("version: %+v %v", v, err)
	}
	h, err := c.Health(ctx)
	if err != nil || h.Status != "ok" || !h.NATS.Connected || !h.JetStream.OK || h.JetStream.Streams == 0 {
		t.Fatalf("health: %+v %v", h, err)
	}
	conns, err := c.ListConnectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]client.Connector{}
	for _, cn := range conns {
		byName[cn.Name] = cn
	}
	if fs := byName["filesystem"]; fs.Workers != 1 || !fs.DocumentSync || len(fs.ConfigSchema) == 0 || fs.RegisteredAt.IsZero() {
		t.Fatalf("filesystem connector: %+v", fs)
	}
	if _, ok := byName["synthetic"]; !ok || len(conns) != 3 {
		t.Fatalf("connectors: %+v", conns)
	}
	workers, err := c.ListWorkers(ctx)
	if err != nil || len(workers) != 1 || len(workers[0].Connectors) != 3 || workers[0].ID == "" {
		t.Fatalf("workers: %+v %v", workers, err)
	}

	lvl, err := c.GetLogLevel(ctx)
	if err != nil || lvl != client.LogLevelInfo {
		t.Fatalf("log level: %q %v", lvl, err)
	}
	if lvl, err = c.SetLogLevel(ctx, client.LogLevelDebug); err != nil || lvl != client.LogLevelDebug || level.String() != "debug" {
		t.Fatalf("set log level: %q %v (server at %s)", lvl, err, level)
	}
	_, err = c.SetLogLevel(ctx, "loud")
	e := mustAPIError(t, err, 422, client.CodeValidation)
	if len(e.Detail) != 1 || e.Detail[0].Field() != "body.level" || e.Detail[0].Type != "enum" {
		t.Fatalf("detail: %+v", e.Detail)
	}
}

func TestSources(t *testing.T) {
	s := start(t)
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()

	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "gen", Connector: "synthetic",
		Config: map[string]any{"count": 20}, Credentials: map[string]string{"token": "s3cret"}})
	if err != nil || src.ID == "" || !src.HasCredentials || string(src.Config) != `{"count":20}` {
		t.Fatalf("create: %+v %v", src, err)
	}
	other, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "other", Connector: "synthetic", Config: json.RawMessage(`{"count":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSource(ctx, src.ID)
	if err != nil || got.Name != "gen" || !got.CreatedAt.Equal(src.CreatedAt) {
		t.Fatalf("get: %+v %v", got, err)
	}
	page, err := c.ListSources(ctx, client.PageParams{Page: 2, Size: 1})
	if err != nil || page.Total != 2 || page.Page != 2 || page.Size != 1 || len(page.Items) != 1 || page.Items[0].ID != other.ID {
		t.Fatalf("list: %+v %v", page, err)
	}

	name := "renamed"
	upd, err := c.UpdateSource(ctx, src.ID, client.UpdateSourceRequest{Name: &name})
	if err != nil || upd.Name != name || !upd.HasCredentials || string(upd.Config) != `{"count":20}` {
		t.Fatalf("rename: %+v %v", upd, err)
	}
	upd, err = c.UpdateSource(ctx, src.ID, client.UpdateSourceRequest{RemoveCredentials: true, Config: map[string]int{"count": 30}})
	if err != nil || upd.HasCredentials || string(upd.Config) != `{"count":30}` {
		t.Fatalf("remove credentials: %+v %v", upd, err)
	}
	if _, err := c.UpdateSource(ctx, src.ID, client.UpdateSourceRequest{Credentials: map[string]string{"a": "b"}, RemoveCredentials: true}); err == nil {
		t.Fatal("both credentials and their removal: accepted")
	}

	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{Mode: events.ModeFull})
	if err != nil || run.Status != state.RunQueued || run.Mode != events.ModeFull || run.SourceID != src.ID {
		t.Fatalf("sync: %+v %v", run, err)
	}
	run = waitRun(t, c, run.ID, "the end", terminal)
	if run.Status != state.RunCompleted || run.DocumentsEmitted != 30 {
		t.Fatalf("run: %+v", run)
	}
	run2, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil || run2.Mode != events.ModeIncremental {
		t.Fatalf("second sync: %+v %v", run2, err)
	}
	waitRun(t, c, run2.ID, "the end", terminal)
	runs, err := c.ListRuns(ctx, client.ListRunsParams{SourceID: src.ID, Status: state.RunCompleted, PageParams: client.PageParams{Size: 1}})
	if err != nil || runs.Total != 2 || len(runs.Items) != 1 || runs.Items[0].ID != run2.ID {
		t.Fatalf("list runs: %+v %v", runs, err)
	}
	_, err = c.CancelSource(ctx, src.ID)
	mustAPIError(t, err, 409, client.CodeRunNotActive)

	rp, err := c.ReplaySource(ctx, src.ID)
	if err != nil || rp.SourceID != src.ID || rp.Documents != 30 || !strings.HasPrefix(rp.ReplayID, "replay-") {
		t.Fatalf("replay: %+v %v", rp, err)
	}
	if err := c.DeleteSource(ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetSource(ctx, src.ID)
	mustAPIError(t, err, 404, client.CodeNotFound)
	_, err = c.GetRun(ctx, run.ID)
	mustAPIError(t, err, 404, client.CodeNotFound)
}

func TestDocuments(t *testing.T) {
	s := start(t)
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()

	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "manual", Connector: "synthetic", Config: map[string]int{"count": 0}})
	if err != nil {
		t.Fatal(err)
	}
	title, content := "Returns", "Returns are free within 30 days."
	doc, err := c.CreateDocument(ctx, src.ID, client.DocumentRequest{ExternalID: "faq/returns", Title: &title, Content: &content,
		ContentType: "text/markdown", Permissions: &events.Permissions{Groups: []string{"support"}}, Attributes: map[string]any{"lang": "en"}})
	if err != nil || doc.ID != state.DocID("faq/returns") || doc.Origin != state.OriginManual || doc.Status != state.DocPending || doc.ContentID == "" {
		t.Fatalf("create: %+v %v", doc, err)
	}
	_, err = c.CreateDocument(ctx, src.ID, client.DocumentRequest{ExternalID: "faq/returns"})
	mustAPIError(t, err, 409, client.CodeDocumentExists)
	other := "Shipping"
	if _, err := c.CreateDocument(ctx, src.ID, client.DocumentRequest{ExternalID: "faq/shipping", Title: &other}); err != nil {
		t.Fatal(err)
	}

	got, err := c.GetDocument(ctx, src.ID, doc.ID)
	if err != nil || got.Fingerprint != doc.Fingerprint || got.Attributes["lang"] != "en" {
		t.Fatalf("get: %+v %v", got, err)
	}
	page, err := c.ListDocuments(ctx, src.ID, client.ListDocumentsParams{Search: "RETURN"})
	if err != nil || page.Total != 1 || page.Items[0].ExternalID != "faq/returns" {
		t.Fatalf("search: %+v %v", page, err)
	}
	page, err = c.ListDocuments(ctx, src.ID, client.ListDocumentsParams{PageParams: client.PageParams{Size: 1}, Status: state.DocPending})
	if err != nil || page.Total != 2 || len(page.Items) != 1 {
		t.Fatalf("list: %+v %v", page, err)
	}

	ct, err := c.GetDocumentContent(ctx, src.ID, doc.ID, client.ContentParams{})
	if err != nil {
		t.Fatal(err)
	}
	_ = ct.Body.Close()
	if ct.ContentType != "text/markdown" || ct.Size != int64(len(content)) {
		t.Fatalf("content: %+v", ct)
	}
	b, typ, err := c.ReadDocumentContent(ctx, src.ID, doc.ID, client.ContentParams{Raw: true}, 1<<20)
	if err != nil || string(b) != content || typ != "text/markdown" {
		t.Fatalf("raw content: %q %q %v", b, typ, err)
	}
	if _, _, err := c.ReadDocumentContent(ctx, src.ID, doc.ID, client.ContentParams{}, 5); err == nil {
		t.Fatal("content over the limit: no error")
	}
	_, err = c.GetDocumentContent(ctx, src.ID, state.DocID("faq/shipping"), client.ContentParams{})
	mustAPIError(t, err, 404, client.CodeNotFound)

	newTitle := "Returns policy"
	upd, err := c.UpdateDocument(ctx, src.ID, doc.ID, client.DocumentRequest{Title: &newTitle})
	if err != nil || upd.Title != newTitle || upd.ContentID != doc.ContentID || upd.Fingerprint == doc.Fingerprint {
		t.Fatalf("update: %+v %v", upd, err)
	}
	_, err = c.UpdateDocument(ctx, src.ID, doc.ID, client.DocumentRequest{ExternalID: "moved"})
	if e := mustAPIError(t, err, 422, client.CodeValidation); e.Detail[0].Field() != "body.external_id" {
		t.Fatalf("detail: %+v", e.Detail)
	}

	st, err := c.SetDocumentStatus(ctx, src.ID, doc.ID, client.DocumentStatusRequest{Status: state.DocFailed, Error: "mapping conflict", Fingerprint: upd.Fingerprint})
	if err != nil || st.Status != state.DocFailed || st.Error != "mapping conflict" || st.StatusAt == nil {
		t.Fatalf("status: %+v %v", st, err)
	}
	_, err = c.SetDocumentStatus(ctx, src.ID, doc.ID, client.DocumentStatusRequest{Status: state.DocIndexed, Fingerprint: doc.Fingerprint})
	mustAPIError(t, err, 409, client.CodeStale)

	// Synthetic documents cannot be re-fetched one by one.
	_, err = c.SyncDocument(ctx, src.ID, doc.ID)
	mustAPIError(t, err, 409, client.CodeNotSupported)

	if err := c.DeleteDocument(ctx, src.ID, doc.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDocument(ctx, src.ID, doc.ID)
	mustAPIError(t, err, 404, client.CodeNotFound)
}

func TestDocumentSync(t *testing.T) {
	s := start(t)
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "files", Connector: "filesystem", Config: map[string]string{"root": dir}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, c, run.ID, "the end", terminal)
	docID := state.DocID("a.txt")
	run, err = c.SyncDocument(ctx, src.ID, docID)
	if err != nil || run.Trigger != "document" || run.Document != "a.txt" {
		t.Fatalf("sync document: %+v %v", run, err)
	}
	// The re-fetch is quick; stopping it either catches it (cancel
	// requested, or the run completed in the meantime) or finds it over.
	if stopped, err := c.StopDocumentSync(ctx, src.ID, docID); err == nil {
		if stopped.ID != run.ID || (!stopped.CancelRequested && stopped.Status != state.RunCompleted) {
			t.Fatalf("stop: %+v", stopped)
		}
	} else {
		mustAPIError(t, err, 409, client.CodeRunNotActive)
	}
	waitRun(t, c, run.ID, "the end", terminal)
	_, err = c.StopDocumentSync(ctx, src.ID, docID)
	mustAPIError(t, err, 409, client.CodeRunNotActive)
}

func TestRunsCancelAndErrors(t *testing.T) {
	s := start(t)
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()

	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "flaky", Connector: "flaky", Config: map[string]int{"count": 2, "errors": 3}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, c, run.ID, "the end", terminal)
	errs, err := c.ListRunErrors(ctx, run.ID, client.PageParams{Page: 1, Size: 2})
	if err != nil || errs.Total != 3 || len(errs.Items) != 2 || errs.Items[0].ExternalID != "bad-0" || errs.Items[0].Error == "" || errs.Items[0].Attempt != 1 {
		t.Fatalf("run errors: %+v %v", errs, err)
	}

	slow, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "slow", Connector: "synthetic", Config: map[string]any{"count": 100000, "pace": "5ms"}})
	if err != nil {
		t.Fatal(err)
	}
	run, err = c.SyncSource(ctx, slow.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, c, run.ID, "running", func(r *client.Run) bool { return r.Status == state.RunRunning })
	_, err = c.SyncSource(ctx, slow.ID, client.SyncRequest{})
	if e := mustAPIError(t, err, 409, client.CodeRunActive); e.RunID != run.ID {
		t.Fatalf("run_active names %q, want %s", e.RunID, run.ID)
	}
	err = c.DeleteSource(ctx, slow.ID)
	mustAPIError(t, err, 409, client.CodeRunActive)
	cancelled, err := c.CancelRun(ctx, run.ID)
	if err != nil || !cancelled.CancelRequested {
		t.Fatalf("cancel: %+v %v", cancelled, err)
	}
	if end := waitRun(t, c, run.ID, "the end", terminal); end.Status != state.RunCancelled {
		t.Fatalf("cancelled run: %+v", end)
	}
	_, err = c.CancelRun(ctx, run.ID)
	if e := mustAPIError(t, err, 409, client.CodeRunNotActive); e.RunID != run.ID {
		t.Fatalf("run_not_active names %q", e.RunID)
	}
	_, err = c.ListRuns(ctx, client.ListRunsParams{Status: "sideways", PageParams: client.PageParams{Page: -1}})
	e := mustAPIError(t, err, 422, client.CodeValidation)
	if len(e.Detail) != 1 || e.Detail[0].Field() != "query.page" {
		t.Fatalf("paging is checked first: %+v", e.Detail)
	}
}

func TestValidationDetails(t *testing.T) {
	s := start(t)
	c := newClient(t, s.URL, client.Config{})
	_, err := c.CreateSource(t.Context(), client.CreateSourceRequest{Connector: "synthetic", Config: map[string]any{"count": "many", "bogus": 1}})
	e := mustAPIError(t, err, 422, client.CodeValidation)
	fields := map[string]string{}
	for _, d := range e.Detail {
		fields[d.Field()] = d.Type
	}
	if fields["body.name"] != "missing" || fields["body.config.bogus"] == "" || fields["body.config.count"] == "" || len(e.Detail) != 3 {
		t.Fatalf("details: %+v", e.Detail)
	}
	if !strings.Contains(e.Error(), "body.name: Field required") || !client.HasCode(err, client.CodeValidation) || client.StatusOf(err) != 422 {
		t.Fatalf("error text: %v", e)
	}
	_, err = c.ListSources(t.Context(), client.PageParams{Page: 0, Size: 1001})
	if e := mustAPIError(t, err, 422, client.CodeValidation); e.Detail[0].Field() != "query.size" || e.Detail[0].Type != "range" {
		t.Fatalf("size: %+v", e.Detail)
	}
}

// Tokens: 401 without or with a wrong token, 403 below the route's role.
func TestAuth(t *testing.T) {
	const adminTok, viewerTok = "admin-token-0123456789", "viewer-token-0123456789"
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(adminTok+" admin\n"+viewerTok+" viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := api.LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, api.WithTokens(tokens))
	ctx := t.Context()

	_, err = newClient(t, s.URL, client.Config{}).ListSources(ctx, client.PageParams{})
	mustAPIError(t, err, 401, client.CodeUnauthorized)
	_, err = newClient(t, s.URL, client.Config{Token: "wrong-token-0123456789"}).ListSources(ctx, client.PageParams{})
	mustAPIError(t, err, 401, client.CodeUnauthorized)
	if _, err := newClient(t, s.URL, client.Config{}).Health(ctx); err != nil {
		t.Fatalf("health is open: %v", err)
	}

	viewer := newClient(t, s.URL, client.Config{Token: viewerTok})
	if _, err := viewer.ListSources(ctx, client.PageParams{}); err != nil {
		t.Fatal(err)
	}
	_, err = viewer.CreateSource(ctx, client.CreateSourceRequest{Name: "x", Connector: "synthetic", Config: map[string]int{"count": 1}})
	e := mustAPIError(t, err, 403, client.CodeForbidden)
	if strings.Contains(e.Error(), viewerTok) {
		t.Fatal("the token is in the error")
	}
	_, err = viewer.SetLogLevel(ctx, client.LogLevelDebug)
	mustAPIError(t, err, 403, client.CodeForbidden)

	admin := newClient(t, s.URL, client.Config{Token: adminTok})
	src, err := admin.CreateSource(ctx, client.CreateSourceRequest{Name: "x", Connector: "synthetic", Config: map[string]int{"count": 1}})
	if err != nil {
		t.Fatal(err)
	}
	// Streams carry the token too.
	_, err = newClient(t, s.URL, client.Config{}).Events(ctx, client.EventsParams{SourceID: src.ID})
	mustAPIError(t, err, 401, client.CodeUnauthorized)
	st, err := viewer.Events(ctx, client.EventsParams{SourceID: src.ID})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
}

// A manager without a changeable log level says so.
func TestLogLevelNotSupported(t *testing.T) {
	s := start(t)
	_, err := newClient(t, s.URL, client.Config{}).GetLogLevel(t.Context())
	mustAPIError(t, err, 409, client.CodeNotSupported)
}

// Answers in neither documented shape keep their status; the body's start
// is the message.
func TestForeignErrors(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/sources":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>" + strings.Repeat("bad gateway ", 100) + "</html>"))
		case "/v1/runs":
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"detail":"page must be positive"}`))
		case "/v1/workers":
			_, _ = w.Write([]byte(`{"items":[`)) // 200, cut short
		}
	}))
	t.Cleanup(proxy.Close)
	c := newClient(t, proxy.URL, client.Config{})
	_, err := c.ListSources(t.Context(), client.PageParams{})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "" || !strings.HasPrefix(e.Message, "Bad Gateway: <html>bad gateway") || len(e.Message) > 300 {
		t.Fatalf("502: %#v", err)
	}
	_, err = c.ListRuns(t.Context(), client.ListRunsParams{})
	if !errors.As(err, &e) || e.Status != 422 || e.Code != client.CodeValidation || e.Message != "page must be positive" {
		t.Fatalf("422 with a string detail: %#v", err)
	}
	if _, err = c.ListWorkers(t.Context()); err == nil || errors.As(err, &e) {
		t.Fatalf("a broken answer: %v", err)
	}
}

// An unhealthy manager answers 503 with its report: Health returns both.
func TestHealthUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"jetstream":{"error":"context deadline exceeded","ok":false},
 "nats":{"connected":false,"status":"RECONNECTING","url":"nats://10.0.0.5:4222"},
 "status":"unavailable","version":"0.1.0-dev"}`))
	}))
	t.Cleanup(srv.Close)
	h, err := newClient(t, srv.URL, client.Config{}).Health(t.Context())
	e := mustAPIError(t, err, 503, client.CodeUnavailable)
	if h == nil || h.Status != "unavailable" || h.NATS.Connected || h.NATS.Status != "RECONNECTING" || !strings.Contains(e.Message, "context deadline exceeded") {
		t.Fatalf("health %+v, error %v", h, e)
	}
}
