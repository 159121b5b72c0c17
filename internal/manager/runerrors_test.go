package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

func TestRunErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	e.register(fakeManifest)
	src := e.createSource("s")
	run, err := e.m.TriggerSync(e.ctx, src.ID, events.ModeFull, TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	a := e.attempt(run, 1)
	a.pub(&events.RunStarted{WorkerID: "w", Connector: "fake", Mode: events.ModeFull})
	for i := range 7 {
		a.pub(&events.DocumentError{ExternalID: fmt.Sprintf("e%d", i), Error: "unreadable"})
	}
	a.pub(&events.RunCompleted{Checkpoint: json.RawMessage(`{}`)})
	e.waitRun(run.ID, "ended", func(r *state.Run) bool { return r.Status.Terminal() })

	items, total, err := e.m.RunErrors(e.ctx, run.ID, 2, 3)
	if err != nil || total != 7 || len(items) != 3 || items[0].ExternalID != "e3" || items[2].ExternalID != "e5" || items[0].Attempt != 1 {
		t.Fatalf("page 2: %+v, %d, %v", items, total, err)
	}
	if items, total, _ = e.m.RunErrors(e.ctx, run.ID, 3, 3); total != 7 || len(items) != 1 || items[0].ExternalID != "e6" {
		t.Fatalf("page 3: %+v", items)
	}
	if items, _, _ = e.m.RunErrors(e.ctx, run.ID, 9, 3); len(items) != 0 {
		t.Fatalf("page 9: %+v", items)
	}
	var nf *NotFoundError
	if _, _, err := e.m.RunErrors(e.ctx, "01NOSUCHRUN", 1, 3); !errors.As(err, &nf) {
		t.Fatalf("unknown run: %v", err)
	}
}
