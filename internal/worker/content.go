package worker

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
)

// contentStore implements connector.ContentStorage on the JetStream object
// store. Each object is named by a fresh ULID; the object store keeps a
// SHA-256 digest of every object.
type contentStore struct {
	obs jetstream.ObjectStore
}

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

func (c *contentStore) put(ctx context.Context, data []byte, contentType string) (string, error) {
	id := ulid.Make().String()
	h := nats.Header{}
	h.Set("Content-Type", contentType)
	// A put that times out (a NATS node failing over, say) is tried again
	// under the same name: a put that did land is simply replaced.
	var err error
	for try := 0; try < 3; try++ {
		if _, err = c.obs.Put(ctx, jetstream.ObjectMeta{Name: id, Headers: h}, bytes.NewReader(data)); err == nil {
			return id, nil
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
	return "", &busError{fmt.Errorf("store content: %w", err)}
}
