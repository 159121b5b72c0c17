package state_test

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

func TestRunStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status   state.RunStatus
		valid    bool
		terminal bool
	}{
		{state.RunQueued, true, false},
		{state.RunRunning, true, false},
		{state.RunCompleted, true, true},
		{state.RunFailed, true, true},
		{state.RunCancelled, true, true},
		{"", false, false},
		{"Running", false, false},
		{"canceled", false, false},
		{"done", false, false},
	}
	for _, tc := range cases {
		t.Run(string(tc.status), func(t *testing.T) {
			if got := tc.status.Valid(); got != tc.valid {
				t.Errorf("%q.Valid() = %v, want %v", tc.status, got, tc.valid)
			}
			if got := tc.status.Terminal(); got != tc.terminal {
				t.Errorf("%q.Terminal() = %v, want %v", tc.status, got, tc.terminal)
			}
		})
	}
}

// jsonKeys returns the top-level keys of v encoded as JSON.
func jsonKeys(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return slices.Sorted(maps.Keys(m))
}

// roundTrip encodes in, decodes it into a fresh value of the same type and
// checks both are equal.
func roundTrip[T any](t *testing.T, in *T) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatalf("marshal %T: %v", in, err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("unmarshal %T from %s: %v", in, b, err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("%T round trip:\n in  %+v\n out %+v\n json %s", in, in, out, b)
	}
}

