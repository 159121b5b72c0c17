package manager

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// schedEnv is an env whose manager runs on a fake clock.
type schedEnv struct {
	*env
	clock *clockwork.FakeClock
}

func newSchedEnv(t *testing.T, cfg Config) *schedEnv {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC))
	cfg.Clock = clock
	e := &schedEnv{env: newEnv(t, cfg), clock: clock}
	e.register(fakeManifest)
	return e
}

func (e *schedEnv) createScheduled(sched ScheduleInput) *state.Source {
	e.t.Helper()
	src, err := e.m.CreateSource(e.ctx, CreateSource{Name: "scheduled", Connector: fakeManifest.Name,
		Config: json.RawMessage(`{"root":"/data"}`), Schedule: &sched})
	if err != nil {
		e.t.Fatalf("create source: %v", err)
	}
	return src
}

func (e *schedEnv) source(id string) *state.Source {
	e.t.Helper()
	src, err := e.m.GetSource(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return src
}

// waitSource waits until the source record satisfies cond.
func (e *schedEnv) waitSource(id, what string, cond func(*state.Source) bool) *state.Source {
	e.t.Helper()
	var src *state.Source
	eventually(e.t, waitTimeout, func() bool {
		var err error
		src, err = e.m.GetSource(e.ctx, id)
		return err == nil && cond(src)
	}, what)
	return src
}

// advanceTo moves the fake clock to t once the scheduler is asleep on its
// timer, so the move wakes it.
func (e *schedEnv) advanceTo(t time.Time) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	if err := e.clock.BlockUntilContext(ctx, 1); err != nil {
		e.t.Fatalf("the scheduler never slept on a timer: %v", err)
	}
	e.clock.Advance(t.Sub(e.clock.Now()))
}

func at(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }

func TestCronScheduleFiresOnTime(t *testing.T) {
	e := newSchedEnv(t, Config{})
	src := e.createScheduled(ScheduleInput{Cron: "*/5 * * * *", Mode: events.ModeFull})
	if src.NextRunAt == nil || !src.NextRunAt.Equal(at(10, 5)) {
		t.Fatalf("next run at %v, want 10:05", src.NextRunAt)
	}

	// One second early: nothing.
	e.advanceTo(at(10, 5).Add(-time.Second))
	e.advanceTo(at(10, 5).Add(-time.Second)) // the scheduler went back to sleep without firing
	if got := e.source(src.ID); got.LastRunID != "" {
		t.Fatalf("fired early: run %s", got.LastRunID)
	}

	e.advanceTo(at(10, 5))
	got := e.waitSource(src.ID, "the 10:05 run", func(s *state.Source) bool {
		return s.LastRunID != "" && s.NextRunAt != nil && s.NextRunAt.Equal(at(10, 10))
	})
	run := e.run(got.LastRunID)
	if run.Trigger != TriggerSchedule || run.Mode != events.ModeFull {
		t.Fatalf("run trigger %q mode %q, want schedule/full", run.Trigger, run.Mode)
	}

	// Still active at 10:10: skipped, not queued twice.
	e.advanceTo(at(10, 10))
	got = e.waitSource(src.ID, "10:10 skipped", func(s *state.Source) bool {
		return s.NextRunAt != nil && s.NextRunAt.Equal(at(10, 15))
	})
	if got.LastRunID != run.ID {
		t.Fatalf("a second run %s started while %s was active", got.LastRunID, run.ID)
	}
	if n := e.syncRequests(); n != 1 {
		t.Fatalf("%d sync requests, want 1", n)
	}

	// Finished: the next due time starts a new run.
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w"})
	p.pub(&events.RunCompleted{})
	e.waitRun(run.ID, "completed", func(r *state.Run) bool { return r.Status == state.RunCompleted })
	e.advanceTo(at(10, 15))
	e.waitSource(src.ID, "the 10:15 run", func(s *state.Source) bool { return s.LastRunID != run.ID })
}

func TestIntervalScheduleKeepsItsPhase(t *testing.T) {
	e := newSchedEnv(t, Config{})
	src := e.createScheduled(ScheduleInput{Every: "15m"})
	if !src.NextRunAt.Equal(at(10, 17)) {
		t.Fatalf("next run at %v, want 10:17", src.NextRunAt)
	}
	// Fired late (the manager was away): the next time stays on the grid.
	e.advanceTo(at(10, 40))
	e.waitSource(src.ID, "the late run", func(s *state.Source) bool {
		return s.LastRunID != "" && s.NextRunAt.Equal(at(10, 47))
	})
}

