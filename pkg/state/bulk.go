package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Asynchronous writes: compare-and-set writes sent without waiting for each
// acknowledgement, so a writer with many records to store (the manager's
// applier, a batch of catalog documents) pays one round trip for all of
// them rather than one each. Each is exactly the message the synchronous
// call publishes (the KV's subject, the expected last revision of the key
// in the Nats-Expected-Last-Subject-Sequence header) and is stored, or
// refused, by the server in the order sent. A write is durable once its
// Pending's Wait returns without error; until then it may or may not be
// stored.
//
// They publish to the bucket's own subjects ($KV.<bucket>.<key>): buckets
// reached through a JetStream domain, an API prefix or a mirror are not
// supported, as nothing in Tributary uses them.

// Pending is a write sent without waiting for its acknowledgement.
type Pending struct {
	fut    jetstream.PubAckFuture
	table  string
	key    string
	create bool
}

// Wait waits until the server stored or refused the write and returns the
// record's new revision. A write whose expected revision did not hold
// fails with ErrConflict, or ErrExists for a create.
func (p *Pending) Wait(ctx context.Context) (uint64, error) {
	select {
	case ack := <-p.fut.Ok():
		return ack.Sequence, nil
	case err := <-p.fut.Err():
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			if p.create {
				return 0, fmt.Errorf("%s %q: %w", p.table, p.key, ErrExists)
			}
			return 0, fmt.Errorf("%s %q: %w", p.table, p.key, ErrConflict)
		}
		return 0, fmt.Errorf("%s write %q: %w", p.table, p.key, err)
	case <-ctx.Done():
		return 0, fmt.Errorf("%s write %q: %w", p.table, p.key, ctx.Err())
	}
}

// CreateAsync stores v at key only if no record was ever there, without
// waiting: see Pending. Unlike Create it fails with ErrExists over a
// deleted record too (its deletion marker is the key's last revision);
// fall back to Create then.
func (t *Table[T]) CreateAsync(key string, v *T) (*Pending, error) {
	p, err := t.writeAsync(key, v, 0, false)
	if p != nil {
		p.create = true
	}
	return p, err
}

// UpdateAsync stores v at key only if the record is still at revision rev,
// like Update, without waiting: see Pending.
func (t *Table[T]) UpdateAsync(key string, v *T, rev uint64) (*Pending, error) {
	if rev == 0 {
		return nil, fmt.Errorf("%s %q: update without a revision: %w", t.name, key, ErrConflict)
	}
	return t.writeAsync(key, v, rev, false)
}

// DeleteAsync removes the record at key if it is still at revision rev
// (> 0), like Delete, without waiting: see Pending.
func (t *Table[T]) DeleteAsync(key string, rev uint64) (*Pending, error) {
	if rev == 0 {
		return nil, fmt.Errorf("%s %q: delete without a revision: %w", t.name, key, ErrConflict)
	}
	return t.writeAsync(key, nil, rev, true)
}

// kvOperationHeader marks a KV deletion (nats.go's kvop header).
const kvOperationHeader = "KV-Operation"

func (t *Table[T]) writeAsync(key string, v *T, rev uint64, del bool) (*Pending, error) {
	if t.js == nil {
		return nil, fmt.Errorf("%s %q: asynchronous writes need the store's JetStream client", t.name, key)
	}
	msg := &nats.Msg{Subject: "$KV." + t.name + "." + key, Header: nats.Header{}}
	if del {
		msg.Header.Set(kvOperationHeader, "DEL")
	} else {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: encode: %w", t.name, key, err)
		}
		msg.Data = b
	}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	fut, err := t.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("%s write %q: %w", t.name, key, err)
	}
	return &Pending{fut: fut, table: t.name, key: key}, nil
}

// maxGetMany is how many keys one batch read asks for: the server answers
// at most 1,024 subjects a request.
const maxGetMany = 1024

// GetMany reads the current record of each key, in one request per 1,024
// keys rather than one per key, and calls fn with each key that holds one
// (a key missing from the calls holds no record). It is for the buckets
// read with direct gets (the catalog, the content index); others are read
// one key at a time. fn is called from one goroutine, in no particular
// order.
func (t *Table[T]) GetMany(ctx context.Context, keys []string, fn func(key string, v *T, rev uint64)) error {
	if !directGets[t.name] || t.js == nil {
		for _, k := range keys {
			v, rev, err := t.Get(ctx, k)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			fn(k, v, rev)
		}
		return nil
	}
	for len(keys) > 0 {
		n := min(len(keys), maxGetMany)
		if err := t.getMany(ctx, keys[:n], fn); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (t *Table[T]) getMany(ctx context.Context, keys []string, fn func(key string, v *T, rev uint64)) error {
	pre := "$KV." + t.name + "."
	subjects := make([]string, len(keys))
	for i, k := range keys {
		subjects[i] = pre + k
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msgs, err := jetstreamext.GetLastMsgsFor(rctx, t.js, "KV_"+t.name, subjects)
	if err != nil {
		return fmt.Errorf("%s get many: %w", t.name, err)
	}
	// The answer ends early, without an error, when it times out: each
	// message says how many are left after it, so a complete answer ends
	// with 0. Keys an incomplete answer left out are read one by one.
	seen := make(map[string]bool, len(keys))
	complete := false
	for msg, err := range msgs {
		if errors.Is(err, jetstreamext.ErrNoMessages) && len(seen) == 0 {
			return nil // no key holds anything
		}
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break // a record failed to load: read the rest one by one
		}
		if err != nil {
			return fmt.Errorf("%s get many: %w", t.name, err)
		}
		key := strings.TrimPrefix(msg.Subject, pre)
		seen[key] = true
		complete = msg.Header.Get("Nats-Num-Pending") == "0"
		if op := msg.Header.Get(kvOperationHeader); op == "DEL" || op == "PURGE" {
			continue
		}
		v, err := t.decode(key, msg.Data)
		if err != nil {
			return err
		}
		fn(key, v, msg.Sequence)
	}
	if complete {
		return nil
	}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		v, rev, err := t.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		fn(k, v, rev)
	}
	return nil
}
