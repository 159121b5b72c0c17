package worker

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/state"
)

// heldLease is a source lease this worker holds.
type heldLease struct {
	sourceID string
	rec      state.Lease
	rev      uint64
	lastOK   time.Time
}

// acquireLease takes the source's lease with create-if-absent. When another
// attempt holds it, it returns nil and how long to wait before the lease can
// have expired.
func (w *Worker) acquireLease(ctx context.Context, sourceID, runID string, attempt int) (*heldLease, time.Duration, error) {
	for i := 0; i < 3; i++ {
		now := time.Now().UTC()
		rec := state.Lease{RunID: runID, WorkerID: w.cfg.ID, Attempt: attempt, AcquiredAt: now, RefreshedAt: now}
		rev, err := w.store.Leases.Create(ctx, sourceID, &rec)
		if err == nil {
			return &heldLease{sourceID: sourceID, rec: rec, rev: rev, lastOK: now}, 0, nil
		}
		if !errors.Is(err, state.ErrExists) {
			return nil, 0, err
		}
		cur, _, err := w.store.Leases.Get(ctx, sourceID)
		if errors.Is(err, state.ErrNotFound) {
			continue // expired in between
		}
		if err != nil {
			return nil, 0, err
		}
		// The holder refreshes every third of the TTL; the lease expires a
		// TTL after its last refresh (clocks may differ: clamp).
		wait := w.leaseTTL - time.Since(cur.RefreshedAt) + 100*time.Millisecond
		wait = min(max(wait, 250*time.Millisecond), w.leaseTTL)
		return nil, wait, nil
	}
	return nil, w.leaseTTL / 2, nil
}

// refreshLease rewrites the lease with compare-and-set, which also restarts
// its TTL. It returns errLeaseLost when the lease expired or another worker
// took it, or when it could not be refreshed for a whole TTL.
func (w *Worker) refreshLease(ctx context.Context, l *heldLease) error {
	l.rec.RefreshedAt = time.Now().UTC()
	rev, err := w.store.Leases.Update(ctx, l.sourceID, &l.rec, l.rev)
	switch {
	case err == nil:
		l.rev, l.lastOK = rev, time.Now()
		return nil
	case errors.Is(err, state.ErrConflict), errors.Is(err, state.ErrNotFound):
		return errLeaseLost
	case time.Since(l.lastOK) >= w.leaseTTL:
		return errLeaseLost
	}
	return err
}

// releaseLease deletes the lease if this worker still holds it.
func (w *Worker) releaseLease(l *heldLease) {
	if l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.store.Leases.Delete(ctx, l.sourceID, l.rev); err != nil && !errors.Is(err, state.ErrConflict) {
		w.log.Warn("release source lease", zap.String("source_id", l.sourceID), zap.Error(err))
	}
}
