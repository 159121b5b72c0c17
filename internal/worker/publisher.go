package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
)

// publisher publishes the events of one attempt. Documents go out
// asynchronously with a bounded number unacknowledged; barrier waits until
// JetStream has stored all of them, republishing (with the same Nats-Msg-Id,
// so the stream stores each once) any whose publish failed.
type publisher struct {
	js         jetstream.JetStream
	sourceID   string
	runID      string
	attempt    int
	maxPending int

	mu      sync.Mutex
	seq     uint64
	pending []inflight // oldest first
}

func newPublisher(js jetstream.JetStream, sourceID, runID string, attempt, maxPending int) *publisher {
	return &publisher{js: js, sourceID: sourceID, runID: runID, attempt: attempt, maxPending: maxPending}
}

// build wraps payload into a numbered envelope and a NATS message.
func (p *publisher) build(payload any) (*nats.Msg, error) {
	env, err := events.New(p.sourceID, p.runID, payload)
	if err != nil {
		return nil, err
	}
	p.seq++
	env.Seq = p.seq
	env.Attempt = p.attempt
	return env.Msg()
}

// async publishes payload without waiting for its acknowledgement.
func (p *publisher) async(ctx context.Context, payload any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asyncLocked(ctx, payload)
}

// tryAsync is async if the publisher is free, and reports false without
// publishing if another goroutine is using it (waiting for acks, say).
func (p *publisher) tryAsync(ctx context.Context, payload any) (bool, error) {
	if !p.mu.TryLock() {
		return false, nil
	}
	defer p.mu.Unlock()
	return true, p.asyncLocked(ctx, payload)
}

func (p *publisher) asyncLocked(ctx context.Context, payload any) error {
	if len(p.pending) >= p.maxPending {
		// Bound memory and the window a crash can lose: settle the older half.
		if err := p.settleLocked(ctx, len(p.pending)/2); err != nil {
			return err
		}
	}
	msg, err := p.build(payload)
	if err != nil {
		return err
	}
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(events.StreamEvents))
	if err != nil {
		// Could not even hand it to the connection: publish synchronously.
		if err := p.publishSync(ctx, msg); err != nil {
			return err
		}
		return nil
	}
	p.pending = append(p.pending, inflight{f: f, msg: msg})
	return nil
}

// sync publishes payload after every earlier event is stored, and waits for
// its own acknowledgement.
func (p *publisher) sync(ctx context.Context, payload any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.settleLocked(ctx, len(p.pending)); err != nil {
		return err
	}
	msg, err := p.build(payload)
	if err != nil {
		return err
	}
	return p.publishSync(ctx, msg)
}

// barrier waits until every event published so far is stored.
func (p *publisher) barrier(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.settleLocked(ctx, len(p.pending)); err != nil {
		return err
	}
	return nil
}

// inflight is an event published asynchronously and not yet known stored.
// f is nil once its publish is known to have failed: it must be sent again.
type inflight struct {
	f   jetstream.PubAckFuture
	msg *nats.Msg
}

// settleLocked waits until the n oldest in-flight events are stored,
// republishing (same Nats-Msg-Id) those whose publish failed, and drops each
// from pending as it settles. A future yields its result once, so an entry
// is never read twice: when this returns early, what is left stays pending
// for the next call.
func (p *publisher) settleLocked(ctx context.Context, n int) error {
	for ; n > 0 && len(p.pending) > 0; n-- {
		e := &p.pending[0]
		if e.f != nil {
			select {
			case <-e.f.Ok():
			case err := <-e.f.Err():
				e.f = nil
				if errors.Is(err, jetstream.ErrJetStreamPublisherClosed) {
					return &busError{fmt.Errorf("publish event: %w", err)}
				}
			case <-ctx.Done():
				return fmt.Errorf("wait for event acks: %w", ctx.Err())
			}
		}
		if e.f == nil {
			if err := p.publishSync(ctx, e.msg); err != nil {
				return err
			}
		}
		p.pending[0] = inflight{}
		p.pending = p.pending[1:]
	}
	return nil
}

// publishSync publishes msg and waits for the ack, retrying transient
// failures. The Nats-Msg-Id header makes retries idempotent.
func (p *publisher) publishSync(ctx context.Context, msg *nats.Msg) error {
	var last error
	for i := 0; i < 5; i++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.js.PublishMsg(pctx, msg, jetstream.WithExpectStream(events.StreamEvents), jetstream.WithRetryAttempts(3))
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(time.Duration(i+1) * 200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("publish %s: %w", msg.Subject, last)
	}
	return &busError{fmt.Errorf("publish %s: %w", msg.Subject, last)}
}

// busError is a failure of NATS or JetStream, not of the connector: the
// attempt is handed back for another try rather than failing the run.
type busError struct{ err error }

func (e *busError) Error() string { return e.err.Error() }
func (e *busError) Unwrap() error { return e.err }

// isBusError reports whether err comes from the bus.
func isBusError(err error) bool {
	var be *busError
	return errors.As(err, &be)
}
