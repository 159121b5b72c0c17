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
	pending []jetstream.PubAckFuture
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
	data, err := env.Encode()
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(env.Subject())
	msg.Data = data
	msg.Header.Set(events.HeaderMsgID, env.ID)
	return msg, nil
}

// async publishes payload without waiting for its acknowledgement.
func (p *publisher) async(ctx context.Context, payload any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) >= p.maxPending {
		// Bound memory and the window a crash can lose: settle the older half.
		half := len(p.pending) / 2
		if err := p.settleLocked(ctx, p.pending[:half]); err != nil {
			return err
		}
		p.pending = append(p.pending[:0], p.pending[half:]...)
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
	p.pending = append(p.pending, f)
	return nil
}

// sync publishes payload after every earlier event is stored, and waits for
// its own acknowledgement.
func (p *publisher) sync(ctx context.Context, payload any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.settleLocked(ctx, p.pending); err != nil {
		return err
	}
	p.pending = p.pending[:0]
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
	if err := p.settleLocked(ctx, p.pending); err != nil {
		return err
	}
	p.pending = p.pending[:0]
	return nil
}

func (p *publisher) settleLocked(ctx context.Context, fs []jetstream.PubAckFuture) error {
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if errors.Is(err, jetstream.ErrJetStreamPublisherClosed) {
				return fmt.Errorf("publish event: %w", err)
			}
			if err := p.publishSync(ctx, f.Msg()); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("wait for event acks: %w", ctx.Err())
		}
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
	return fmt.Errorf("publish %s: %w", msg.Subject, last)
}
