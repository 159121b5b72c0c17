package manager

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/state"
)

// Limits bound how many runs are dispatched (queued for a worker or
// running) at once. Runs over a limit wait in status queued, with the
// reason in their queue_reason, and are dispatched in the order they were
// created as slots free up. A source has at most one run at a time in any
// case (its active-run claim), so the per-source limit is one.
type Limits struct {
	// MaxActiveRuns bounds dispatched runs across all sources; 0 means no
	// bound.
	MaxActiveRuns int
	// PerConnector bounds dispatched runs per connector type; a type not
	// listed has no bound of its own.
	PerConnector map[string]int
}

func (l Limits) validate() error {
	if l.MaxActiveRuns < 0 {
		return fmt.Errorf("manager: max active runs %d is negative", l.MaxActiveRuns)
	}
	for c, n := range l.PerConnector {
		if n < 1 {
			return fmt.Errorf("manager: the limit of connector %q must be at least 1, not %d", c, n)
		}
	}
	return nil
}

// admission tracks dispatched runs and the runs waiting for a slot. It is
// the manager's memory of the runs bucket: rebuilt from it at start, kept by
// startRun and the run-end hook. Only the manager holding the manager lock
// dispatches, so the limits hold across managers.
type admission struct {
	limits  Limits
	mu      sync.Mutex
	active  map[string]string // run id -> connector
	perConn map[string]int
	waiting []waitingRun // in run-id (creation) order
	kick    chan struct{}
}

type waitingRun struct {
	runID, sourceID, connector string
}

func newAdmission(l Limits) *admission {
	return &admission{limits: l, active: map[string]string{}, perConn: map[string]int{}, kick: make(chan struct{}, 1)}
}

// blocked says why a run of connector cannot be dispatched now, or "".
func (a *admission) blocked(connector string) string {
	if n := a.limits.MaxActiveRuns; n > 0 && len(a.active) >= n {
		return fmt.Sprintf("waiting for a slot: %d of %d runs are active", len(a.active), n)
	}
	if n, ok := a.limits.PerConnector[connector]; ok && a.perConn[connector] >= n {
		return fmt.Sprintf("waiting for a slot: %d of %d runs of connector %s are active", a.perConn[connector], n, connector)
	}
	return ""
}

func (a *admission) take(runID, connector string) {
	if _, ok := a.active[runID]; ok {
		return
	}
	a.active[runID] = connector
	a.perConn[connector]++
}

// tryTake takes a slot for the run, or queues it (behind every run already
// waiting, so runs start in order) and says why.
func (a *admission) tryTake(w waitingRun) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	why := a.blocked(w.connector)
	if why == "" {
		// Runs that wait only for their own connector do not hold this
		// one back; one that could go now (a slot just freed) does.
		ahead := false
		for _, o := range a.waiting {
			if a.blocked(o.connector) == "" {
				ahead = true
				break
			}
		}
		if !ahead {
			a.take(w.runID, w.connector)
			return ""
		}
		why = "waiting for the runs queued before it"
	}
	a.enqueue(w)
	a.wake()
	return why
}

func (a *admission) enqueue(w waitingRun) {
	i := sort.Search(len(a.waiting), func(i int) bool { return a.waiting[i].runID >= w.runID })
	if i < len(a.waiting) && a.waiting[i].runID == w.runID {
		return
	}
	a.waiting = append(a.waiting, waitingRun{})
	copy(a.waiting[i+1:], a.waiting[i:])
	a.waiting[i] = w
}

// release frees the run's slot or its place in the queue.
func (a *admission) release(runID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.active[runID]; ok {
		delete(a.active, runID)
		if a.perConn[c]--; a.perConn[c] <= 0 {
			delete(a.perConn, c)
		}
	}
	for i, w := range a.waiting {
		if w.runID == runID {
			a.waiting = append(a.waiting[:i], a.waiting[i+1:]...)
			break
		}
	}
	a.wake()
}

// wake makes the admit loop look at the queue.
func (a *admission) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// admitted takes slots for the waiting runs that fit now, in order: a run
// held back only by its connector's limit does not hold back the runs of
// other connectors behind it.
func (a *admission) admitted() []waitingRun {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []waitingRun
	kept := a.waiting[:0]
	for _, w := range a.waiting {
		if a.blocked(w.connector) == "" {
			a.take(w.runID, w.connector)
			out = append(out, w)
		} else {
			kept = append(kept, w)
		}
	}
	a.waiting = kept
	return out
}

// loadAdmission rebuilds the admission state from the runs bucket: runs
// not ended that were dispatched hold slots, the others wait.
func (m *Manager) loadAdmission(ctx context.Context) error {
	return m.store.Runs.Each(ctx, ">", func(e state.Entry[state.Run]) error {
		r := e.Value
		if r.Status.Terminal() {
			return nil
		}
		m.adm.mu.Lock()
		if r.Dispatched {
			m.adm.take(r.ID, r.Connector)
		} else {
			m.adm.enqueue(waitingRun{runID: r.ID, sourceID: r.SourceID, connector: r.Connector})
		}
		m.adm.mu.Unlock()
		return nil
	})
}

// admitLoop dispatches waiting runs whenever a slot frees up.
func (m *Manager) admitLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for {
		for _, w := range m.adm.admitted() {
			m.dispatchWaiting(ctx, w)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.adm.kick:
		}
	}
}

// dispatchWaiting dispatches a run that waited for a slot (or whose
// dispatch an earlier manager did not finish).
func (m *Manager) dispatchWaiting(ctx context.Context, w waitingRun) {
	log := m.log.With(zap.String("run_id", w.runID), zap.String("source_id", w.sourceID))
	run, _, err := m.store.Runs.Get(ctx, w.runID)
	if errors.Is(err, state.ErrNotFound) {
		m.adm.release(w.runID)
		return
	}
	if err == nil && run.Status.Terminal() {
		m.adm.release(w.runID) // cancelled while it waited
		return
	}
	var src *state.Source
	if err == nil {
		src, _, err = m.store.Sources.Get(ctx, w.sourceID)
		if errors.Is(err, state.ErrNotFound) {
			m.endRun(ctx, w.runID, state.RunFailed, "its source was deleted")
			return
		}
	}
	if err == nil {
		err = m.dispatch(ctx, src, run)
	}
	var ce *ConflictError
	switch {
	case errors.As(err, &ce):
		// It can never be dispatched (its credentials cannot be opened).
		m.endRun(ctx, w.runID, state.RunFailed, ce.Message)
	case err != nil && ctx.Err() == nil:
		// The bus failed: give the slot back and queue the run again; the
		// next release or manager start retries it.
		log.Warn("dispatch of a waiting run failed; it waits again", zap.Error(err))
		m.adm.mu.Lock()
		if _, ok := m.adm.active[w.runID]; ok {
			delete(m.adm.active, w.runID)
			m.adm.perConn[w.connector]--
		}
		m.adm.enqueue(w)
		m.adm.mu.Unlock()
		time.AfterFunc(5*time.Second, m.adm.wake)
	case err == nil:
		log.Info("dispatched a run that waited for a slot")
	}
}

// onRunEnded is called once when a run becomes terminal: it frees the run's
// slot and records the outcome on its source.
func (m *Manager) onRunEnded(ctx context.Context, run *state.Run) {
	m.metrics.runEnded(run)
	m.adm.release(run.ID)
	m.runEnded(ctx, run)
}
