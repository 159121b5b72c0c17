package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/tributary-sync/tributary/internal/extract"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Object headers Tributary sets on stored content (the object store keeps
// its own SHA-256 digest as well).
const (
	HeaderContentType   = "Content-Type"
	HeaderContentSHA256 = "Tributary-Content-Sha256"
)

// contentStore implements connector.ContentStorage on the JetStream object
// store. Each object is named by a fresh ULID; the index bucket maps the
// SHA-256 of the bytes to the object holding them, so identical content is
// stored once and keeps its id.
type contentStore struct {
	obs   jetstream.ObjectStore
	index *state.Table[state.ContentRef]
}

var _ connector.ContentStorage = (*contentStore)(nil)

func (c *contentStore) Save(ctx context.Context, text string, contentType string) (string, error) {
	if contentType == "" {
		contentType = "text/plain; charset=utf-8"
	}
	return c.put(ctx, []byte(text), contentType)
}

func (c *contentStore) SaveBinary(ctx context.Context, data []byte, contentType string) (string, error) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return c.put(ctx, data, contentType)
}

func (c *contentStore) ExtractText(_ context.Context, data []byte, mimeType, filename string) (connector.Extracted, error) {
	return extract.ForConnector(data, mimeType, filename)
}

func (c *contentStore) ExtractAndStore(ctx context.Context, data []byte, mimeType, filename string) (string, connector.Extracted, error) {
	ex, err := c.ExtractText(ctx, data, mimeType, filename)
	if err != nil {
		return "", ex, err
	}
	id, err := c.Save(ctx, ex.Text, "text/plain; charset=utf-8")
	return id, ex, err
}

// put stores data once per digest and returns the id of the object that
// holds it.
func (c *contentStore) put(ctx context.Context, data []byte, contentType string) (string, error) {
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	if ref, _, err := c.index.Get(ctx, digest); err == nil {
		return ref.ContentID, nil
	} else if !errors.Is(err, state.ErrNotFound) {
		return "", c.busErr(ctx, fmt.Errorf("look up content: %w", err))
	}
	id := ulid.Make().String()
	h := nats.Header{}
	h.Set(HeaderContentType, contentType)
	h.Set(HeaderContentSHA256, digest)
	// A put that times out (a NATS node failing over, say) is tried again
	// under the same name: a put that did land is simply replaced.
	var err error
	for try := 0; try < 3; try++ {
		if _, err = c.obs.Put(ctx, jetstream.ObjectMeta{Name: id, Headers: h}, bytes.NewReader(data)); err == nil {
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
		return "", &busError{fmt.Errorf("store content: %w", err)}
	}
	// The object is stored before the index names it, so an index entry
	// never points at nothing. Another writer of the same bytes may have won
	// the race: use its object and drop ours.
	ref := &state.ContentRef{ContentID: id, Size: int64(len(data)), ContentType: contentType, CreatedAt: time.Now().UTC()}
	if _, err := c.index.Create(ctx, digest, ref); err != nil {
		if !errors.Is(err, state.ErrExists) {
			return "", c.busErr(ctx, fmt.Errorf("index content: %w", err))
		}
		other, _, gerr := c.index.Get(ctx, digest)
		if gerr != nil {
			return "", c.busErr(ctx, fmt.Errorf("look up content: %w", gerr))
		}
		_ = c.obs.Delete(ctx, id)
		return other.ContentID, nil
	}
	return id, nil
}

func (c *contentStore) busErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return &busError{err}
}