// The records' JSON field names are what `nats kv get` shows and what other
// languages read: they are part of the contract.
func TestRecordJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	later := at.Add(time.Minute)

	fullRun := &state.Run{
		ID: "run1", SourceID: "src1", Connector: "filesystem",
		Mode: events.ModeIncremental, Status: state.RunCompleted, Trigger: "manual",
		Attempt: 2, WorkerID: "w1",
		Counters: state.Counters{
			DocumentsScanned: 10, DocumentsEmitted: 9, DocumentsUpdated: 3,
			DocumentsDeleted: 1, DocumentsErrors: 1,
		},
		Error: "boom", CancelRequested: true,
		CreatedAt: at, StartedAt: &at, FinishedAt: &later, UpdatedAt: later,
		LastEventSeq: 77, ScannedBase: 4, RequestID: "req1", Dispatched: true,
	}
	cases := []struct {
		name string
		v    any
		keys []string
	}{
		{
			name: "queued run omits what is not yet known",
			v:    &state.Run{ID: "run1", SourceID: "src1", Mode: events.ModeFull, Status: state.RunQueued, CreatedAt: at, UpdatedAt: at},
			keys: []string{
				"attempt", "connector", "created_at",
				"documents_changed", "documents_deleted", "documents_emitted", "documents_errors", "documents_new", "documents_scanned", "documents_unchanged", "documents_updated",
				"id", "mode", "source_id", "status", "trigger", "updated_at",
			},
		},
		{
			name: "finished run, counters inline",
			v:    fullRun,
			keys: []string{
				"attempt", "cancel_requested", "connector", "created_at", "dispatched",
				"documents_changed", "documents_deleted", "documents_emitted", "documents_errors", "documents_new", "documents_scanned", "documents_unchanged", "documents_updated",
				"error", "finished_at", "id", "last_event_seq", "mode", "request_id", "scanned_base",
				"source_id", "started_at", "status", "trigger", "updated_at", "worker_id",
			},
		},
		{
			name: "source without a run",
			v:    &state.Source{ID: "src1", Name: "notes", Connector: "filesystem", Config: json.RawMessage(`{}`)},
			keys: []string{"config", "connector", "created_at", "has_credentials", "id", "name", "schedule", "updated_at"},
		},
		{
			name: "source with a run",
			v:    &state.Source{ID: "src1", Config: json.RawMessage(`{}`), LastRunID: "run1"},
			keys: []string{"config", "connector", "created_at", "has_credentials", "id", "last_run_id", "name", "schedule", "updated_at"},
		},
		{"credentials", &state.Credentials{Data: json.RawMessage(`{"token":"t"}`)}, []string{"data"}},
		{"active", &state.Active{RunID: "run1", CreatedAt: at}, []string{"created_at", "run_id"}},
		{
			"checkpoint",
			&state.Checkpoint{SourceID: "src1", RunID: "run1", Attempt: 1, Checkpoint: json.RawMessage(`{"cursor":"c"}`)},
			[]string{"attempt", "checkpoint", "final", "run_id", "source_id", "updated_at"},
		},
		{
			"connector",
			&state.ConnectorInfo{Manifest: json.RawMessage(`{}`), WorkerID: "w1"},
			[]string{"manifest", "registered_at", "worker_id"},
		},
		{
			"worker",
			&state.Worker{ID: "w1"},
			[]string{"active_runs", "concurrency", "connectors", "heartbeat_at", "host", "id", "pid", "started_at", "version"},
		},
		{
			"lease",
			&state.Lease{RunID: "run1", WorkerID: "w1"},
			[]string{"acquired_at", "attempt", "refreshed_at", "run_id", "worker_id"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := jsonKeys(t, tc.v); !slices.Equal(got, tc.keys) {
				t.Errorf("JSON keys:\n got  %v\n want %v", got, tc.keys)
			}
		})
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	later := at.Add(90 * time.Second)
	t.Run("source", func(t *testing.T) {
		roundTrip(t, &state.Source{
			ID: "src1", Name: "notes", Connector: "filesystem",
			Config: json.RawMessage(`{"root":"/tmp/notes","depth":3}`), HasCredentials: true,
			CreatedAt: at, UpdatedAt: later, LastRunID: "run9",
		})
	})
	t.Run("credentials", func(t *testing.T) {
		roundTrip(t, &state.Credentials{Data: json.RawMessage(`{"token":"s3cr3t"}`)})
	})
	t.Run("run", func(t *testing.T) {
		roundTrip(t, &state.Run{
			ID: "run1", SourceID: "src1", Connector: "synthetic", Mode: events.ModeFull,
			Status: state.RunFailed, Trigger: "retry", Attempt: 3, WorkerID: "w2",
			Counters: state.Counters{DocumentsScanned: 1 << 40, DocumentsErrors: 2},
			Error:    "connector: permanent", CreatedAt: at, StartedAt: &at, FinishedAt: &later,
			UpdatedAt: later, LastEventSeq: 1<<63 + 5, ScannedBase: 8, RequestID: "req", Dispatched: true,
		})
	})
	t.Run("queued run", func(t *testing.T) {
		roundTrip(t, &state.Run{ID: "run2", Status: state.RunQueued, CreatedAt: at, UpdatedAt: at})
	})
	t.Run("active", func(t *testing.T) {
		roundTrip(t, &state.Active{RunID: "run1", CreatedAt: at})
	})
	t.Run("checkpoint", func(t *testing.T) {
		roundTrip(t, &state.Checkpoint{
			SourceID: "src1", RunID: "run1", Attempt: 2, Final: true,
			Checkpoint: json.RawMessage(`{"files":{"a.txt":"2025-01-01T00:00:00Z"}}`), UpdatedAt: at,
		})
	})
	t.Run("connector", func(t *testing.T) {
		roundTrip(t, &state.ConnectorInfo{Manifest: json.RawMessage(`{"name":"filesystem"}`), RegisteredAt: at, WorkerID: "w1"})
	})
	t.Run("worker", func(t *testing.T) {
		roundTrip(t, &state.Worker{
			ID: "w1", Host: "h", PID: 4242, Version: "v1.2.3",
			Connectors: []string{"filesystem", "synthetic"}, Concurrency: 4,
			ActiveRuns: []string{"run1"}, StartedAt: at, HeartbeatAt: later,
		})
	})
	t.Run("lease", func(t *testing.T) {
		roundTrip(t, &state.Lease{RunID: "run1", WorkerID: "w1", Attempt: 1, AcquiredAt: at, RefreshedAt: later})
	})
}

// A record survives a trip through its table as it went in: nothing is lost
// between the typed record, the KV bytes and back.
func TestRecordThroughTable(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	in := &state.Run{
		ID: "run1", SourceID: "src1", Connector: "filesystem", Mode: events.ModeIncremental,
		Status: state.RunRunning, Trigger: "schedule", Attempt: 1, WorkerID: "w1",
		Counters:  state.Counters{DocumentsScanned: 3, DocumentsEmitted: 2},
		CreatedAt: at, StartedAt: &at, UpdatedAt: at, LastEventSeq: 12, RequestID: "req1", Dispatched: true,
	}
	if _, err := s.Runs.Create(ctx, in.ID, in); err != nil {
		t.Fatalf("Create: %v", err)
	}
	out, _, err := s.Runs.Get(ctx, in.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("through the table:\n in  %+v\n out %+v", in, out)
	}
	// The stored bytes are the record's JSON, readable by other tools.
	e, err := s.Runs.KV().Get(ctx, in.ID)
	if err != nil {
		t.Fatalf("raw Get: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Value(), &raw); err != nil {
		t.Fatalf("stored value is not JSON: %v", err)
	}
	if raw["status"] != "running" || raw["documents_scanned"] != float64(3) || raw["mode"] != "incremental" {
		t.Errorf("stored JSON = %v", raw)
	}
}