func TestFailedRunsBackOffAndDegrade(t *testing.T) {
	e := newSchedEnv(t, Config{RetryBase: time.Minute, RetryCap: 4 * time.Minute, DegradedAfter: 2})
	src := e.createScheduled(ScheduleInput{Every: "1h"})
	e.advanceTo(*src.NextRunAt)

	var last string
	for i, wantDelay := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
		cur := e.waitSource(src.ID, "a scheduled run", func(s *state.Source) bool { return s.LastRunID != last })
		run := e.run(cur.LastRunID)
		last = run.ID
		p := e.attempt(run, 1)
		p.pub(&events.RunStarted{WorkerID: "w"})
		p.pub(&events.RunFailed{Error: "source unreachable"})
		now := e.clock.Now()
		failures := i + 1
		cur = e.waitSource(src.ID, "the failure recorded", func(s *state.Source) bool { return s.ConsecutiveFailures == failures })
		if cur.LastError != "source unreachable" || cur.Degraded != (failures >= 2) {
			t.Fatalf("after %d failures: last_error %q degraded %v", failures, cur.LastError, cur.Degraded)
		}
		if !cur.NextRunAt.Equal(now.Add(wantDelay)) {
			t.Fatalf("after %d failures: next run at %v, want %v", failures, cur.NextRunAt, now.Add(wantDelay))
		}
		e.advanceTo(*cur.NextRunAt)
	}
	// One success clears it and the regular schedule resumes.
	cur := e.waitSource(src.ID, "the retry", func(s *state.Source) bool { return s.LastRunID != last })
	run := e.run(cur.LastRunID)
	p := e.attempt(run, 1)
	p.pub(&events.RunStarted{WorkerID: "w"})
	p.pub(&events.RunCompleted{})
	now := e.clock.Now()
	cur = e.waitSource(src.ID, "cleared", func(s *state.Source) bool { return s.ConsecutiveFailures == 0 })
	if cur.Degraded || cur.LastError != "" || !cur.NextRunAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("after a success: degraded %v last_error %q next %v", cur.Degraded, cur.LastError, cur.NextRunAt)
	}
}

func TestPauseAndResume(t *testing.T) {
	e := newSchedEnv(t, Config{})
	src := e.createScheduled(ScheduleInput{Every: "10m"})
	paused, err := e.m.PauseSource(e.ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !paused.Schedule.Paused || paused.NextRunAt != nil {
		t.Fatalf("paused source: %+v", paused.Schedule)
	}
	if _, err := e.m.PauseSource(e.ctx, src.ID); err != nil {
		t.Fatalf("pausing twice: %v", err)
	}
	// Nothing is due: the scheduler sleeps with no timer, so a clock move
	// far past the old due time starts nothing.
	e.clock.Advance(time.Hour)
	// Manual syncs still run while paused.
	run := e.trigger(src.ID)
	if run.Trigger != TriggerManual {
		t.Fatal(run.Trigger)
	}
	resumed, err := e.m.ResumeSource(e.ctx, src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Schedule.Paused || !resumed.NextRunAt.Equal(e.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("resumed: %+v next %v", resumed.Schedule, resumed.NextRunAt)
	}
	if resumed.LastRunID != run.ID {
		t.Fatalf("a scheduled run started while paused: %s", resumed.LastRunID)
	}
	var nf *NotFoundError
	if _, err := e.m.PauseSource(e.ctx, "01NOSUCHSOURCE"); !errors.As(err, &nf) {
		t.Fatalf("pause of an unknown source: %v", err)
	}
}

func TestScheduleValidation(t *testing.T) {
	e := newSchedEnv(t, Config{})
	cases := []struct {
		in   ScheduleInput
		locs []string
	}{
		{ScheduleInput{Every: "soon"}, []string{"every"}},
		{ScheduleInput{Every: "10ms"}, []string{"every"}},
		{ScheduleInput{Cron: "61 * * * *"}, []string{"cron"}},
		{ScheduleInput{Every: "1m", Cron: "* * * * *"}, []string{"cron"}},
		{ScheduleInput{Cron: "bad", Mode: "sometimes"}, []string{"cron", "mode"}},
	}
	for _, c := range cases {
		in := c.in
		_, err := e.m.CreateSource(e.ctx, CreateSource{Name: "s", Connector: fakeManifest.Name,
			Config: json.RawMessage(`{"root":"/"}`), Schedule: &in})
		var ve *ValidationError
		if !errors.As(err, &ve) || len(ve.Details) != len(c.locs) {
			t.Fatalf("%+v: got %v, want %d details", c.in, err, len(c.locs))
		}
		for i, d := range ve.Details {
			if d.Loc[len(d.Loc)-1] != c.locs[i] {
				t.Errorf("%+v: detail %d at %v, want %s", c.in, i, d.Loc, c.locs[i])
			}
		}
	}
	if srcs, _ := e.m.ListSources(e.ctx); len(srcs) != 0 {
		t.Fatalf("%d sources stored from invalid input", len(srcs))
	}
}

func TestSchedulerHandsOverWithTheLock(t *testing.T) {
	e := newSchedEnv(t, Config{HeartbeatTimeout: 2 * time.Second})
	src := e.createScheduled(ScheduleInput{Every: "5m"})

	// A second manager waits for the lock; the first one goes away.
	second := make(chan *Manager, 1)
	go func() {
		nc, _ := e.n.Connect(e.t)
		m2, err := New(nc, Config{Clock: e.clock, HeartbeatTimeout: 2 * time.Second})
		if err != nil {
			panic(err)
		}
		if err := m2.Start(e.ctx); err != nil {
			panic(err)
		}
		second <- m2
	}()
	stopCtx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	if err := e.m.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	var m2 *Manager
	select {
	case m2 = <-second:
	case <-time.After(waitTimeout):
		t.Fatal("the second manager never took over")
	}
	t.Cleanup(func() { _ = m2.Stop(context.Background()) })
	e.m = m2
	e.advanceTo(*src.NextRunAt)
	e.waitSource(src.ID, "the new leader's run", func(s *state.Source) bool { return s.LastRunID != "" })
}
