package client

import (
	"context"
	"net/http"
)

// Administration: /v1/admin/log-level.

// Log levels SetLogLevel accepts.
const (
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"
)

type logLevel struct {
	Level string `json:"level"`
}

// GetLogLevel returns the manager's log level. A manager whose level
// cannot change answers an *Error with CodeNotSupported.
//
// Route: GET /v1/admin/log-level.
func (c *Client) GetLogLevel(ctx context.Context) (string, error) {
	var out logLevel
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "v1", "admin", "log-level"); err != nil {
		return "", err
	}
	return out.Level, nil
}

// SetLogLevel changes the manager's log level until it restarts (admin)
// and returns the new level. Levels: LogLevelDebug, LogLevelInfo,
// LogLevelWarn, LogLevelError; anything else is a 422.
//
// Route: PUT /v1/admin/log-level.
func (c *Client) SetLogLevel(ctx context.Context, level string) (string, error) {
	var out logLevel
	if err := c.do(ctx, http.MethodPut, nil, logLevel{Level: level}, &out, "v1", "admin", "log-level"); err != nil {
		return "", err
	}
	return out.Level, nil
}
