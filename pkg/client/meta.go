package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Health and version: GET /health and GET /api/version, at the root and
// open without a token.

// Health is the answer of GET /health.
type Health struct {
	// Status is "ok" or "unavailable".
	Status  string `json:"status"`
	Version string `json:"version"`
	NATS    struct {
		Connected bool   `json:"connected"`
		Status    string `json:"status"`
		// URL is where NATS clients (workers, indexers) should connect.
		URL   string  `json:"url"`
		RTTMs float64 `json:"rtt_ms,omitempty"`
	} `json:"nats"`
	JetStream struct {
		OK           bool   `json:"ok"`
		Error        string `json:"error,omitempty"`
		Streams      int    `json:"streams,omitempty"`
		Consumers    int    `json:"consumers,omitempty"`
		StorageBytes uint64 `json:"storage_bytes,omitempty"`
		MemoryBytes  uint64 `json:"memory_bytes,omitempty"`
		Domain       string `json:"domain,omitempty"`
	} `json:"jetstream"`
}

// Version is the answer of GET /api/version.
type Version struct {
	Version string `json:"version"`
	// Protocol is the wire-protocol version of pkg/events.
	Protocol int `json:"protocol"`
}

// Health checks the manager. When it is unhealthy (503) Health returns
// both the report and an *Error with Status 503 and Code CodeUnavailable.
//
// Route: GET /health.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	u, _ := c.url(nil, "health")
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tributary client: GET /health: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusServiceUnavailable {
		var h Health
		if json.NewDecoder(resp.Body).Decode(&h) == nil && h.Status != "" {
			msg := "The manager is unhealthy"
			if h.JetStream.Error != "" {
				msg += ": " + h.JetStream.Error
			}
			return &h, &Error{Status: resp.StatusCode, Code: CodeUnavailable, Message: msg}
		}
		return nil, &Error{Status: resp.StatusCode, Code: CodeUnavailable, Message: "The manager is unhealthy"}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return nil, fmt.Errorf("tributary client: GET /health: decode answer: %w", err)
	}
	return &h, nil
}

// Version returns the manager's build and protocol version.
//
// Route: GET /api/version.
func (c *Client) Version(ctx context.Context) (*Version, error) {
	var out Version
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "api", "version"); err != nil {
		return nil, err
	}
	return &out, nil
}

// OpenAPI returns the manager's OpenAPI 3.1 description of its API.
//
// Route: GET /openapi.json.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	if err := c.do(ctx, http.MethodGet, nil, nil, &out, "openapi.json"); err != nil {
		return nil, err
	}
	return out, nil
}

// Metrics returns the manager's Prometheus metrics in the text format.
//
// Route: GET /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	u, _ := c.url(nil, "metrics")
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("tributary client: GET /metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", decodeError(resp)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("tributary client: GET /metrics: %w", err)
	}
	return string(b), nil
}
