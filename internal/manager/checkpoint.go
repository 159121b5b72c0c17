package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// opPrefix marks the active-run claim an operator's checkpoint change
// holds while it writes, so that no run starts meanwhile.
const opPrefix = "op-"

// MaxCheckpointSize bounds a checkpoint set through the API (compact JSON).
const MaxCheckpointSize = 256 << 10

// CheckpointSetBy is the RunID of a checkpoint an operator set.
const CheckpointSetBy = "operator"

// GetCheckpoint returns the source's checkpoint.
func (m *Manager) GetCheckpoint(ctx context.Context, sourceID string) (*state.Checkpoint, error) {
	if _, err := m.GetSource(ctx, sourceID); err != nil {
		return nil, err
	}
	cp, _, err := m.store.Checkpoints.Get(ctx, sourceID)
	if errors.Is(err, state.ErrNotFound) {
		return nil, &NotFoundError{Kind: "checkpoint of source", ID: sourceID}
	}
	if err != nil {
		return nil, unavailable("read checkpoint", err)
	}
	return cp, nil
}

// SetCheckpoint replaces the source's checkpoint (raw is any JSON value
// but null); the next incremental run starts from it. ResetCheckpoint
// removes it, so the next run is full. Both need the source idle (409
// run_active otherwise), and each is recorded as a checkpoint.changed
// event on the events stream.
func (m *Manager) SetCheckpoint(ctx context.Context, sourceID string, raw json.RawMessage) (*state.Checkpoint, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, invalid("missing", "Field required: a checkpoint (to remove it, DELETE the checkpoint)", "body", "checkpoint")
	}
	if d := sizeDetail("checkpoint", raw, MaxCheckpointSize); d != nil {
		return nil, &ValidationError{Details: d}
	}
	cp := &state.Checkpoint{SourceID: sourceID, RunID: CheckpointSetBy, Final: true, Checkpoint: compact(raw), UpdatedAt: time.Now().UTC()}
	if err := m.changeCheckpoint(ctx, sourceID, cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// ResetCheckpoint removes the source's checkpoint; see SetCheckpoint.
func (m *Manager) ResetCheckpoint(ctx context.Context, sourceID string) error {
	return m.changeCheckpoint(ctx, sourceID, nil)
}

func (m *Manager) changeCheckpoint(ctx context.Context, sourceID string, cp *state.Checkpoint) error {
	if _, err := m.GetSource(ctx, sourceID); err != nil {
		return err
	}
	if run, err := m.activeRun(ctx, sourceID); err != nil {
		return err
	} else if run != nil {
		return &ConflictError{Code: CodeRunActive, RunID: run.ID,
			Message: fmt.Sprintf("source %s has an active run %s: change its checkpoint once no run is active", sourceID, run.ID)}
	}
	op := opPrefix + ulid.Make().String()
	if err := m.claimActive(ctx, sourceID, op); err != nil {
		return err
	}
	defer m.releaseActive(context.WithoutCancel(ctx), sourceID, op)

	prev, _, err := m.store.Checkpoints.Get(ctx, sourceID)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return unavailable("read checkpoint", err)
	}
	ev := &events.CheckpointChanged{Checkpoint: json.RawMessage("null"), Previous: json.RawMessage("null")}
	if prev != nil && len(prev.Checkpoint) > 0 {
		ev.Previous = prev.Checkpoint
	}
	if cp != nil {
		ev.Checkpoint = cp.Checkpoint
	}
	// Recorded first, like every change: a change that is not recorded
	// does not happen.
	env, err := events.New(sourceID, op, ev)
	if err != nil {
		return fmt.Errorf("build checkpoint event: %w", err)
	}
	msg, err := env.Msg()
	if err != nil {
		return err
	}
	if _, err := m.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(events.StreamEvents)); err != nil {
		return unavailable("record checkpoint change", err)
	}
	if cp == nil {
		if err := m.store.Checkpoints.Delete(ctx, sourceID, 0); err != nil {
			return unavailable("delete checkpoint", err)
		}
	} else if _, err := m.store.Checkpoints.Put(ctx, sourceID, cp); err != nil {
		return unavailable("store checkpoint", err)
	}
	m.log.Info("source checkpoint changed by an operator", zap.String("source_id", sourceID), zap.Bool("reset", cp == nil))
	return nil
}
