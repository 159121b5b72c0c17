package manager

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/state"
)

// Only one manager runs at a time: a second one waits for the lock and
// takes it once the first stops.
func TestSecondManagerWaitsForTheLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{})
	nc, _ := e.n.Connect(t)
	m2, err := New(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 500*time.Millisecond)
	defer cancel()
	if err := m2.Start(ctx); err == nil || !strings.Contains(err.Error(), "another manager") {
		t.Fatalf("second manager started beside the first: %v", err)
	}

	if err := e.m.Stop(e.ctx); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	m3 := e.startManager(Config{})
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("next manager waited %s for a released lock", took)
	}
	select {
	case <-m3.Lost():
		t.Fatal("new manager lost its lock")
	default:
	}
}

// A manager whose lock expired (NATS was unreachable) takes it again when
// nobody else did.
func TestExpiredLockIsRetaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{HeartbeatTimeout: 2 * time.Second})
	if err := e.m.store.Leases.Delete(e.ctx, LockKey, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		l, _, err := e.m.store.Leases.Get(e.ctx, LockKey)
		return err == nil && l.WorkerID == e.m.lock.holder
	}, "the lock to be taken again")
	select {
	case <-e.m.Lost():
		t.Fatal("an expired lock nobody else took was reported lost")
	default:
	}
}

// A manager whose lock another manager holds says so, so that it can exit.
func TestLostLockIsReported(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Config{HeartbeatTimeout: 2 * time.Second})
	if _, err := e.m.store.Leases.Put(e.ctx, LockKey, &state.Lease{WorkerID: "another-manager"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.m.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("lost lock not reported within 10 s")
	}
}
