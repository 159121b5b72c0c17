package state_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// openStore starts an embedded NATS server for the test and opens the store
// on it.
func openStore(t *testing.T, cfg state.Config) (*state.Store, *testutil.NATS) {
	t.Helper()
	n := testutil.StartNATS(t)
	s, err := state.Open(t.Context(), n.JS, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, n
}

// tableInfo is what every table looks like from outside, whatever its type.
type tableInfo interface {
	Bucket() string
	KV() jetstream.KeyValue
}

func tables(s *state.Store) map[string]tableInfo {
	return map[string]tableInfo{
		events.BucketSources:     s.Sources,
		events.BucketCredentials: s.Credentials,
		events.BucketRuns:        s.Runs,
		events.BucketActive:      s.Active,
		events.BucketCheckpoints: s.Checkpoints,
		events.BucketConnectors:  s.Connectors,
		events.BucketWorkers:     s.Workers,
		events.BucketLeases:      s.Leases,
	}
}

func TestOpenCreatesEveryBucket(t *testing.T) {
	t.Parallel()
	s, n := openStore(t, state.Config{})
	ctx := t.Context()

	for want, tb := range tables(s) {
		if tb == nil {
			t.Fatalf("table for %s is nil", want)
		}
		if got := tb.Bucket(); got != want {
			t.Errorf("Bucket() = %q, want %q", got, want)
		}
		if got := tb.KV().Bucket(); got != want {
			t.Errorf("KV().Bucket() = %q, want %q", got, want)
		}
		kv, err := n.JS.KeyValue(ctx, want)
		if err != nil {
			t.Fatalf("bucket %s not on the server: %v", want, err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatalf("status %s: %v", want, err)
		}
		if st.History() != 1 {
			t.Errorf("%s: history = %d, want 1", want, st.History())
		}
	}
}

func TestOpenTTLs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		cfg        state.Config
		wantWorker time.Duration
		wantLease  time.Duration
	}{
		{"defaults", state.Config{}, 15 * time.Second, 10 * time.Second},
		{"negative means default", state.Config{WorkerTTL: -1, LeaseTTL: -1}, 15 * time.Second, 10 * time.Second},
		{"configured", state.Config{WorkerTTL: 45 * time.Second, LeaseTTL: 5 * time.Second}, 45 * time.Second, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t, tc.cfg)
			ctx := t.Context()
			ttl := func(name string, f func() (time.Duration, error), want time.Duration) {
				t.Helper()
				got, err := f()
				if err != nil {
					t.Fatalf("%s TTL: %v", name, err)
				}
				if got != want {
					t.Errorf("%s TTL = %v, want %v", name, got, want)
				}
			}
			ttl("workers", func() (time.Duration, error) { return s.Workers.TTL(ctx) }, tc.wantWorker)
			ttl("leases", func() (time.Duration, error) { return s.Leases.TTL(ctx) }, tc.wantLease)
			// Every other table keeps its records forever.
			ttl("sources", func() (time.Duration, error) { return s.Sources.TTL(ctx) }, 0)
			ttl("credentials", func() (time.Duration, error) { return s.Credentials.TTL(ctx) }, 0)
			ttl("runs", func() (time.Duration, error) { return s.Runs.TTL(ctx) }, 0)
			ttl("active", func() (time.Duration, error) { return s.Active.TTL(ctx) }, 0)
			ttl("checkpoints", func() (time.Duration, error) { return s.Checkpoints.TTL(ctx) }, 0)
			ttl("connectors", func() (time.Duration, error) { return s.Connectors.TTL(ctx) }, 0)
		})
	}
}

func TestOpenStorage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		st   jetstream.StorageType
	}{
		{"file", jetstream.FileStorage},
		{"memory", jetstream.MemoryStorage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, n := openStore(t, state.Config{Storage: tc.st})
			for name := range tables(s) {
				str, err := n.JS.Stream(t.Context(), "KV_"+name)
				if err != nil {
					t.Fatalf("stream of %s: %v", name, err)
				}
				if got := str.CachedInfo().Config.Storage; got != tc.st {
					t.Errorf("%s storage = %v, want %v", name, got, tc.st)
				}
			}
		})
	}
}

// The manager opens the store at every start: opening again keeps the records
// and applies a changed configuration.
func TestOpenAgainKeepsRecordsAndUpdatesConfig(t *testing.T) {
	t.Parallel()
	s, n := openStore(t, state.Config{LeaseTTL: 10 * time.Second})
	ctx := t.Context()

	rev, err := s.Sources.Create(ctx, "src1", &state.Source{ID: "src1", Name: "notes"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	s2, err := state.Open(ctx, n.JS, state.Config{LeaseTTL: 20 * time.Second})
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	got, gotRev, err := s2.Sources.Get(ctx, "src1")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.Name != "notes" || gotRev != rev {
		t.Errorf("after reopen got %+v rev %d, want name notes rev %d", got, gotRev, rev)
	}
	ttl, err := s2.Leases.TTL(ctx)
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	if ttl != 20*time.Second {
		t.Errorf("lease TTL after reopen = %v, want 20s", ttl)
	}
}

func TestOpenFailsWhenBucketCannotBeCreated(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	// One server cannot hold three replicas.
	_, err := state.Open(t.Context(), n.JS, state.Config{Replicas: 3})
	if err == nil {
		t.Fatal("Open with 3 replicas on one server: no error")
	}
	if !strings.Contains(err.Error(), "state: bucket "+events.BucketSources) {
		t.Errorf("error %q does not name the first bucket", err)
	}
	if errors.Is(err, state.ErrNotFound) {
		t.Errorf("error %q should not be ErrNotFound", err)
	}
}

func TestBind(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	ctx := t.Context()

	// A worker that starts before the manager finds nothing to bind to.
	_, err := state.Bind(ctx, n.JS)
	if !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Bind before Open: err = %v, want ErrNotFound", err)
	}
	if err != nil && !strings.Contains(err.Error(), events.BucketSources) {
		t.Errorf("Bind error %q does not name the missing bucket", err)
	}

	manager, err := state.Open(ctx, n.JS, state.Config{LeaseTTL: 7 * time.Second})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// The worker binds on its own connection and sees the manager's records.
	_, wjs := n.Connect(t)
	worker, err := state.Bind(ctx, wjs)
	if err != nil {
		t.Fatalf("Bind after Open: %v", err)
	}
	for name, tb := range tables(worker) {
		if tb.Bucket() != name {
			t.Errorf("bound table %q, want %q", tb.Bucket(), name)
		}
	}
	if _, err := manager.Runs.Create(ctx, "run1", &state.Run{ID: "run1", Status: state.RunQueued}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	r, _, err := worker.Runs.Get(ctx, "run1")
	if err != nil {
		t.Fatalf("worker Get: %v", err)
	}
	if r.Status != state.RunQueued {
		t.Errorf("worker sees status %q, want queued", r.Status)
	}
	// Bind does not change the buckets: the TTL is the manager's.
	ttl, err := worker.Leases.TTL(ctx)
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	if ttl != 7*time.Second {
		t.Errorf("bound lease TTL = %v, want 7s", ttl)
	}
}
