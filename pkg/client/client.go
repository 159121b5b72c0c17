package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/internal/version"
)

// Config configures a Client. Only BaseURL is required; every other field
// has a default, applied by New.
type Config struct {
	// BaseURL is where the manager's API is served, such as
	// "http://127.0.0.1:8420" (the manager's default) or
	// "https://sync.example.com/tributary" behind a proxy that serves it
	// under a path. It must be an absolute http or https URL without
	// user info, query or fragment; a trailing slash is ignored.
	BaseURL string

	// Token is the bearer token sent as "Authorization: Bearer <token>"
	// on every request. Leave it empty when the manager runs without a
	// tokens file. Its role (viewer, operator, admin) decides what the
	// token may do; a request beyond it is an *Error with Status 403.
	// The token is never part of an error or a log line.
	Token string

	// HTTPClient sends the requests. Default: a new http.Client with no
	// overall timeout (event streams stay open for as long as their
	// context lets them); Timeout below bounds the other requests.
	// Give one to use your own transport, proxy or TLS settings. Keep its
	// Timeout zero if you use event streams.
	HTTPClient *http.Client

	// Timeout bounds each request other than event streams and document
	// content, from sending it to reading the whole answer, on top of the
	// caller's context. Default 30 s; a negative value means no bound.
	Timeout time.Duration

	// UserAgent is sent as the User-Agent header. Default
	// "tributary-go-client/<version>".
	UserAgent string

	// ReconnectDelay is the wait before the first attempt to reconnect a
	// dropped event stream; each failed attempt in a row doubles it, up to
	// MaxReconnectDelay, with up to 20% jitter. Zero means the delay the
	// server asks for in the stream (its "retry:" field, 2 s for the
	// manager), or 1 s before it has said.
	ReconnectDelay time.Duration

	// MaxReconnectDelay caps the wait between reconnection attempts.
	// Default 30 s.
	MaxReconnectDelay time.Duration

	// MaxReconnectAttempts is how many reconnection attempts in a row may
	// fail (no connection, an answer of 5xx or 429, or a connection that
	// ends before giving an event or a keep-alive) before the event stream
	// gives up with the last error. A connection that gives something
	// resets the count. A 4xx ends the stream at once. Default 10; a
	// negative value means the stream never reconnects and ends with the
	// error of the dropped connection.
	MaxReconnectAttempts int

	// MaxEventSize bounds one server-sent event (a line, or the data of
	// one event) the client accepts. Default 4 MiB; the manager's events
	// are at most 1 MiB.
	MaxEventSize int
}

// Defaults.
const (
	DefaultTimeout              = 30 * time.Second
	DefaultMaxReconnectDelay    = 30 * time.Second
	DefaultMaxReconnectAttempts = 10
	DefaultMaxEventSize         = 4 << 20

	defaultReconnectDelay = time.Second
)

// Client calls one manager's HTTP API. It is safe for concurrent use; make
// one and share it.
type Client struct {
	cfg  Config
	base *url.URL
	hc   *http.Client
}

// New checks cfg, applies its defaults and returns a Client. It makes no
// request.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := checkToken(cfg.Token); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "tributary-go-client/" + version.Version
	}
	if cfg.ReconnectDelay < 0 {
		return nil, errors.New("tributary client: ReconnectDelay is negative")
	}
	if cfg.MaxReconnectDelay < 0 {
		return nil, errors.New("tributary client: MaxReconnectDelay is negative")
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	if cfg.MaxReconnectAttempts == 0 {
		cfg.MaxReconnectAttempts = DefaultMaxReconnectAttempts
	}
	if cfg.MaxEventSize < 0 {
		return nil, errors.New("tributary client: MaxEventSize is negative")
	}
	if cfg.MaxEventSize == 0 {
		cfg.MaxEventSize = DefaultMaxEventSize
	}
	return &Client{cfg: cfg, base: base, hc: cfg.HTTPClient}, nil
}

// BaseURL is the API's base URL, as normalised by New.
func (c *Client) BaseURL() string { return c.base.String() }

func parseBaseURL(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("tributary client: BaseURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not the URL itself: it may hold a password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("tributary client: BaseURL is not an absolute http or https URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("tributary client: BaseURL %q: scheme must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("tributary client: BaseURL %q has no host", raw)
	case u.User != nil:
		// Never echo the URL here: it holds a secret.
		return nil, errors.New("tributary client: BaseURL must not hold user info; give the token in Config.Token")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("tributary client: BaseURL %q must not have a query", raw)
	case u.Fragment != "":
		return nil, fmt.Errorf("tributary client: BaseURL %q must not have a fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

func checkToken(tok string) error {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c == 0x7F {
			return errors.New("tributary client: Token holds a space or control character")
		}
	}
	return nil
}

// url builds the URL of an API path from its segments, each escaped, and
// a query. An empty, "." or ".." segment (an id left blank, say) is
// refused: the server would clean it into another route.
func (c *Client) url(q url.Values, segments ...string) (string, error) {
	u := *c.base
	var plain, escaped strings.Builder
	plain.WriteString(c.base.Path)
	escaped.WriteString(c.base.EscapedPath())
	for _, s := range segments {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("%w: %q in %s", ErrInvalidID, s, strings.Join(segments, "/"))
		}
		plain.WriteString("/" + s)
		escaped.WriteString("/" + url.PathEscape(s))
	}
	// RawPath keeps a slash inside an id escaped.
	u.Path, u.RawPath = plain.String(), escaped.String()
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// newRequest builds a request with the client's headers.
func (c *Client) newRequest(ctx context.Context, method, u string, body any) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("tributary client: encode %s %s request: %w", method, u, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, fmt.Errorf("tributary client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	return req, nil
}

// send sends a request and returns the response when its status is 2xx;
// any other status is read and returned as an *Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tributary client: %s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer func() { _ = resp.Body.Close() }()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// withTimeout applies Config.Timeout to a request's context.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.cfg.Timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// do sends a JSON request (body nil for none) to the path and decodes a
// JSON answer into out (nil to discard it).
func (c *Client) do(ctx context.Context, method string, q url.Values, body, out any, segments ...string) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	u, err := c.url(q, segments...)
	if err != nil {
		return err
	}
	req, err := c.newRequest(ctx, method, u, body)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("tributary client: %s %s: decode answer: %w", method, req.URL.Path, err)
	}
	return nil
}

// PageParams chooses a page of a paged list. Zero values mean the
// server's defaults: page 1, 50 items.
type PageParams struct {
	// Page is the page number, from 1.
	Page int
	// Size is the number of items a page, 1 to 1000.
	Size int
}

func (p PageParams) values() url.Values {
	q := url.Values{}
	if p.Page != 0 {
		q.Set("page", strconv.Itoa(p.Page))
	}
	if p.Size != 0 {
		q.Set("size", strconv.Itoa(p.Size))
	}
	return q
}

// Page is one page of a paged list.
type Page[T any] struct {
	Items []T `json:"items"`
	// Total counts every matching item, not only this page's.
	Total int `json:"total"`
	Page  int `json:"page"`
	Size  int `json:"size"`
}

// list is the answer of the lists that are not paged.
type list[T any] struct {
	Items []T `json:"items"`
	Total int `json:"total"`
}
