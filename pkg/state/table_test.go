package state_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/state"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test context done waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestGetMissing(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	v, rev, err := s.Sources.Get(t.Context(), "nope")
	if !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
	}
	if v != nil || rev != 0 {
		t.Errorf("Get missing returned %v, rev %d; want nil, 0", v, rev)
	}
	for _, want := range []string{"tributary_sources", `"nope"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestCreateGet(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	in := &state.Source{
		ID: "src1", Name: "notes", Connector: "filesystem",
		Config:    json.RawMessage(`{"root":"/tmp/notes"}`),
		CreatedAt: at, UpdatedAt: at,
	}
	rev, err := s.Sources.Create(ctx, "src1", in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if rev == 0 {
		t.Fatal("Create returned revision 0")
	}
	got, grev, err := s.Sources.Get(ctx, "src1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if grev != rev {
		t.Errorf("Get revision = %d, want %d", grev, rev)
	}
	if got.ID != in.ID || got.Name != in.Name || got.Connector != in.Connector ||
		string(got.Config) != string(in.Config) || !got.CreatedAt.Equal(at) || !got.UpdatedAt.Equal(at) {
		t.Errorf("Get = %+v, want %+v", got, in)
	}
}

func TestCreateTwiceFailsWithErrExists(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	rev, err := s.Active.Create(ctx, "src1", &state.Active{RunID: "run1"})
	if err != nil {
		t.Fatalf("first Create: %v", err)
	}
	_, err = s.Active.Create(ctx, "src1", &state.Active{RunID: "run2"})
	if !errors.Is(err, state.ErrExists) {
		t.Fatalf("second Create: err = %v, want ErrExists", err)
	}
	if errors.Is(err, state.ErrConflict) || errors.Is(err, state.ErrNotFound) {
		t.Errorf("second Create error %v matches another sentinel", err)
	}
	// The first record is untouched.
	got, grev, err := s.Active.Get(ctx, "src1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.RunID != "run1" || grev != rev {
		t.Errorf("after failed Create: %+v rev %d, want run1 rev %d", got, grev, rev)
	}
}

// Concurrent creators of one key: exactly one wins (the one-active-run-per-
// source guard relies on this).
func TestCreateRaceHasOneWinner(t *testing.T) {
	t.Parallel()
	s, n := openStore(t, state.Config{})
	const N = 16
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		wins   []string
		others []error
	)
	for i := range N {
		_, js := n.Connect(t)
		st, err := state.Bind(t.Context(), js)
		if err != nil {
			t.Fatalf("Bind: %v", err)
		}
		wg.Go(func() {
			id := fmt.Sprintf("run%d", i)
			_, err := st.Active.Create(t.Context(), "src1", &state.Active{RunID: id})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins = append(wins, id)
			} else {
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d creators won (%v), want exactly 1", len(wins), wins)
	}
	for _, err := range others {
		if !errors.Is(err, state.ErrExists) {
			t.Errorf("losing Create: err = %v, want ErrExists", err)
		}
	}
	got, _, err := s.Active.Get(t.Context(), "src1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.RunID != wins[0] {
		t.Errorf("stored run %q, want the winner %q", got.RunID, wins[0])
	}
}

func TestPutOverwrites(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	rev1, err := s.Connectors.Put(ctx, "filesystem", &state.ConnectorInfo{WorkerID: "w1", Manifest: json.RawMessage(`{"v":1}`)})
	if err != nil {
		t.Fatalf("first Put: %v", err)
	}
	rev2, err := s.Connectors.Put(ctx, "filesystem", &state.ConnectorInfo{WorkerID: "w2", Manifest: json.RawMessage(`{"v":2}`)})
	if err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if rev2 <= rev1 {
		t.Errorf("second Put revision %d not after first %d", rev2, rev1)
	}
	got, rev, err := s.Connectors.Get(ctx, "filesystem")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.WorkerID != "w2" || string(got.Manifest) != `{"v":2}` || rev != rev2 {
		t.Errorf("Get = %+v rev %d, want w2 {\"v\":2} rev %d", got, rev, rev2)
	}
	// Put then Create: the key exists.
	if _, err := s.Connectors.Create(ctx, "filesystem", &state.ConnectorInfo{}); !errors.Is(err, state.ErrExists) {
		t.Errorf("Create over a Put: err = %v, want ErrExists", err)
	}
}

func TestUpdateCompareAndSet(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	rev0, err := s.Runs.Create(ctx, "run1", &state.Run{ID: "run1", Status: state.RunQueued})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	rev1, err := s.Runs.Update(ctx, "run1", &state.Run{ID: "run1", Status: state.RunRunning, Attempt: 1}, rev0)
	if err != nil {
		t.Fatalf("Update at current revision: %v", err)
	}
	if rev1 <= rev0 {
		t.Errorf("Update revision %d not after %d", rev1, rev0)
	}

	cases := []struct {
		name string
		key  string
		rev  uint64
	}{
		{"stale revision", "run1", rev0},
		{"future revision", "run1", rev1 + 100},
		{"zero revision on existing key", "run1", 0},
		{"revision on missing key", "missing", rev1},
		{"zero revision on missing key (no implicit create)", "missing", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Runs.Update(ctx, tc.key, &state.Run{ID: "run1", Status: state.RunFailed}, tc.rev)
			if !errors.Is(err, state.ErrConflict) {
				t.Fatalf("Update: err = %v, want ErrConflict", err)
			}
			if errors.Is(err, state.ErrNotFound) || errors.Is(err, state.ErrExists) {
				t.Errorf("conflict %v matches another sentinel", err)
			}
		})
	}

	// None of the failed updates was written.
	got, rev, err := s.Runs.Get(ctx, "run1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Status != state.RunRunning || got.Attempt != 1 || rev != rev1 {
		t.Errorf("after conflicts: %+v rev %d, want running attempt 1 rev %d", got, rev, rev1)
	}
	if _, _, err := s.Runs.Get(ctx, "missing"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("failed Update created the missing key: %v", err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()

	t.Run("unconditional", func(t *testing.T) {
		if _, err := s.Credentials.Create(ctx, "a", &state.Credentials{Data: json.RawMessage(`{"token":"x"}`)}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if err := s.Credentials.Delete(ctx, "a", 0); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, _, err := s.Credentials.Get(ctx, "a"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		// Deleting again, or deleting what never existed, is not an error.
		if err := s.Credentials.Delete(ctx, "a", 0); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if err := s.Credentials.Delete(ctx, "never", 0); err != nil {
			t.Errorf("Delete of a missing key: %v", err)
		}
	})

	t.Run("at revision", func(t *testing.T) {
		rev, err := s.Credentials.Create(ctx, "b", &state.Credentials{Data: json.RawMessage(`1`)})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		rev2, err := s.Credentials.Update(ctx, "b", &state.Credentials{Data: json.RawMessage(`2`)}, rev)
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if err := s.Credentials.Delete(ctx, "b", rev); !errors.Is(err, state.ErrConflict) {
			t.Fatalf("Delete at stale revision: err = %v, want ErrConflict", err)
		}
		if got, _, err := s.Credentials.Get(ctx, "b"); err != nil || string(got.Data) != `2` {
			t.Fatalf("record after conflicting Delete: %v, %v; want it kept", got, err)
		}
		if err := s.Credentials.Delete(ctx, "b", rev2); err != nil {
			t.Fatalf("Delete at current revision: %v", err)
		}
		if _, _, err := s.Credentials.Get(ctx, "b"); !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		// The record is gone, so no revision matches it any more.
		if err := s.Credentials.Delete(ctx, "b", rev2); !errors.Is(err, state.ErrConflict) {
			t.Errorf("Delete of a deleted record at its old revision: err = %v, want ErrConflict", err)
		}
	})

	t.Run("create after delete", func(t *testing.T) {
		if _, err := s.Active.Create(ctx, "src", &state.Active{RunID: "run1"}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if err := s.Active.Delete(ctx, "src", 0); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		// A deleted record counts as none.
		if _, err := s.Active.Create(ctx, "src", &state.Active{RunID: "run2"}); err != nil {
			t.Fatalf("Create after Delete: %v", err)
		}
		got, _, err := s.Active.Get(ctx, "src")
		if err != nil || got.RunID != "run2" {
			t.Fatalf("Get = %v, %v; want run2", got, err)
		}
	})

	t.Run("update after delete", func(t *testing.T) {
		rev, err := s.Active.Create(ctx, "src2", &state.Active{RunID: "run1"})
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if err := s.Active.Delete(ctx, "src2", 0); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Active.Update(ctx, "src2", &state.Active{RunID: "run1"}, rev); !errors.Is(err, state.ErrConflict) {
			t.Errorf("Update of a deleted record: err = %v, want ErrConflict", err)
		}
	})
}

func TestMutate(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	rev0, err := s.Runs.Create(ctx, "run1", &state.Run{ID: "run1", Status: state.RunQueued})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	t.Run("applies fn", func(t *testing.T) {
		v, rev, err := s.Runs.Mutate(ctx, "run1", func(r *state.Run) error {
			r.Status = state.RunRunning
			r.DocumentsScanned += 5
			return nil
		})
		if err != nil {
			t.Fatalf("Mutate: %v", err)
		}
		if v.Status != state.RunRunning || v.DocumentsScanned != 5 || rev <= rev0 {
			t.Errorf("Mutate returned %+v rev %d", v, rev)
		}
		got, grev, err := s.Runs.Get(ctx, "run1")
		if err != nil || got.Status != state.RunRunning || got.DocumentsScanned != 5 || grev != rev {
			t.Errorf("Get after Mutate = %+v rev %d err %v; want running, 5, rev %d", got, grev, err, rev)
		}
	})

	t.Run("fn error writes nothing", func(t *testing.T) {
		_, before, err := s.Runs.Get(ctx, "run1")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		errTerminal := errors.New("run is terminal")
		v, rev, err := s.Runs.Mutate(ctx, "run1", func(r *state.Run) error {
			r.Status = state.RunFailed
			return errTerminal
		})
		if !errors.Is(err, errTerminal) {
			t.Fatalf("Mutate: err = %v, want fn's error as is", err)
		}
		if v != nil || rev != 0 {
			t.Errorf("Mutate returned %v rev %d with an error", v, rev)
		}
		got, after, err := s.Runs.Get(ctx, "run1")
		if err != nil || got.Status != state.RunRunning || after != before {
			t.Errorf("record after failed fn: %+v rev %d err %v; want running rev %d", got, after, err, before)
		}
	})

	t.Run("missing record", func(t *testing.T) {
		called := false
		_, _, err := s.Runs.Mutate(ctx, "missing", func(*state.Run) error { called = true; return nil })
		if !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Mutate missing: err = %v, want ErrNotFound", err)
		}
		if called {
			t.Error("fn called for a missing record")
		}
	})

	t.Run("retries on conflict", func(t *testing.T) {
		// fn races a direct write on its first call; Mutate must re-read and
		// apply fn to the newer record rather than overwrite it.
		calls := 0
		v, _, err := s.Runs.Mutate(ctx, "run1", func(r *state.Run) error {
			calls++
			if calls == 1 {
				if _, _, err := s.Runs.Mutate(ctx, "run1", func(r *state.Run) error {
					r.DocumentsEmitted = 42
					return nil
				}); err != nil {
					return err
				}
			}
			r.DocumentsScanned++
			return nil
		})
		if err != nil {
			t.Fatalf("Mutate: %v", err)
		}
		if calls != 2 {
			t.Errorf("fn called %d times, want 2 (one conflict, one retry)", calls)
		}
		if v.DocumentsEmitted != 42 || v.DocumentsScanned != 6 {
			t.Errorf("Mutate result %+v lost the concurrent write", v.Counters)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := s.Runs.Mutate(cctx, "run1", func(*state.Run) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Mutate with a cancelled context: err = %v, want context.Canceled", err)
		}
	})
}

// N updaters on their own connections increment one counter with
// compare-and-set: no increment is lost.
func TestConcurrentUpdaters(t *testing.T) {
	t.Parallel()
	const N = 24
	cases := []struct {
		name string
		incr func(ctx context.Context, tb *state.Table[state.Run], key string) error
	}{
		{"Mutate", func(ctx context.Context, tb *state.Table[state.Run], key string) error {
			_, _, err := tb.Mutate(ctx, key, func(r *state.Run) error {
				r.DocumentsEmitted++
				return nil
			})
			return err
		}},
		{"Get and Update", func(ctx context.Context, tb *state.Table[state.Run], key string) error {
			for {
				r, rev, err := tb.Get(ctx, key)
				if err != nil {
					return err
				}
				r.DocumentsEmitted++
				_, err = tb.Update(ctx, key, r, rev)
				if !errors.Is(err, state.ErrConflict) {
					return err
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, n := openStore(t, state.Config{})
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			rev0, err := s.Runs.Create(ctx, "run1", &state.Run{ID: "run1"})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			stores := make([]*state.Store, N)
			for i := range stores {
				_, js := n.Connect(t)
				if stores[i], err = state.Bind(ctx, js); err != nil {
					t.Fatalf("Bind: %v", err)
				}
			}
			start := make(chan struct{})
			errs := make(chan error, N)
			var wg sync.WaitGroup
			for _, st := range stores {
				wg.Go(func() {
					<-start
					errs <- tc.incr(ctx, st.Runs, "run1")
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("updater: %v", err)
				}
			}
			got, rev, err := s.Runs.Get(ctx, "run1")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.DocumentsEmitted != N {
				t.Errorf("counter = %d, want %d (lost updates)", got.DocumentsEmitted, N)
			}
			// Only successful writes move the revision: exactly N of them.
			if rev != rev0+N {
				t.Errorf("revision = %d, want %d", rev, rev0+N)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()

	t.Run("empty", func(t *testing.T) {
		got, err := s.Checkpoints.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("List of an empty table = %v", got)
		}
	})

	// More records than the watcher's channel buffers (256).
	const N = 300
	revs := map[string]uint64{}
	for i := range N {
		key := fmt.Sprintf("src%03d", i)
		rev, err := s.Checkpoints.Put(ctx, key, &state.Checkpoint{SourceID: key, Attempt: i})
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
		revs[key] = rev
	}
	// A record overwritten is listed once, at its latest value.
	rev, err := s.Checkpoints.Put(ctx, "src000", &state.Checkpoint{SourceID: "src000", Attempt: 1000, Final: true})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	revs["src000"] = rev
	// Deleted records are not listed, including the last write of the bucket.
	for _, key := range []string{"src007", "src299"} {
		if err := s.Checkpoints.Delete(ctx, key, 0); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		delete(revs, key)
	}

	t.Run("current values", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		got, err := s.Checkpoints.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(got) != len(revs) {
			t.Fatalf("List returned %d entries, want %d", len(got), len(revs))
		}
		seen := map[string]bool{}
		for _, e := range got {
			if seen[e.Key] {
				t.Errorf("key %q listed twice", e.Key)
			}
			seen[e.Key] = true
			want, ok := revs[e.Key]
			if !ok {
				t.Errorf("unexpected key %q", e.Key)
				continue
			}
			if e.Revision != want {
				t.Errorf("%s: revision %d, want %d", e.Key, e.Revision, want)
			}
			if e.Value == nil || e.Value.SourceID != e.Key {
				t.Errorf("%s: value %+v", e.Key, e.Value)
			}
		}
		first := got[slices.IndexFunc(got, func(e state.Entry[state.Checkpoint]) bool { return e.Key == "src000" })]
		if first.Value.Attempt != 1000 || !first.Value.Final {
			t.Errorf("src000 listed at %+v, want its latest value", first.Value)
		}
	})

	t.Run("only deletes", func(t *testing.T) {
		if _, err := s.Active.Put(ctx, "x", &state.Active{RunID: "r"}); err != nil {
			t.Fatalf("Put: %v", err)
		}
		if err := s.Active.Delete(ctx, "x", 0); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		got, err := s.Active.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("List = %v, want none", got)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Checkpoints.List(cctx); err == nil {
			t.Error("List with a cancelled context: no error")
		}
	})
}

// A record that is not valid JSON for the table's type is an error, never
// ErrNotFound, and never a zero record.
func TestDecodeError(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	if _, err := s.Runs.KV().Put(ctx, "bad", []byte("{not json")); err != nil {
		t.Fatalf("raw Put: %v", err)
	}
	if _, err := s.Runs.KV().Put(ctx, "typed", []byte(`{"attempt":"one"}`)); err != nil {
		t.Fatalf("raw Put: %v", err)
	}
	for _, key := range []string{"bad", "typed"} {
		v, _, err := s.Runs.Get(ctx, key)
		if err == nil || errors.Is(err, state.ErrNotFound) {
			t.Errorf("Get %s: err = %v, want a decode error", key, err)
		}
		if err != nil && !strings.Contains(err.Error(), "decode") {
			t.Errorf("Get %s: error %q does not say decode", key, err)
		}
		if v != nil {
			t.Errorf("Get %s returned %+v with an error", key, v)
		}
		if _, _, err := s.Runs.Mutate(ctx, key, func(*state.Run) error { return nil }); err == nil {
			t.Errorf("Mutate %s: no error", key)
		}
	}
	if _, err := s.Runs.List(ctx); err == nil || !strings.Contains(err.Error(), "decode") {
		t.Errorf("List over a bad record: err = %v, want a decode error", err)
	}
}

func TestInvalidKey(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	for _, key := range []string{"", "has space", "a.>", "*"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			ops := map[string]error{}
			_, _, ops["Get"] = s.Sources.Get(ctx, key)
			_, ops["Create"] = s.Sources.Create(ctx, key, &state.Source{})
			_, ops["Put"] = s.Sources.Put(ctx, key, &state.Source{})
			_, ops["Update"] = s.Sources.Update(ctx, key, &state.Source{}, 1)
			ops["Delete"] = s.Sources.Delete(ctx, key, 0)
			for op, err := range ops {
				if !errors.Is(err, jetstream.ErrInvalidKey) {
					t.Errorf("%s: err = %v, want ErrInvalidKey", op, err)
				}
				if errors.Is(err, state.ErrNotFound) || errors.Is(err, state.ErrExists) || errors.Is(err, state.ErrConflict) {
					t.Errorf("%s: invalid key reported as %v", op, err)
				}
			}
		})
	}
}

// Leases expire when not refreshed: another worker can then take the source.
func TestLeaseTTL(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	s, _ := openStore(t, state.Config{LeaseTTL: ttl, WorkerTTL: ttl})
	ctx := t.Context()

	t.Run("expires", func(t *testing.T) {
		lease := &state.Lease{RunID: "run1", WorkerID: "w1", Attempt: 1}
		if _, err := s.Leases.Create(ctx, "src1", lease); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, err := s.Leases.Create(ctx, "src1", &state.Lease{WorkerID: "w2"}); !errors.Is(err, state.ErrExists) {
			t.Fatalf("second worker's Create while held: err = %v, want ErrExists", err)
		}
		if _, _, err := s.Leases.Get(ctx, "src1"); err != nil {
			t.Fatalf("Get while held: %v", err)
		}
		waitFor(t, 10*ttl, "the lease to expire", func() bool {
			_, _, err := s.Leases.Get(ctx, "src1")
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				t.Fatalf("Get: %v", err)
			}
			return errors.Is(err, state.ErrNotFound)
		})
		// The expired lease is free for another worker.
		if _, err := s.Leases.Create(ctx, "src1", &state.Lease{RunID: "run1", WorkerID: "w2", Attempt: 2}); err != nil {
			t.Fatalf("takeover Create after expiry: %v", err)
		}
		got, _, err := s.Leases.Get(ctx, "src1")
		if err != nil || got.WorkerID != "w2" {
			t.Fatalf("after takeover: %+v, %v", got, err)
		}
	})

	t.Run("refresh keeps it", func(t *testing.T) {
		if _, err := s.Leases.Create(ctx, "src2", &state.Lease{RunID: "run2", WorkerID: "w1"}); err != nil {
			t.Fatalf("Create: %v", err)
		}
		first := time.Now()
		lastWrite := first
		// Refresh every quarter TTL until well past one TTL from the first
		// write. A Get is checked only when the last refresh is recent enough
		// that a slow machine cannot have let the lease lapse.
		checkedPastTTL := false
		tick := time.NewTicker(ttl / 4)
		defer tick.Stop()
		for time.Since(first) < 3*ttl {
			<-tick.C
			if time.Since(lastWrite) < ttl/2 {
				if _, _, err := s.Leases.Get(ctx, "src2"); err != nil {
					t.Fatalf("Get %v after the first write, %v after a refresh: %v",
						time.Since(first), time.Since(lastWrite), err)
				}
				if time.Since(first) > ttl+ttl/4 {
					checkedPastTTL = true
				}
			}
			if _, _, err := s.Leases.Mutate(ctx, "src2", func(l *state.Lease) error {
				l.RefreshedAt = time.Now()
				return nil
			}); err != nil {
				t.Fatalf("refresh: %v", err)
			}
			lastWrite = time.Now()
		}
		if !checkedPastTTL {
			t.Skip("machine too slow to check the lease outlives its TTL")
		}
	})

	t.Run("worker heartbeats expire", func(t *testing.T) {
		if _, err := s.Workers.Put(ctx, "w1", &state.Worker{ID: "w1"}); err != nil {
			t.Fatalf("Put: %v", err)
		}
		waitFor(t, 10*ttl, "the heartbeat to expire", func() bool {
			_, _, err := s.Workers.Get(ctx, "w1")
			return errors.Is(err, state.ErrNotFound)
		})
		got, err := s.Workers.List(ctx)
		if err != nil || len(got) != 0 {
			t.Errorf("List after expiry = %v, %v; want none", got, err)
		}
	})

	t.Run("other tables keep records", func(t *testing.T) {
		// A lease put now expires after ttl; a source put at the same time
		// must still be there once it has.
		if _, err := s.Sources.Put(ctx, "src3", &state.Source{ID: "src3"}); err != nil {
			t.Fatalf("Put source: %v", err)
		}
		if _, err := s.Leases.Put(ctx, "src3", &state.Lease{}); err != nil {
			t.Fatalf("Put lease: %v", err)
		}
		waitFor(t, 10*ttl, "the lease to expire", func() bool {
			_, _, err := s.Leases.Get(ctx, "src3")
			return errors.Is(err, state.ErrNotFound)
		})
		if _, _, err := s.Sources.Get(ctx, "src3"); err != nil {
			t.Errorf("source after a lease TTL: %v", err)
		}
	})
}
