package manager

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/robfig/cron/v3"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

// TriggerSchedule marks runs the scheduler started.
const TriggerSchedule = "schedule"

// MinInterval is the shortest "every" a schedule may have.
const MinInterval = time.Second

// cronParser reads standard five-field expressions, descriptors (@hourly,
// @every 5m) and a CRON_TZ= prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// nextFunc returns the first due time strictly after t.
type nextFunc func(t time.Time) time.Time

// parseSchedule validates a schedule and returns its next-time function
// (nil for a schedule with neither interval nor cron). Violations are
// reported against body.schedule.<field>.
func parseSchedule(s state.Schedule, man *connector.Manifest) (nextFunc, []Detail) {
	loc := func(f string) []any { return []any{"body", "schedule", f} }
	var details []Detail
	var next nextFunc
	switch {
	case s.Every != "" && s.Cron != "":
		details = append(details, Detail{Loc: loc("cron"), Msg: `Give either "every" or "cron", not both`, Type: "value_error"})
	case s.Every != "":
		d, err := time.ParseDuration(s.Every)
		switch {
		case err != nil:
			details = append(details, Detail{Loc: loc("every"), Msg: `Input should be a duration such as "15m" or "1h30m"`, Type: "duration_parsing"})
		case d < MinInterval:
			details = append(details, Detail{Loc: loc("every"), Msg: fmt.Sprintf("Interval should be at least %s", MinInterval), Type: "greater_than_equal"})
		default:
			next = func(t time.Time) time.Time { return t.Add(d) }
		}
	case s.Cron != "":
		sched, err := cronParser.Parse(s.Cron)
		if err != nil {
			details = append(details, Detail{Loc: loc("cron"), Msg: "Invalid cron expression: " + err.Error(), Type: "cron_parsing"})
		} else {
			next = func(t time.Time) time.Time { return sched.Next(t).UTC() }
		}
	}
	if s.Mode != "" {
		if !s.Mode.Valid() {
			details = append(details, Detail{Loc: loc("mode"), Msg: `Input should be "full" or "incremental"`, Type: "enum"})
		} else if man != nil && !man.Supports(s.Mode) {
			details = append(details, Detail{Loc: loc("mode"), Msg: fmt.Sprintf("Connector %q does not support %s sync", man.Name, s.Mode), Type: "unsupported_mode"})
		}
	}
	return next, details
}

// regularNext is the source's next due time after now by its schedule, or
// nil when it has none or is paused.
func regularNext(s state.Schedule, now time.Time) *time.Time {
	return scheduleNext(s).after(now)
}

// scheduleNext is the schedule's next-time function, or nil when it has no
// interval or cron, is paused, or does not parse.
func scheduleNext(s state.Schedule) nextFunc {
	if s.Paused || !s.Scheduled() {
		return nil
	}
	next, details := parseSchedule(s, nil)
	if len(details) > 0 {
		return nil
	}
	return next
}

// after is the first due time after t, or nil (no schedule, or a cron
// expression that never fires, such as Feb 30).
func (next nextFunc) after(t time.Time) *time.Time {
	if next == nil {
		return nil
	}
	n := next(t).UTC()
	if n.IsZero() {
		return nil
	}
	return &n
}

// recordFailure counts a failure of the source: its error, degraded once
// DegradedAfter failures are in a row, and, when scheduled, a retry time
// that backs off exponentially up to RetryCap.
func (m *Manager) recordFailure(s *state.Source, msg string, now time.Time) {
	s.ConsecutiveFailures++
	s.LastError = msg
	s.Degraded = s.ConsecutiveFailures >= m.cfg.DegradedAfter
	if !s.Schedule.Paused && s.Schedule.Scheduled() {
		t := now.Add(m.retryDelay(s.ConsecutiveFailures))
		s.NextRunAt = &t
	}
}

// retryDelay is how long the scheduler waits after the n-th consecutive
// failure: RetryBase doubled per failure, at most RetryCap.
func (m *Manager) retryDelay(n int) time.Duration {
	d := m.cfg.RetryBase
	for i := 1; i < n && d < m.cfg.RetryCap; i++ {
		d *= 2
	}
	return min(d, m.cfg.RetryCap)
}

// PauseSource stops the source's scheduled runs; ResumeSource starts them
// again from the next due time. Both are idempotent.
func (m *Manager) PauseSource(ctx context.Context, id string) (*state.Source, error) {
	return m.setPaused(ctx, id, true)
}

// ResumeSource undoes PauseSource.
func (m *Manager) ResumeSource(ctx context.Context, id string) (*state.Source, error) {
	return m.setPaused(ctx, id, false)
}

func (m *Manager) setPaused(ctx context.Context, id string, paused bool) (*state.Source, error) {
	if _, err := m.GetSource(ctx, id); err != nil {
		return nil, err
	}
	now := m.clock.Now().UTC()
	out, _, err := m.mutateSource(ctx, id, func(s *state.Source) error {
		if s.Schedule.Paused == paused {
			return errUnchanged
		}
		s.Schedule.Paused = paused
		s.NextRunAt = regularNext(s.Schedule, now)
		s.UpdatedAt = now
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return m.GetSource(ctx, id)
	}
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "source", ID: id}
	}
	if err != nil {
		return nil, unavailable("update source", err)
	}
	m.log.Info("source schedule "+map[bool]string{true: "paused", false: "resumed"}[paused], zap.String("source_id", id))
	return out, nil
}

