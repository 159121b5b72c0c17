package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ChangeFeedConfig configures an indexer's view of the change feed.
type ChangeFeedConfig struct {
	// Durable names the indexer's consumer; it remembers what was
	// acknowledged across restarts. Required.
	Durable string
	// SourceID limits the feed to one source; empty means every source.
	SourceID string
	// StartSeq starts a new consumer at this stream sequence instead of the
	// beginning. It has no effect on a consumer that exists.
	StartSeq uint64
	// AckWait is how long a change may be handled before it is delivered
	// again; default 30s.
	AckWait time.Duration
}

// ChangeFeed delivers the change feed (created, updated, deleted documents)
// to an indexer, in order, through a durable consumer: each change is
// handled until the handler succeeds.
type ChangeFeed struct {
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
}

// NewChangeFeed creates or binds the indexer's durable consumer on the
// change feed stream.
func NewChangeFeed(ctx context.Context, js jetstream.JetStream, cfg ChangeFeedConfig) (*ChangeFeed, error) {
	if !ValidToken(cfg.Durable) {
		return nil, fmt.Errorf("%w: change feed durable %q must be 1-128 letters, digits, '_' or '-'", ErrInvalid, cfg.Durable)
	}
	filter := ChangeSubjectsAll
	if cfg.SourceID != "" {
		if !ValidToken(cfg.SourceID) {
			return nil, fmt.Errorf("%w: source id %q", ErrInvalid, cfg.SourceID)
		}
		filter = SourceChangeSubjects(cfg.SourceID)
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "Tributary change feed indexer",
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: 1, // in order: the next change waits for this one
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if cfg.StartSeq > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartSeq
	}
	cons, err := js.Consumer(ctx, StreamChanges, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, StreamChanges, cc)
	}
	if err != nil {
		return nil, fmt.Errorf("events: change feed consumer %s: %w", cfg.Durable, err)
	}
	return &ChangeFeed{cons: cons}, nil
}

// Consume calls handle with each change, in order, until Stop. A nil
// return acknowledges the change; an error has it delivered again after a
// second. A message that is not a valid change is dropped (terminated).
// The envelope's payload is a *ChangeCreated, *ChangeUpdated or
// *ChangeDeleted.
func (f *ChangeFeed) Consume(handle func(*Envelope) error) error {
	cc, err := f.cons.Consume(func(msg jetstream.Msg) {
		env, err := Decode(msg.Data())
		if err != nil || !isChange(env.Type) {
			_ = msg.Term()
			return
		}
		if err := handle(env); err != nil {
			_ = msg.NakWithDelay(time.Second)
			return
		}
		_ = msg.Ack()
	})
	if err != nil {
		return fmt.Errorf("events: consume change feed: %w", err)
	}
	f.cc = cc
	return nil
}

// Stop stops delivering changes.
func (f *ChangeFeed) Stop() {
	if f.cc != nil {
		f.cc.Stop()
	}
}

func isChange(t Type) bool {
	return t == TypeChangeCreated || t == TypeChangeUpdated || t == TypeChangeDeleted
}
