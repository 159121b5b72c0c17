package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/state"
)

// LockKey is the key of the manager's lock in the leases bucket. Source ids
// are ULIDs, so it never collides with a source's lease.
const LockKey = "manager"

// ErrLockLost is the cause Done reports when another manager took the lock
// (this one stalled for longer than its TTL): this manager must stop.
var ErrLockLost = errors.New("manager: lost the manager lock to another manager")

// lock is the manager's hold on LockKey: exactly one manager applies events
// and dispatches runs at a time. It is a lease like a source's: taken with
// create, refreshed with compare-and-set, gone a TTL after its holder dies.
type lock struct {
	m      *Manager
	holder string
	rev    uint64
	ttl    time.Duration
	stop   chan struct{}
	done   chan struct{}
	lost   chan struct{}
}

// acquireLock takes the lock, waiting while another manager holds it (a
// manager that was just killed holds it for up to one TTL).
func (m *Manager) acquireLock(ctx context.Context) error {
	ttl, err := m.store.Leases.TTL(ctx)
	if err != nil {
		return err
	}
	if ttl <= 0 {
		ttl = m.cfg.HeartbeatTimeout
	}
	host, _ := os.Hostname()
	l := &lock{m: m, holder: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), ulid.Make()), ttl: ttl,
		stop: make(chan struct{}), done: make(chan struct{}), lost: make(chan struct{})}
	logged := false
	for {
		now := time.Now().UTC()
		rev, err := m.store.Leases.Create(ctx, LockKey, &state.Lease{WorkerID: l.holder, AcquiredAt: now, RefreshedAt: now})
		if err == nil {
			l.rev = rev
			break
		}
		if !errors.Is(err, state.ErrExists) {
			return fmt.Errorf("take the manager lock: %w", err)
		}
		if !logged {
			cur, _, _ := m.store.Leases.Get(ctx, LockKey)
			holder := "?"
			if cur != nil {
				holder = cur.WorkerID
			}
			m.log.Warn("another manager holds the lock; waiting for it to stop or expire",
				zap.String("holder", holder), zap.Duration("ttl", ttl))
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("take the manager lock (another manager is running): %w", ctx.Err())
		case <-time.After(min(ttl/4, 500*time.Millisecond)):
		}
	}
	m.lock = l
	go l.refresh()
	return nil
}

// refresh keeps the lock until release; if it is lost, lost is closed.
func (l *lock) refresh() {
	defer close(l.done)
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		now := time.Now().UTC()
		rec := &state.Lease{WorkerID: l.holder, RefreshedAt: now}
		rev, err := l.m.store.Leases.Update(ctx, LockKey, rec, l.rev)
		if errors.Is(err, state.ErrConflict) {
			// Our revision is gone: the lock expired while NATS was
			// unreachable (a failover, say). If nobody took it, take it
			// again; only another holder means another manager runs.
			rev, err = l.m.store.Leases.Create(ctx, LockKey, rec)
			if errors.Is(err, state.ErrExists) {
				err = state.ErrConflict
			}
		}
		cancel()
		switch {
		case err == nil:
			l.rev = rev
		case errors.Is(err, state.ErrConflict):
			l.m.log.Error("manager lock taken by another manager; stopping", zap.Error(err))
			close(l.lost)
			return
		default:
			// NATS unreachable: keep trying. Workers need no manager, and
			// nothing is applied while JetStream cannot answer anyway.
			l.m.log.Warn("refresh the manager lock", zap.Error(err))
		}
	}
}

// release stops refreshing and deletes the lock so that the next manager
// need not wait for it to expire.
func (l *lock) release() {
	close(l.stop)
	<-l.done
	select {
	case <-l.lost:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.m.store.Leases.Delete(ctx, LockKey, l.rev); err != nil && !errors.Is(err, state.ErrConflict) {
		l.m.log.Warn("release the manager lock", zap.Error(err))
	}
}
