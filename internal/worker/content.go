package worker

import (
	"context"

	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/internal/extract"
	"github.com/tributary-sync/tributary/pkg/connector"
)

// Object headers Tributary sets on stored content.
const (
	HeaderContentType   = content.HeaderContentType
	HeaderContentSHA256 = content.HeaderContentSHA256
)

// contentStore implements connector.ContentStorage on the shared content
// store; its bus failures are busErrors, so the sync is handed back rather
// than failed.
type contentStore struct {
	store *content.Store
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

func (c *contentStore) put(ctx context.Context, data []byte, contentType string) (string, error) {
	id, err := c.store.Put(ctx, data, contentType)
	if err != nil {
		return "", c.busErr(ctx, err)
	}
	return id, nil
}

func (c *contentStore) busErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return &busError{err}
}
