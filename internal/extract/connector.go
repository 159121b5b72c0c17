package extract

import (
	"errors"
	"fmt"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// ForConnector is Text with default limits and the errors of the connector
// SDK: what ContentStorage.ExtractText returns.
func ForConnector(data []byte, mimeType, filename string) (connector.Extracted, error) {
	res, err := Text(data, mimeType, filename, Options{})
	var unsupported *UnsupportedError
	var tooLarge *TooLargeError
	switch {
	case errors.As(err, &unsupported):
		return connector.Extracted{}, fmt.Errorf("%w: %w", connector.ErrUnsupportedContent, err)
	case errors.As(err, &tooLarge):
		return connector.Extracted{}, fmt.Errorf("%w: %w", connector.ErrContentTooLarge, err)
	case errors.Is(err, ErrMalformed):
		return connector.Extracted{}, fmt.Errorf("%w: %w", connector.ErrMalformedContent, err)
	case err != nil:
		return connector.Extracted{}, err
	}
	return connector.Extracted{Text: res.Text, MimeType: res.MimeType, Truncated: res.Truncated}, nil
}
