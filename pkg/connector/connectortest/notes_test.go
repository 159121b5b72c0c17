package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// notes is the test connector of these tests: a source of count notes.
// A full sync emits note-0 … note-(count-1) and one document error per
// "errors", saving a checkpoint after every note; an incremental sync
// starts a new generation: it updates note-0 and deletes the last note.
// Its flags break it in one way each, for the conformance suite's tests.
type notes struct {
	// Manifest breakers.
	noVersion     bool // Validate fails
	badSchema     bool // a schema that does not compile
	looseSchema   bool // a schema that accepts any object
	changingDesc  bool // Manifest changes between calls
	actionsNoExec bool // declares actions without implementing them
	// Sync breakers.
	failFull         bool          // full syncs fail
	failIncremental  bool          // incremental syncs fail
	noCheckpoint     bool          // never leaves a checkpoint
	ignoreCancel     time.Duration // keeps going this long after cancellation
	completeOnCancel bool          // completes when cancelled
	calls            *atomic.Int64 // counts Manifest calls (changingDesc)
}

type notesConfig struct {
	Count  int    `json:"count"`
	Pace   string `json:"pace,omitempty"`
	Errors int    `json:"errors,omitempty"`
	Label  string `json:"label,omitempty"`
}

type notesCheckpoint struct {
	Generation int `json:"generation"`
	Next       int `json:"next,omitempty"`
}

const notesSchema = `{
  "type": "object",
  "required": ["count"],
  "additionalProperties": false,
  "properties": {
    "count": {"type": "integer", "minimum": 0, "maximum": 10000},
    "pace": {"type": "string", "pattern": "^[0-9]+(ms|s)$"},
    "errors": {"type": "integer", "minimum": 0},
    "label": {"type": "string"}
  }
}`

func (n notes) Manifest() connector.Manifest {
	m := connector.Manifest{
		Name: "notes", Version: "1.0.0", Description: "notes for tests",
		SyncModes:    []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(notesSchema),
	}
	switch {
	case n.noVersion:
		m.Version = ""
	case n.badSchema:
		m.ConfigSchema = json.RawMessage(`{"type": 12}`)
	case n.looseSchema:
		m.ConfigSchema = json.RawMessage(`{"type": "object"}`)
	case n.changingDesc:
		m.Description = fmt.Sprintf("call %d", n.calls.Add(1))
	case n.actionsNoExec:
		m.Actions = []connector.ActionDefinition{{Name: "purge", Description: "purge"}}
	}
	return m
}

func (n notes) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg notesConfig
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	var pace time.Duration
	if cfg.Pace != "" {
		var err error
		if pace, err = time.ParseDuration(cfg.Pace); err != nil {
			return err
		}
	}
	var cp notesCheckpoint
	had, err := req.DecodeCheckpoint(&cp)
	if err != nil {
		return err
	}
	checkpoint := func(c notesCheckpoint) any {
		if n.noCheckpoint {
			return nil
		}
		return c
	}
	if req.Mode == connector.Incremental && had {
		if n.failIncremental {
			return errors.New("incremental syncs are broken")
		}
		gen := cp.Generation + 1
		id, err := sc.Content().Save(ctx, fmt.Sprintf("note 0, generation %d", gen), "text/plain")
		if err != nil {
			return err
		}
		if err := sc.EmitUpdated(ctx, connector.Document{ExternalID: "note-0", Title: "Note 0", ContentID: id}); err != nil {
			return err
		}
		if cfg.Count > 1 {
			if err := sc.EmitDeleted(ctx, fmt.Sprintf("note-%d", cfg.Count-1)); err != nil {
				return err
			}
		}
		sc.IncrementScanned(1)
		return sc.Complete(ctx, checkpoint(notesCheckpoint{Generation: gen}))
	}
	if n.failFull {
		return errors.New("full syncs are broken")
	}
	sc.SetTotal(cfg.Count)
	for i := range cfg.Errors {
		if err := sc.EmitError(ctx, fmt.Sprintf("broken-%d", i), errors.New("unreadable")); err != nil {
			return err
		}
	}
	for i := 0; i < cfg.Count; i++ {
		if pace > 0 {
			if n.ignoreCancel > 0 || n.completeOnCancel {
				time.Sleep(pace)
			} else {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(pace):
				}
			}
			if ctx.Err() != nil {
				switch {
				case n.completeOnCancel:
					return sc.Complete(context.WithoutCancel(ctx), nil)
				case n.ignoreCancel > 0:
					time.Sleep(n.ignoreCancel)
					return nil
				}
			}
		}
		sc.IncrementScanned(1)
		id, err := sc.Content().Save(ctx, fmt.Sprintf("note %d, generation %d%s", i, cp.Generation, cfg.Label), "text/plain")
		if err != nil {
			return err
		}
		if err := sc.Emit(ctx, connector.Document{ExternalID: fmt.Sprintf("note-%d", i), Title: fmt.Sprintf("Note %d", i), ContentID: id}); err != nil {
			return err
		}
		if c := checkpoint(notesCheckpoint{Generation: cp.Generation, Next: i + 1}); c != nil && i+1 < cfg.Count {
			if err := sc.SaveCheckpoint(ctx, c); err != nil {
				return err
			}
		}
	}
	return sc.Complete(ctx, checkpoint(notesCheckpoint{Generation: cp.Generation}))
}
