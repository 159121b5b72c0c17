package manager

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/secret"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// asValidation fails the test unless err is a *ValidationError, and returns
// its details keyed by "loc|type".
func asValidation(t *testing.T, err error) map[string]Detail {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	var nf *NotFoundError
	if errors.As(err, &nf) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("validation error %v also matches another class", err)
	}
	out := map[string]Detail{}
	for _, d := range ve.Details {
		out[detailKey(d.Loc, d.Type)] = d
	}
	return out
}

func detailKey(loc []any, typ string) string {
	parts := make([]string, len(loc))
	for i, l := range loc {
		parts[i] = fmt.Sprint(l)
	}
	return strings.Join(parts, ".") + "|" + typ
}

func wantDetails(t *testing.T, got map[string]Detail, want ...string) {
	t.Helper()
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("missing detail %q; got %v", w, keys)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d details %v, want %d %v", len(got), keys, len(want), want)
	}
}

func asNotFound(t *testing.T, err error, kind string) {
	t.Helper()
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v (%T) is not a *NotFoundError", err, err)
	}
	if nf.Kind != kind {
		t.Fatalf("not found kind %q, want %q", nf.Kind, kind)
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		t.Fatalf("not-found error %v is also a validation error", err)
	}
}

func TestCreateSourceValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)

	cases := []struct {
		name string
		in   CreateSource
		want []string
	}{
		{"name and connector missing", CreateSource{Name: "  "},
			[]string{"body.name|missing", "body.connector|missing"}},
		{"name too long", CreateSource{Name: strings.Repeat("é", MaxNameLen+1), Connector: "fake", Config: json.RawMessage(`{"root":"/x"}`)},
			[]string{"body.name|string_too_long"}},
		{"unknown connector", CreateSource{Name: "n", Connector: "nope"},
			[]string{"body.connector|unknown_connector"}},
		{"connector name that is no token", CreateSource{Name: "n", Connector: "no such/connector"},
			[]string{"body.connector|unknown_connector"}},
		{"config not an object", CreateSource{Name: "n", Connector: "fake", Config: json.RawMessage(`["root"]`)},
			[]string{"body.config|dict_type"}},
		{"config not JSON", CreateSource{Name: "n", Connector: "fake", Config: json.RawMessage(`{"root":`)},
			[]string{"body.config|dict_type"}},
		{"config missing defaults to {} and fails required", CreateSource{Name: "n", Connector: "fake"},
			[]string{"body.config.root|missing"}},
		{"config fails the schema in three ways", CreateSource{Name: "n", Connector: "fake",
			Config: json.RawMessage(`{"depth":-1,"extra":true}`)},
			[]string{"body.config.root|missing", "body.config.extra|extra_forbidden", "body.config.depth|minimum"}},
		{"config of the wrong type", CreateSource{Name: "n", Connector: "fake", Config: json.RawMessage(`{"root":7}`)},
			[]string{"body.config.root|type"}},
		{"credentials not an object", CreateSource{Name: "n", Connector: "fake", Config: json.RawMessage(`{"root":"/x"}`),
			Credentials: json.RawMessage(`"secret"`)},
			[]string{"body.credentials|dict_type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, err := e.m.CreateSource(e.ctx, tc.in)
			if src != nil {
				t.Fatalf("source created: %+v", src)
			}
			wantDetails(t, asValidation(t, err), tc.want...)
		})
	}
	// Nothing was stored by the rejected requests.
	srcs, err := e.m.ListSources(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 0 {
		t.Fatalf("rejected creates stored %d sources", len(srcs))
	}
	if creds, err := e.m.Store().Credentials.List(e.ctx); err != nil || len(creds) != 0 {
		t.Fatalf("rejected creates stored credentials: %d, %v", len(creds), err)
	}
}

func TestCreateSourceStoresNormalisedRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src, err := e.m.CreateSource(e.ctx, CreateSource{
		Name: "  notes  ", Connector: "fake",
		Config:      json.RawMessage("{ \"root\" : \"/data\",\n \"depth\": 2 }"),
		Credentials: json.RawMessage(`{ "token": "t" }`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name != "notes" || string(src.Config) != `{"root":"/data","depth":2}` || !src.HasCredentials || !events.ValidToken(src.ID) {
		t.Fatalf("source %+v", src)
	}
	got, err := e.m.GetSource(e.ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, src) {
		t.Fatalf("stored %+v, returned %+v", got, src)
	}
	creds, _, err := e.m.Store().Credentials.Get(e.ctx, src.ID)
	if err != nil || creds.Data != nil || bytes.Contains(creds.Sealed, []byte("token")) {
		t.Fatalf("credentials stored in clear: %+v, %v", creds, err)
	}
	if clear, err := e.m.unseal(src.ID, creds); err != nil || string(clear) != `{"token":"t"}` {
		t.Fatalf("credentials %s, %v", clear, err)
	}
	// A JSON null for credentials means none.
	src2, err := e.m.CreateSource(e.ctx, CreateSource{Name: "n2", Connector: "fake",
		Config: json.RawMessage(`{"root":"/x"}`), Credentials: json.RawMessage(` null `)})
	if err != nil || src2.HasCredentials {
		t.Fatalf("null credentials: %+v, %v", src2, err)
	}
}

func TestConnectorSchemaBrokenOrChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	broken := connector.Manifest{Name: "broken", Version: "1.0.0", ConfigSchema: json.RawMessage(`{"type": 12}`)}
	e.register(broken)
	_, err := e.m.CreateSource(e.ctx, CreateSource{Name: "n", Connector: "broken", Config: json.RawMessage(`{}`)})
	wantDetails(t, asValidation(t, err), "body.connector|connector_schema_invalid")

	// No schema accepts any object, and only objects.
	e.register(connector.Manifest{Name: "free", Version: "1.0.0"})
	if _, err := e.m.CreateSource(e.ctx, CreateSource{Name: "n", Connector: "free", Config: json.RawMessage(`{"anything":[1,2]}`)}); err != nil {
		t.Fatalf("schema-less connector rejected an object: %v", err)
	}
	_, err = e.m.CreateSource(e.ctx, CreateSource{Name: "n", Connector: "free", Config: json.RawMessage(`42`)})
	wantDetails(t, asValidation(t, err), "body.config|dict_type")

	// A connector re-registered with a new schema is validated against the
	// new one, not a cached compilation of the old.
	e.register(fakeManifest)
	if _, err := e.m.CreateSource(e.ctx, CreateSource{Name: "n", Connector: "fake", Config: json.RawMessage(`{"root":"/x"}`)}); err != nil {
		t.Fatal(err)
	}
	v2 := fakeManifest
	v2.Version = "2.0.0"
	v2.ConfigSchema = json.RawMessage(`{"type":"object","properties":{"path":{"type":"string"}},"required":["path"],"additionalProperties":false}`)
	e.register(v2)
	_, err = e.m.CreateSource(e.ctx, CreateSource{Name: "n", Connector: "fake", Config: json.RawMessage(`{"root":"/x"}`)})
	wantDetails(t, asValidation(t, err), "body.config.path|missing", "body.config.root|extra_forbidden")
}

func TestUpdateSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src, err := e.m.CreateSource(e.ctx, CreateSource{Name: "s", Connector: "fake",
		Config: json.RawMessage(`{"root":"/a"}`), Credentials: json.RawMessage(`{"k":"v"}`)})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("not found", func(t *testing.T) {
		name := "x"
		_, err := e.m.UpdateSource(e.ctx, "01NOSUCHSOURCE0000000000000", SourcePatch{Name: &name})
		asNotFound(t, err, "source")
		_, err = e.m.UpdateSource(e.ctx, "../../etc", SourcePatch{Name: &name})
		asNotFound(t, err, "source")
	})
	t.Run("validation leaves the source as it was", func(t *testing.T) {
		empty := " "
		_, err := e.m.UpdateSource(e.ctx, src.ID, SourcePatch{
			Name: &empty, Config: json.RawMessage(`{"root":""}`), Credentials: json.RawMessage(`[1]`)})
		wantDetails(t, asValidation(t, err), "body.name|missing", "body.config.root|minLength", "body.credentials|dict_type")
		got, err := e.m.GetSource(e.ctx, src.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, src) {
			t.Fatalf("rejected patch changed the source: %+v", got)
		}
		creds, _, err := e.m.Store().Credentials.Get(e.ctx, src.ID)
		if err != nil {
			t.Fatal(err)
		}
		if clear, err := e.m.unseal(src.ID, creds); err != nil || string(clear) != `{"k":"v"}` {
			t.Fatalf("rejected patch changed credentials: %s, %v", clear, err)
		}
	})
	t.Run("valid patch", func(t *testing.T) {
		name := " renamed "
		got, err := e.m.UpdateSource(e.ctx, src.ID, SourcePatch{Name: &name, Config: json.RawMessage(`{"root":"/b", "depth": 1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "renamed" || string(got.Config) != `{"root":"/b","depth":1}` || !got.HasCredentials || got.CreatedAt != src.CreatedAt {
			t.Fatalf("patched %+v", got)
		}
	})
	t.Run("null credentials remove them", func(t *testing.T) {
		got, err := e.m.UpdateSource(e.ctx, src.ID, SourcePatch{Credentials: json.RawMessage(`null`)})
		if err != nil {
			t.Fatal(err)
		}
		if got.HasCredentials {
			t.Fatal("source still claims credentials")
		}
		if _, _, err := e.m.Store().Credentials.Get(e.ctx, src.ID); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("credentials still stored: %v", err)
		}
	})
}

func TestDeleteSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src, err := e.m.CreateSource(e.ctx, CreateSource{Name: "s", Connector: "fake",
		Config: json.RawMessage(`{"root":"/a"}`), Credentials: json.RawMessage(`{"k":"v"}`)})
	if err != nil {
		t.Fatal(err)
	}
	other := e.createSource("other")
	otherRun := e.trigger(other.ID)

	asNotFound(t, e.m.DeleteSource(e.ctx, "01NOSUCHSOURCE0000000000000"), "source")
	asNotFound(t, e.m.DeleteSource(e.ctx, "not a token"), "source")

	// A finished run with a checkpoint, then an active one.
	run := e.trigger(src.ID)
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w1", Connector: "fake", Mode: events.ModeFull})
	p.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{"pos":1}`), Scanned: 1})
	e.waitRun(run.ID, "run completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	eventually(t, waitTimeout, func() bool { cp, _ := e.checkpoint(src.ID); return cp != nil }, "checkpoint stored")
	active := e.waitTrigger(src.ID)

	err = e.m.DeleteSource(e.ctx, src.ID)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Code != CodeRunActive || ce.RunID != active.ID {
		t.Fatalf("delete with an active run: %v", err)
	}
	if _, err := e.m.CancelRun(e.ctx, active.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.m.DeleteSource(e.ctx, src.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = e.m.GetSource(e.ctx, src.ID)
	asNotFound(t, err, "source")
	for _, id := range []string{run.ID, active.ID} {
		_, err := e.m.GetRun(e.ctx, id)
		asNotFound(t, err, "run")
	}
	if cp, _ := e.checkpoint(src.ID); cp != nil {
		t.Fatalf("checkpoint survived: %+v", cp)
	}
	if _, _, err := e.m.Store().Credentials.Get(e.ctx, src.ID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("credentials survived: %v", err)
	}
	// The other source is untouched.
	if r := e.run(otherRun.ID); r.Status != state.RunQueued {
		t.Fatalf("other source's run: %+v", r)
	}
	_, err = e.m.TriggerSync(e.ctx, src.ID, "", TriggerManual)
	asNotFound(t, err, "source")
}

// waitTrigger triggers a sync once the source's previous run has released it.
func (e *env) waitTrigger(sourceID string) *state.Run {
	e.t.Helper()
	var run *state.Run
	eventually(e.t, waitTimeout, func() bool {
		var err error
		run, err = e.m.TriggerSync(e.ctx, sourceID, "", TriggerManual)
		var ce *ConflictError
		if errors.As(err, &ce) {
			return false
		}
		if err != nil {
			e.t.Fatalf("trigger: %v", err)
		}
		return true
	}, "the source to be free for a new run")
	return run
}

// Credentials reach the sync request in clear, whether sealed or stored
// before sealing; sealed under another key they fail the trigger with a
// clear conflict, never a 500.
func TestCredentialsSealed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{SecretKey: bytes.Repeat([]byte{1}, 32)})
	e.register(fakeManifest)
	src, err := e.m.CreateSource(e.ctx, CreateSource{Name: "s", Connector: "fake", Config: json.RawMessage(`{"root":"/x"}`), Credentials: json.RawMessage(`{"token":"t"}`)})
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ := e.m.store.Credentials.Get(e.ctx, src.ID)
	req, err := e.m.syncRequestFor(e.ctx, src)
	if err != nil || string(req.Credentials) != `{"token":"t"}` {
		t.Fatalf("sync request credentials %s, %v", req.Credentials, err)
	}
	// A record from before sealing.
	if _, err := e.m.store.Credentials.Put(e.ctx, src.ID, &state.Credentials{Data: json.RawMessage(`{"old":1}`)}); err != nil {
		t.Fatal(err)
	}
	if req, err = e.m.syncRequestFor(e.ctx, src); err != nil || string(req.Credentials) != `{"old":1}` {
		t.Fatalf("clear record: %s, %v", req.Credentials, err)
	}
	// Sealed under another key.
	if _, err := e.m.store.Credentials.Put(e.ctx, src.ID, c); err != nil {
		t.Fatal(err)
	}
	other, _ := secret.New(bytes.Repeat([]byte{2}, 32))
	e.m.box = other
	var ce *ConflictError
	if _, err := e.m.TriggerSync(e.ctx, src.ID, "", TriggerManual); !errors.As(err, &ce) || ce.Code != CodeCredentialsUnreadable {
		t.Fatalf("trigger with the wrong key: %v", err)
	}
	if run, _ := e.m.activeRun(e.ctx, src.ID); run != nil {
		t.Fatalf("the failed trigger left run %s active", run.ID)
	}
}

// The sources list is served from memory: what this manager writes shows
// in the very next list, and what others write to the bucket shows once
// the watch delivers it.
func TestListSourcesReadsItsWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	var ids []string
	for i := range 5 {
		src := e.createSource(fmt.Sprintf("s%d", i))
		ids = append(ids, src.ID)
		p, err := e.m.ListSourcesPage(e.ctx, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != i+1 || p.Items[i].ID != src.ID {
			t.Fatalf("after creating %d sources the list holds %d, last %s", i+1, p.Total, p.Items[len(p.Items)-1].ID)
		}
	}
	name := "renamed"
	if _, err := e.m.UpdateSource(e.ctx, ids[1], SourcePatch{Name: &name}); err != nil {
		t.Fatal(err)
	}
	p, err := e.m.ListSourcesPage(e.ctx, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 5 || len(p.Items) != 2 || p.Items[1].Name != "renamed" {
		t.Fatalf("first page of 2 after a rename: total %d, %+v", p.Total, p.Items)
	}
	if err := e.m.DeleteSource(e.ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	p, _ = e.m.ListSourcesPage(e.ctx, 2, 2)
	if p.Total != 4 || len(p.Items) != 2 || p.Items[0].ID != ids[3] || p.Items[1].ID != ids[4] {
		t.Fatalf("second page of 2 after a deletion: total %d, %+v", p.Total, p.Items)
	}
	if p, _ = e.m.ListSourcesPage(e.ctx, 3, 2); p.Total != 4 || len(p.Items) != 0 {
		t.Fatalf("page past the end: %+v", p)
	}
	if _, err := e.m.ListSourcesPage(e.ctx, 0, 2); err == nil {
		t.Fatal("page 0 accepted")
	}

	// A write behind the manager's back (another process, an operator).
	src, rev, err := e.m.Store().Sources.Get(e.ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	src.Name = "from elsewhere"
	if _, err := e.m.Store().Sources.Update(e.ctx, ids[2], src, rev); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		all, _ := e.m.ListSources(e.ctx)
		return len(all) == 4 && all[1].Name == "from elsewhere"
	}, "the watched write in the list")
}
