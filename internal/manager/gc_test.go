package manager

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Content no document names is collected, with its index entry; content
// a document names (as text or as raw bytes) stays, shared or not.
func TestCollectContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{ContentGCInterval: -1, ContentGCGrace: time.Nanosecond, ContentGCSettle: time.Millisecond})
	e.register(fakeManifest)
	cs := content.New(e.m.js, e.m.content.Objects(), e.m.store.Content)
	put := func(s string) string {
		id, err := cs.Put(e.ctx, []byte(s), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	text, raw, shared, orphan := put("text"), put("<p>text</p>"), put("shared"), put("orphan")
	a, b := doc("a"), doc("b")
	a.ContentID, a.Metadata.Extra = text, map[string]any{RawContentKey: raw}
	b.ContentID = shared
	done := &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}
	one, two := e.createSource("one"), e.createSource("two")
	e.fullRun(one, done, a, b)
	c := doc("c")
	c.ContentID = shared
	e.fullRun(two, done, c)

	res, err := e.m.CollectContent(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 4 || res.Deleted != 1 || res.Kept != 0 {
		t.Fatalf("first pass: %+v", res)
	}
	if _, err := cs.Open(e.ctx, orphan); err == nil {
		t.Fatal("orphan content still readable")
	}
	if _, _, err := e.m.store.Content.Get(e.ctx, content.Digest([]byte("orphan"))); err == nil {
		t.Fatal("orphan's index entry left behind")
	}
	// Storing the same bytes again stores a new object.
	if again := put("orphan"); again == orphan {
		t.Fatal("index still names the collected object")
	}

	// Deleting source one releases its content: what only it named goes
	// at once, whatever the grace; what source two shares stays.
	e.m.cfg.ContentGCGrace = time.Hour
	if err := e.m.DeleteSource(e.ctx, one.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.m.CollectContent(e.ctx, map[string]struct{}{text: {}, raw: {}, shared: {}})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{text: false, raw: false, shared: true} {
		if _, err := cs.Open(e.ctx, id); (err == nil) != want {
			t.Errorf("content %s readable %v, want %v", id, err == nil, want)
		}
	}
	if _, err := e.m.GetDocument(e.ctx, two.ID, state.DocID("c")); err != nil {
		t.Fatal(err)
	}
}

// Deleting a source starts a collection of its content at once.
func TestDeleteSourceCollectsContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{ContentGCSettle: time.Millisecond})
	e.register(fakeManifest)
	cs := content.New(e.m.js, e.m.content.Objects(), e.m.store.Content)
	id, err := cs.Put(e.ctx, []byte("only here"), "text/plain")
	if err != nil {
		t.Fatal(err)
	}
	d := doc("a")
	d.ContentID = id
	src := e.createSource("s")
	e.fullRun(src, &events.RunCompleted{Checkpoint: json.RawMessage(`{}`)}, d)
	if err := e.m.DeleteSource(e.ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		_, err := cs.Open(e.ctx, id)
		return err != nil
	}, "the deleted source's content collected")
}
