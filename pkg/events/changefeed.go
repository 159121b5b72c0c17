package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
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
	// AckWait is how long a change (or a batch, see ConsumeBatch) may be
	// handled before it is delivered again; default 30s.
	AckWait time.Duration
	// Batch is the most changes ConsumeBatch hands over at once; default 1.
	// It is the consumer's max_ack_pending, so changes stay in order.
	Batch int
}

// ChangeFeed delivers the change feed (created, updated, deleted documents)
// to an indexer, in order, through a durable consumer: each change is
// handled until the handler succeeds.
type ChangeFeed struct {
	cons  jetstream.Consumer
	cc    jetstream.ConsumeContext
	batch int
	stop  chan struct{}
	done  chan struct{}
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
	if cfg.Batch <= 0 {
		cfg.Batch = 1
	}
	if cfg.Batch > 10_000 {
		return nil, fmt.Errorf("%w: change feed batch %d is over 10000", ErrInvalid, cfg.Batch)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "Tributary change feed indexer",
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.Batch, // in order: the next changes wait for these
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if cfg.StartSeq > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartSeq
	}
	cons, err := js.Consumer(ctx, StreamChanges, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, StreamChanges, cc)
	} else if err == nil && cons.CachedInfo().Config.MaxAckPending != cfg.Batch {
		// The same durable, read with another batch size.
		upd := cons.CachedInfo().Config
		upd.MaxAckPending = cfg.Batch
		cons, err = js.UpdateConsumer(ctx, StreamChanges, upd)
	}
	if err != nil {
		return nil, fmt.Errorf("events: change feed consumer %s: %w", cfg.Durable, err)
	}
	return &ChangeFeed{cons: cons, batch: cfg.Batch}, nil
}

// ConsumeBatch calls handle with up to Batch changes at a time, in order,
// until Stop; it is Consume for indexers that write in bulk. A nil return
// acknowledges the whole batch; an error has the same batch handed over
// again a second later, until it succeeds or Stop. Messages that are not valid changes
// are dropped (terminated) and left out of the batch.
func (f *ChangeFeed) ConsumeBatch(handle func([]*Envelope) error) error {
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			// What is waiting, up to a batch; when nothing is, wait up to
			// a second for the next change.
			msgs, envs, err := f.fetch(func() (jetstream.MessageBatch, error) { return f.cons.FetchNoWait(f.batch) })
			if err == nil && len(msgs) == 0 {
				msgs, envs, err = f.fetch(func() (jetstream.MessageBatch, error) {
					return f.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
				})
			}
			if err == nil && len(msgs) > 0 {
				err = f.deliver(msgs, envs, handle)
			}
			if err != nil {
				select {
				case <-f.stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	return nil
}

// fetch runs one pull request and decodes what it brings.
func (f *ChangeFeed) fetch(pull func() (jetstream.MessageBatch, error)) ([]jetstream.Msg, []*Envelope, error) {
	b, err := pull()
	if err != nil {
		return nil, nil, err
	}
	var msgs []jetstream.Msg
	var envs []*Envelope
	for msg := range b.Messages() {
		env, err := Decode(msg.Data())
		if err != nil || !isChange(env.Type) {
			_ = msg.Term()
			continue
		}
		msgs, envs = append(msgs, msg), append(envs, env)
	}
	if len(msgs) == 0 && b.Error() != nil && !errors.Is(b.Error(), nats.ErrTimeout) {
		return nil, nil, b.Error()
	}
	return msgs, envs, nil
}

// deliver hands a batch over until handle accepts it, then acknowledges
// it. A failed batch is kept and handed over again a second later (its ack
// deadline extended meanwhile), so no later change overtakes it; on Stop
// it is released for redelivery.
func (f *ChangeFeed) deliver(msgs []jetstream.Msg, envs []*Envelope, handle func([]*Envelope) error) error {
	for handle(envs) != nil {
		select {
		case <-f.stop:
			for _, m := range msgs {
				_ = m.Nak()
			}
			return nil
		case <-time.After(time.Second):
		}
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
	for _, m := range msgs[:len(msgs)-1] {
		_ = m.Ack()
	}
	// The last acknowledgement is confirmed, so the next pull (which the
	// server answers after it) finds the whole batch acknowledged.
	return msgs[len(msgs)-1].DoubleAck(context.Background())
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

// Stop stops delivering changes; after it returns, the handler is not
// called again.
func (f *ChangeFeed) Stop() {
	if f.cc != nil {
		f.cc.Stop()
	}
	if f.stop != nil {
		close(f.stop)
		<-f.done
		f.stop = nil
	}
}

func isChange(t Type) bool {
	return t == TypeChangeCreated || t == TypeChangeUpdated || t == TypeChangeDeleted
}