var errUnchanged = errors.New("unchanged")

// runEnded keeps the source's failure count, degraded flag and retry time
// in step with a run that just ended.
func (m *Manager) runEnded(ctx context.Context, run *state.Run) {
	if run.Document != "" || run.Status == state.RunCancelled {
		return
	}
	now := m.clock.Now().UTC()
	_, _, err := m.mutateSource(ctx, run.SourceID, func(s *state.Source) error {
		switch run.Status {
		case state.RunCompleted:
			if s.ConsecutiveFailures == 0 && !s.Degraded && s.LastError == "" {
				return errUnchanged
			}
			// Back to the regular schedule from a retry time.
			if s.ConsecutiveFailures > 0 {
				s.NextRunAt = regularNext(s.Schedule, now)
			}
			s.ConsecutiveFailures, s.Degraded, s.LastError = 0, false, ""
		case state.RunFailed:
			m.recordFailure(s, run.Error, now)
		default:
			return errUnchanged
		}
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, state.ErrNotFound) {
		m.log.Warn("record run outcome on source", zap.String("source_id", run.SourceID), zap.String("run_id", run.ID), zap.Error(err))
	}
}

// scheduler starts the runs of scheduled sources when they are due. It
// runs in the manager holding the manager lock, so exactly one acts at a
// time. Due times live in the sources' NextRunAt (KV): a manager taking
// over continues where the last one stopped, and starts at once what fell
// due while no manager ran (once, not once per missed time).
type scheduler struct {
	m    *Manager
	log  *zap.Logger
	mu   sync.Mutex
	q    dueQueue
	byID map[string]*dueItem
	// firing holds the sources being fired: their records change under
	// the firer, which reads the outcome back when it is done.
	firing map[string]bool
	kick   chan struct{}
	done   chan struct{}
}

type dueItem struct {
	sourceID string
	at       time.Time // when to fire
	due      time.Time // the source's NextRunAt it fires for
	index    int
}

// dueQueue is a min-heap of due times.
type dueQueue []*dueItem

func (q dueQueue) Len() int           { return len(q) }
func (q dueQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *dueQueue) Push(x any) {
	it := x.(*dueItem)
	it.index = len(*q)
	*q = append(*q, it)
}
func (q *dueQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	it.index = -1
	return it
}

// schedulerFirers bounds how many due sources start at once.
const schedulerFirers = 32

func (m *Manager) startScheduler(ctx context.Context) (*scheduler, error) {
	s := &scheduler{m: m, log: m.log.Named("scheduler"), byID: map[string]*dueItem{},
		firing: map[string]bool{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	w, err := m.store.Sources.KV().WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch sources: %w", err)
	}
	// The initial values arrive before a nil entry: wait for them, so the
	// first due sources fire right after start.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		s.apply(m.watchedSource(e))
	}
	go func() {
		defer close(s.done)
		defer func() { _ = w.Stop() }()
		go func() {
			for e := range w.Updates() {
				if e != nil {
					s.apply(m.watchedSource(e))
				}
			}
		}()
		s.loop(ctx)
	}()
	return s, nil
}

// watchedSource records one entry of the sources watch in the sources
// cache and returns the source's id and record (nil: deleted, or a record
// that does not decode).
func (m *Manager) watchedSource(e jetstream.KeyValueEntry) (string, *state.Source) {
	if e.Operation() != jetstream.KeyValuePut {
		m.srcs.watchedDelete(e.Key())
		return e.Key(), nil
	}
	var src state.Source
	if err := json.Unmarshal(e.Value(), &src); err != nil {
		m.log.Warn("skipping undecodable source", zap.String("source_id", e.Key()), zap.Error(err))
		return e.Key(), nil
	}
	m.srcs.put(e.Key(), &src, e.Revision())
	return e.Key(), &src
}

// apply mirrors one source record's due time (src nil: none).
func (s *scheduler) apply(id string, src *state.Source) {
	var due *time.Time
	if src != nil && !src.Schedule.Paused && src.Schedule.Scheduled() {
		due = src.NextRunAt
	}
	s.mu.Lock()
	firing := s.firing[id]
	s.mu.Unlock()
	if !firing {
		s.set(id, due, due)
	}
}

// set makes the source fire at at for its due time due; nil removes it.
func (s *scheduler) set(sourceID string, at, due *time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.byID[sourceID]
	switch {
	case due == nil && it != nil:
		heap.Remove(&s.q, it.index)
		delete(s.byID, sourceID)
	case due == nil:
		return
	case it != nil:
		if it.at.Equal(*at) && it.due.Equal(*due) {
			return
		}
		it.at, it.due = *at, *due
		heap.Fix(&s.q, it.index)
	default:
		it = &dueItem{sourceID: sourceID, at: *at, due: *due}
		heap.Push(&s.q, it)
		s.byID[sourceID] = it
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// loop sleeps until the earliest due time (or a change), then fires every
// due source.
func (s *scheduler) loop(ctx context.Context) {
	clock := s.m.clock
	for {
		now := clock.Now()
		var due []dueItem
		var wait time.Duration = -1
		var next time.Time
		s.mu.Lock()
		for s.q.Len() > 0 {
			it := s.q[0]
			if it.at.After(now) {
				wait, next = it.at.Sub(now), it.at
				break
			}
			heap.Pop(&s.q)
			delete(s.byID, it.sourceID)
			s.firing[it.sourceID] = true
			due = append(due, *it)
		}
		s.mu.Unlock()
		if len(due) > 0 {
			s.fireAll(ctx, due)
			continue
		}
		var timer <-chan time.Time
		var t interface{ Stop() bool }
		if wait >= 0 {
			tm := clock.NewTimer(wait)
			timer, t = tm.Chan(), tm
			// The clock may have moved between reading it and setting the
			// timer (a fake one jumps): look again rather than oversleep.
			if !clock.Now().Before(next) {
				tm.Stop()
				continue
			}
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-s.kick:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (s *scheduler) fireAll(ctx context.Context, due []dueItem) {
	sem := make(chan struct{}, schedulerFirers)
	var wg sync.WaitGroup
	for _, it := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			retry := s.fire(ctx, it.sourceID, it.due)
			s.mu.Lock()
			delete(s.firing, it.sourceID)
			s.mu.Unlock()
			if retry {
				t := s.m.clock.Now().Add(5 * time.Second)
				s.set(it.sourceID, &t, &it.due)
				return
			}
			s.reload(ctx, it.sourceID)
		}()
	}
	wg.Wait()
}

// fire starts a scheduled run of the source due at due, then moves its due
// time on: to the next regular time, or to a retry time when the run could
// not be started. A source whose previous run is still active is skipped.
// The due time moves only if it is still the one fired for (a run that
// ended in between may have set a retry time).
func (s *scheduler) fire(ctx context.Context, sourceID string, due time.Time) (retry bool) {
	m := s.m
	log := s.log.With(zap.String("source_id", sourceID), zap.Time("due", due))
	src, err := m.GetSource(ctx, sourceID)
	if err != nil {
		if !errors.As(err, new(*NotFoundError)) {
			log.Warn("read due source", zap.Error(err))
			return true
		}
		return false
	}
	if src.Schedule.Paused || src.NextRunAt == nil || !src.NextRunAt.Equal(due) {
		return false // changed since
	}
	run, err := m.triggerSync(ctx, src, src.Schedule.Mode, TriggerSchedule)
	var ce *ConflictError
	failed := ""
	switch {
	case errors.As(err, &ce) && ce.Code == CodeRunActive:
		log.Info("scheduled sync skipped: the source's previous run is still active", zap.String("run_id", ce.RunID))
	case err != nil:
		failed = "scheduled sync could not start: " + err.Error()
		log.Warn("scheduled sync could not start", zap.Error(err))
	default:
		log.Debug("scheduled sync started", zap.String("run_id", run.ID))
	}
	now := m.clock.Now().UTC()
	_, _, err = m.mutateSource(ctx, sourceID, func(s *state.Source) error {
		if s.NextRunAt == nil || !s.NextRunAt.Equal(due) {
			return errUnchanged
		}
		if failed != "" {
			m.recordFailure(s, failed, now)
			return nil
		}
		s.NextRunAt = nextAfter(s.Schedule, due, now)
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errors.Is(err, state.ErrNotFound) {
		log.Warn("move due time", zap.Error(err))
		return true
	}
	return false
}

// reload sets the source's due time from its record.
func (s *scheduler) reload(ctx context.Context, sourceID string) {
	src, _, err := s.m.store.Sources.Get(ctx, sourceID)
	switch {
	case errors.Is(err, state.ErrNotFound):
		s.set(sourceID, nil, nil)
	case err != nil:
		s.log.Warn("read source after firing", zap.String("source_id", sourceID), zap.Error(err))
		t := s.m.clock.Now().Add(5 * time.Second)
		s.set(sourceID, &t, &t) // fire finds the due time changed and reloads
	case !src.Schedule.Paused && src.Schedule.Scheduled():
		s.set(sourceID, src.NextRunAt, src.NextRunAt)
	default:
		s.set(sourceID, nil, nil)
	}
}

// nextAfter is the first due time after now on the grid of due: an
// interval keeps its phase (10:00, 10:15, ...) however late a run starts.
func nextAfter(sched state.Schedule, due, now time.Time) *time.Time {
	next := scheduleNext(sched)
	t := next.after(due)
	for i := 0; t != nil && !t.After(now); i++ {
		if i == 1000 { // far behind (no manager for days): restart from now
			return next.after(now)
		}
		t = next.after(*t)
	}
	return t
}

func (s *scheduler) wait() { <-s.done }
