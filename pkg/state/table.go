package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Table is a typed view of one KV bucket: keys map to JSON-encoded T.
type Table[T any] struct {
	kv   jetstream.KeyValue
	name string
	// js publishes the asynchronous writes (async.go); nil disables them.
	js jetstream.JetStream
}

func newTable[T any](js jetstream.JetStream, kv jetstream.KeyValue) *Table[T] {
	return &Table[T]{kv: kv, name: kv.Bucket(), js: js}
}

// Bucket returns the name of the KV bucket behind the table.
func (t *Table[T]) Bucket() string { return t.name }

// KV returns the bucket, for watchers.
func (t *Table[T]) KV() jetstream.KeyValue { return t.kv }

// Get returns the record at key and its revision.
func (t *Table[T]) Get(ctx context.Context, key string) (*T, uint64, error) {
	e, err := t.kv.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil, 0, fmt.Errorf("%s %q: %w", t.name, key, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("%s get %q: %w", t.name, key, err)
	}
	v, err := t.decode(key, e.Value())
	if err != nil {
		return nil, 0, err
	}
	return v, e.Revision(), nil
}

func (t *Table[T]) decode(key string, b []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s %q: decode: %w", t.name, key, err)
	}
	return v, nil
}

// Create stores v at key only if there is no record there (a deleted record
// counts as none). It returns ErrExists otherwise.
func (t *Table[T]) Create(ctx context.Context, key string, v *T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: encode: %w", t.name, key, err)
	}
	rev, err := t.kv.Create(ctx, key, b)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("%s %q: %w", t.name, key, ErrExists)
		}
		return 0, fmt.Errorf("%s create %q: %w", t.name, key, err)
	}
	return rev, nil
}

// Put stores v at key whatever is there. Use it only for records with a
// single writer.
func (t *Table[T]) Put(ctx context.Context, key string, v *T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: encode: %w", t.name, key, err)
	}
	rev, err := t.kv.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("%s put %q: %w", t.name, key, err)
	}
	return rev, nil
}

// Update stores v at key only if the record is still at revision rev. A
// zero rev is a conflict: use Create for a record that does not exist.
func (t *Table[T]) Update(ctx context.Context, key string, v *T, rev uint64) (uint64, error) {
	if rev == 0 {
		return 0, fmt.Errorf("%s %q: update without a revision: %w", t.name, key, ErrConflict)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: encode: %w", t.name, key, err)
	}
	nrev, err := t.kv.Update(ctx, key, b, rev)
	if err != nil {
		if isConflict(err) {
			return 0, fmt.Errorf("%s %q: %w", t.name, key, ErrConflict)
		}
		return 0, fmt.Errorf("%s update %q: %w", t.name, key, err)
	}
	return nrev, nil
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

// Mutate reads the record at key, calls fn on it, and writes the result back
// with compare-and-set, retrying from the read when another writer got there
// first. fn may be called more than once and must not have side effects. When
// fn returns an error nothing is written and the error is returned as is.
func (t *Table[T]) Mutate(ctx context.Context, key string, fn func(v *T) error) (*T, uint64, error) {
	for {
		v, rev, err := t.Get(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		if err := fn(v); err != nil {
			return nil, 0, err
		}
		nrev, err := t.Update(ctx, key, v, rev)
		if err == nil {
			return v, nrev, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, 0, err
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
}

// Delete removes the record at key; with rev > 0 only if it is still at that
// revision (else ErrConflict). Deleting a missing record with rev 0 is not
// an error.
func (t *Table[T]) Delete(ctx context.Context, key string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev > 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	if err := t.kv.Delete(ctx, key, opts...); err != nil {
		if isConflict(err) {
			return fmt.Errorf("%s %q: %w", t.name, key, ErrConflict)
		}
		return fmt.Errorf("%s delete %q: %w", t.name, key, err)
	}
	return nil
}

// Entry is one record and its key and revision.
type Entry[T any] struct {
	Key      string
	Revision uint64
	Value    *T
}

// List returns every record in the table. It reads the bucket's current
// values in one pass of a watcher, not one request per key.
func (t *Table[T]) List(ctx context.Context) ([]Entry[T], error) {
	var out []Entry[T]
	err := t.Each(ctx, ">", func(e Entry[T]) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Each calls fn with every record whose key matches the subject-style
// filter (for example "<source_id>.*"), streaming the current values
// through one watcher rather than one request per key. It fails rather
// than stop early: a partial pass never passes for a whole one.
func (t *Table[T]) Each(ctx context.Context, filter string, fn func(Entry[T]) error) error {
	w, err := t.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("%s list: %w", t.name, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s list: %w", t.name, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("%s list: watcher closed before the initial values were read", t.name)
			}
			if e == nil { // end of the initial values
				return nil
			}
			v, err := t.decode(e.Key(), e.Value())
			if err != nil {
				return err
			}
			if err := fn(Entry[T]{Key: e.Key(), Revision: e.Revision(), Value: v}); err != nil {
				return err
			}
		}
	}
}

// EachKey calls fn with every key matching the subject-style filter (for
// example "<source_id>.*"), streaming them rather than loading them all.
func (t *Table[T]) EachKey(ctx context.Context, filter string, fn func(key string) error) error {
	kl, err := t.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("%s keys: %w", t.name, err)
	}
	defer func() { _ = kl.Stop() }()
	for k := range kl.Keys() {
		if err := fn(k); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// TTL returns the bucket's time to live: how long a record lives after its
// last write (0: forever).
func (t *Table[T]) TTL(ctx context.Context) (time.Duration, error) {
	st, err := t.kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s status: %w", t.name, err)
	}
	return st.TTL(), nil
}
