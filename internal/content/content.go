// Package content stores document content in the JetStream object store
// (bucket tributary_content), once per SHA-256 digest, and reads it back.
// Workers store what connectors save; the manager stores manually added
// documents, serves content over the API and collects content no catalog
// document references any more.
package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/oklog/ulid/v2"

	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Object headers Tributary sets on stored content (the object store keeps
// its own SHA-256 digest as well).
const (
	HeaderContentType   = "Content-Type"
	HeaderContentSHA256 = "Tributary-Content-Sha256"
)

// ErrNotFound is returned when no object has the id.
var ErrNotFound = errors.New("content not found")

// Store is the content store. Each object is named by a fresh ULID; the
// index bucket maps the SHA-256 of the bytes to the object holding them, so
// identical content is stored once and keeps its id.
type Store struct {
	js    jetstream.JetStream
	obs   jetstream.ObjectStore
	index *state.Table[state.ContentRef]
}

// New returns a store over the object store (bucket events.BucketContent)
// and its digest index; js is the client obs was bound with.
func New(js jetstream.JetStream, obs jetstream.ObjectStore, index *state.Table[state.ContentRef]) *Store {
	return &Store{js: js, obs: obs, index: index}
}

// Objects returns the underlying object store.
func (s *Store) Objects() jetstream.ObjectStore { return s.obs }

// Digest is the hex SHA-256 of data, the key of its index entry.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Put stores data once per digest and returns the id of the object that
// holds it. Its errors are NATS or JetStream failures (or ctx's).
func (s *Store) Put(ctx context.Context, data []byte, contentType string) (string, error) {
	digest := Digest(data)
	if ref, _, err := s.index.Get(ctx, digest); err == nil {
		return ref.ContentID, nil
	} else if !errors.Is(err, state.ErrNotFound) {
		return "", fmt.Errorf("look up content: %w", err)
	}
	id := ulid.Make().String()
	h := nats.Header{}
	h.Set(HeaderContentType, contentType)
	h.Set(HeaderContentSHA256, digest)
	// A put that times out (a NATS node failing over, say) is tried again
	// under the same name, through ObjectStore.Put: a put that did land is
	// simply replaced, its chunk purged.
	var err error
	for try := 0; try < 3; try++ {
		if try == 0 {
			err = s.putObject(ctx, id, h, data)
		} else {
			_, err = s.obs.Put(ctx, jetstream.ObjectMeta{Name: id, Headers: h}, bytes.NewReader(data))
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("store content: %w", err)
		}
		select {
		case <-time.After(time.Duration(try+1) * 250 * time.Millisecond):
		case <-ctx.Done():
			return "", fmt.Errorf("store content: %w", ctx.Err())
		}
	}
	if err != nil {
		return "", fmt.Errorf("store content: %w", err)
	}
	// The object is stored before the index names it, so an index entry
	// never points at nothing. Another writer of the same bytes may have won
	// the race: use its object and drop ours.
	ref := &state.ContentRef{ContentID: id, Size: int64(len(data)), ContentType: contentType, CreatedAt: time.Now().UTC()}
	if _, err := s.index.Create(ctx, digest, ref); err != nil {
		if !errors.Is(err, state.ErrExists) {
			return "", fmt.Errorf("index content: %w", err)
		}
		other, _, gerr := s.index.Get(ctx, digest)
		if gerr != nil {
			return "", fmt.Errorf("look up content: %w", gerr)
		}
		_ = s.obs.Delete(ctx, id)
		return other.ContentID, nil
	}
	return id, nil
}

const (
	// chunkSize is the object store's default chunk size.
	chunkSize = 128 * 1024
	// putTimeout bounds a put's wait for its acknowledgements.
	putTimeout = 30 * time.Second
)

// putObject stores data as the object named id. Content of one chunk is
// written as ObjectStore.Put writes it (a chunk message, then the object's
// meta message rolling up its subject, in the object store's format, read
// back by ObjectStore.Get, which checks the digest) but through the
// store's own JetStream client, both published at once: Put also reads
// the name's current meta (a fresh ULID has none) and opens a JetStream
// context and a reply subscription of its own per call, which made it the
// costliest step of saving small content. Larger content goes through Put.
func (s *Store) putObject(ctx context.Context, id string, h nats.Header, data []byte) error {
	meta := jetstream.ObjectMeta{Name: id, Headers: h}
	if s.js == nil || len(data) > chunkSize {
		_, err := s.obs.Put(ctx, meta, bytes.NewReader(data))
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, putTimeout)
		defer cancel()
	}
	meta.Opts = &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}
	info := jetstream.ObjectInfo{ObjectMeta: meta, Bucket: events.BucketContent, NUID: nuid.Next(), Size: uint64(len(data))}
	sum := sha256.Sum256(data)
	info.Digest = "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:])
	chunk := &nats.Msg{Subject: "$O." + events.BucketContent + ".C." + info.NUID, Data: data}
	if len(data) > 0 {
		info.Chunks = 1
	}
	mb, err := json.Marshal(&info)
	if err != nil {
		return fmt.Errorf("object meta: %w", err)
	}
	mm := nats.NewMsg("$O." + events.BucketContent + ".M." + base64.URLEncoding.EncodeToString([]byte(id)))
	mm.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	mm.Data = mb
	var futs []jetstream.PubAckFuture
	if info.Chunks > 0 {
		f, err := s.js.PublishMsgAsync(chunk)
		if err != nil {
			return err
		}
		futs = append(futs, f)
	}
	f, err := s.js.PublishMsgAsync(mm)
	if err != nil {
		return err
	}
	futs = append(futs, f)
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Object is stored content being read.
type Object struct {
	jetstream.ObjectResult
	// ContentType is the type it was stored with.
	ContentType string
	Size        uint64
}

// Open opens the object with the id for reading; the caller closes it.
func (s *Store) Open(ctx context.Context, id string) (*Object, error) {
	r, err := s.obs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("open content %s: %w", id, err)
	}
	info, err := r.Info()
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("open content %s: %w", id, err)
	}
	ct := info.Headers.Get(HeaderContentType)
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &Object{ObjectResult: r, ContentType: ct, Size: info.Size}, nil
}
