package rss

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/mmcdole/gofeed"
)

// UserAgent is sent with every feed request.
const UserAgent = "Tributary-RSS/1.0 (+https://github.com/tributary-sync/tributary)"

const acceptHeader = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"

// maxValidatorLen bounds the ETag and Last-Modified values kept in the
// checkpoint; longer ones are not kept (and not sent back).
const maxValidatorLen = 256

// transport is shared by every fetch so connections to a feed's host are
// reused from one sync to the next.
var transport = http.DefaultTransport.(*http.Transport).Clone()

// validators are what a conditional request sends back to the server.
type validators struct {
	ETag         string
	LastModified string
}

// fetched is one fetch of a feed.
type fetched struct {
	// Feed is nil when NotModified.
	Feed *gofeed.Feed
	// NotModified is true when the server answered 304 to a conditional
	// request.
	NotModified bool
	// Final is the URL the feed was read from, after redirects; relative
	// entry links resolve against it.
	Final *url.URL
	// Validators of this answer, for the next conditional request.
	Validators validators
}

// fetch reads and parses the feed. With cond it makes a conditional request
// (If-None-Match, If-Modified-Since) and may come back NotModified. The
// client follows up to 10 redirects (Go's default) and gives up after the
// configured timeout; the body is read up to max_feed_size. A cancelled ctx
// returns ctx.Err() as is; every other failure is a *FeedError.
func fetch(ctx context.Context, cfg *config, cond *validators) (*fetched, error) {
	ferr := func(op string, status int, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &FeedError{URL: cfg.redacted, Op: op, StatusCode: status, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.url.String(), nil)
	if err != nil {
		return nil, ferr("fetch", 0, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", acceptHeader)
	if cond != nil {
		if cond.ETag != "" {
			req.Header.Set("If-None-Match", cond.ETag)
		}
		if cond.LastModified != "" {
			req.Header.Set("If-Modified-Since", cond.LastModified)
		}
	}
	client := &http.Client{Transport: transport, Timeout: cfg.timeout}
	resp, err := client.Do(req)
	if err != nil {
		return nil, ferr("fetch", 0, clientError(err, cfg))
	}
	defer func() { _ = resp.Body.Close() }()

	out := &fetched{Final: resp.Request.URL}
	if resp.StatusCode == http.StatusNotModified && cond != nil {
		out.NotModified = true
		out.Validators = *cond
		return out, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, ferr("fetch", resp.StatusCode, fmt.Errorf("HTTP %s", resp.Status))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, cfg.MaxFeedSize+1))
	if err != nil {
		return nil, ferr("fetch", 0, clientError(err, cfg))
	}
	if int64(len(body)) > cfg.MaxFeedSize {
		return nil, ferr("fetch", 0, fmt.Errorf("%w (%d bytes)", ErrFeedTooLarge, cfg.MaxFeedSize))
	}
	// A Parser holds per-parse state: one per fetch.
	feed, err := gofeed.NewParser().Parse(bytes.NewReader(body))
	if errors.Is(err, gofeed.ErrFeedTypeNotDetected) {
		err = fmt.Errorf("not an RSS, Atom or JSON feed%s", servedAs(resp.Header.Get("Content-Type")))
	}
	if err != nil {
		return nil, ferr("parse", 0, err)
	}
	out.Feed = feed
	if v := resp.Header.Get("ETag"); len(v) <= maxValidatorLen {
		out.Validators.ETag = v
	}
	if v := resp.Header.Get("Last-Modified"); len(v) <= maxValidatorLen {
		out.Validators.LastModified = v
	}
	return out, nil
}

// clientError unwraps the *url.Error of the HTTP client (whose message
// repeats the URL the FeedError already names) and says plainly when the
// configured timeout ran out.
func clientError(err error, cfg *config) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var te interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout()) {
		return fmt.Errorf("no complete answer within the timeout of %s: %w", cfg.timeout, err)
	}
	return err
}

func servedAs(contentType string) string {
	if contentType == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return " (served as " + strings.ToLower(mt) + ")"
}
