package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-sync/tributary/pkg/events"
)

// Live events: GET /v1/runs/{id}/events and GET /v1/events, read as
// Server-Sent Events with reconnection.

// Event is one event from a stream.
type Event struct {
	// ID is the event's sequence in the manager's events stream, as sent
	// in the SSE "id" field. Resume after it with StreamOptions.LastEventID.
	ID string
	// Type is the event's type, such as events.TypeDocumentUpserted.
	Type events.Type
	// Data is the event's envelope as JSON (protocol.md, section 3).
	Data json.RawMessage
}

// Seq is the ID as a number: the events-stream sequence. Zero when the ID
// is not a number.
func (e Event) Seq() uint64 {
	n, _ := strconv.ParseUint(e.ID, 10, 64)
	return n
}

// Envelope decodes and validates Data, payload included.
func (e Event) Envelope() (*events.Envelope, error) {
	env, err := events.Decode(e.Data)
	if err != nil {
		return nil, fmt.Errorf("tributary client: event %s: %w", e.ID, err)
	}
	return env, nil
}

// StreamOptions configures RunEvents.
type StreamOptions struct {
	// LastEventID, when set, resumes the stream after that event: it is
	// sent as the Last-Event-ID header. Use the ID of the last Event you
	// handled, or EventStream.LastEventID of a stream that ended.
	LastEventID string
}

// EventsParams chooses what Events streams.
type EventsParams struct {
	// SourceID, when set, keeps one source's events.
	SourceID string
	// Type, when set, keeps one event type.
	Type events.Type
	// LastEventID, when set, starts after that event instead of now.
	LastEventID string
}

// RunEvents streams a run's events, from its first (or after
// opts.LastEventID) to its final one (run.completed, run.failed or
// run.cancelled), after which Next returns false and Err nil.
//
// It returns once the stream is open, or with the error of the first
// attempt: an unknown run is an *Error with Status 404. A connection that
// drops later is reopened after the last event received, with backoff
// (Config.ReconnectDelay and what follows it), so every event of the run
// comes exactly once. For a run whose events have aged out of the events
// stream (7 days), the stream ends, Err nil, without a final event.
//
// ctx bounds the whole stream, reconnections included.
//
// Route: GET /v1/runs/{id}/events.
func (c *Client) RunEvents(ctx context.Context, runID string, opts StreamOptions) (*EventStream, error) {
	u, err := c.url(nil, "v1", "runs", runID, "events")
	if err != nil {
		return nil, err
	}
	s := c.newStream(ctx, u, opts.LastEventID)
	s.runID = runID
	if err := s.connect(); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// Events streams every event published from now on (or after
// p.LastEventID), optionally of one source and one type. It never ends by
// itself: cancel ctx or call Close to stop it. It returns once the stream
// is open, so every event published after Events returns is in it;
// unknown filters are an *Error with Status 422. Dropped connections are
// reopened as for RunEvents.
//
// Route: GET /v1/events.
func (c *Client) Events(ctx context.Context, p EventsParams) (*EventStream, error) {
	q := url.Values{}
	if p.SourceID != "" {
		q.Set("source_id", p.SourceID)
	}
	if p.Type != "" {
		q.Set("type", string(p.Type))
	}
	u, _ := c.url(q, "v1", "events")
	s := c.newStream(ctx, u, p.LastEventID)
	if err := s.connect(); err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// EventStream reads a stream of events, reconnecting when the connection
// drops. Use it like a bufio.Scanner:
//
//	for stream.Next() {
//		ev := stream.Event()
//		...
//	}
//	if err := stream.Err(); err != nil { ... }
//
// or range over All. An EventStream is for one goroutine, except Close,
// which may be called from any goroutine to stop a Next that waits.
type EventStream struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	url    string
	runID  string // set for a run's stream, which ends after its final event

	mu   sync.Mutex // guards body against Close
	body io.ReadCloser
	p    *sseParser
	// events counts the events the current connection gave.
	events int

	lastID  string
	lastSeq uint64
	retry   time.Duration // the reconnection time the server asked for
	// failures counts the reconnection attempts in a row that failed and
	// the connections in a row that ended without an event or a comment.
	failures int

	ev         Event
	err        error
	done       bool
	closed     atomic.Bool
	reconnects atomic.Int64
}

func (c *Client) newStream(ctx context.Context, u, lastID string) *EventStream {
	ctx, cancel := context.WithCancel(ctx)
	s := &EventStream{c: c, ctx: ctx, cancel: cancel, url: u, lastID: lastID}
	s.lastSeq, _ = strconv.ParseUint(lastID, 10, 64)
	return s
}

// Next waits for the next event and reports whether there is one. It
// returns false when the stream ended (a run's final event was read), was
// closed, its context is done, or reconnecting failed; Err tells which.
func (s *EventStream) Next() bool {
	for !s.done {
		if s.p == nil {
			if err := s.reconnect(); err != nil {
				s.finish(err)
				return false
			}
		}
		ev, err := s.p.next()
		if err == nil {
			s.events++
			s.lastID = ev.id
			seq, numeric := parseSeq(ev.id)
			if numeric && s.lastSeq > 0 && seq <= s.lastSeq {
				continue // the server sent it already: never twice
			}
			if numeric {
				s.lastSeq = seq
			}
			s.ev = Event{ID: ev.id, Type: events.Type(ev.typ), Data: json.RawMessage(ev.data)}
			if s.runID != "" && s.ev.Type.Terminal() {
				s.finish(nil) // the server ends a run's stream after its final event
			}
			return true
		}
		s.dropped()
		switch {
		case s.ctx.Err() != nil:
			s.finish(s.ctx.Err())
		case errors.Is(err, errEventTooLarge):
			s.finish(fmt.Errorf("tributary client: %s: %w", s.path(), err))
		case s.runID != "" && errors.Is(err, io.EOF) && s.events == 0 && s.p.comments > 0 && s.runEnded():
			// The server closed an idle stream of a finished run: its
			// events are gone from the events stream. Nothing more comes.
			s.finish(nil)
		default:
			if s.events > 0 || s.p.comments > 0 {
				s.failures = 0 // it worked for a while
			} else {
				s.failures++
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if limit := s.c.cfg.MaxReconnectAttempts; limit < 0 || s.failures >= limit {
				s.finish(fmt.Errorf("tributary client: %s: stream broke off: %w", s.path(), err))
				break
			}
			s.p = nil // reconnect on the next turn
		}
	}
	return false
}

// Event is the event Next found.
func (s *EventStream) Event() Event { return s.ev }

// Err is why the stream ended: nil after a run's final event or Close,
// the context's error when it is done, else the error that made
// reconnecting fail (an *Error when the server refused).
func (s *EventStream) Err() error { return s.err }

// LastEventID is the ID of the last event received: where a new stream
// would resume.
func (s *EventStream) LastEventID() string { return s.lastID }

// Reconnects counts the connections opened after the first.
func (s *EventStream) Reconnects() int { return int(s.reconnects.Load()) }

// Close stops the stream; a Next waiting returns false with Err nil.
// It may be called more than once, from any goroutine.
func (s *EventStream) Close() error {
	s.closed.Store(true)
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.body != nil {
		_ = s.body.Close()
		s.body = nil
	}
	return nil
}

// All ranges over the stream's events; when the stream ends with an
// error, the last pair holds it. Breaking out of the loop leaves the
// stream open: Close it.
func (s *EventStream) All() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for s.Next() {
			if !yield(s.Event(), nil) {
				return
			}
		}
		if err := s.Err(); err != nil {
			yield(Event{}, err)
		}
	}
}

func (s *EventStream) path() string {
	u, err := url.Parse(s.url)
	if err != nil {
		return s.url
	}
	return "GET " + u.Path
}

func (s *EventStream) finish(err error) {
	if s.closed.Load() && errors.Is(err, context.Canceled) {
		err = nil
	}
	s.done, s.err = true, err
	s.dropped()
	s.cancel()
}

// dropped closes the current connection and keeps what its parser knew.
func (s *EventStream) dropped() {
	s.mu.Lock()
	if s.body != nil {
		_ = s.body.Close()
		s.body = nil
	}
	s.mu.Unlock()
	if s.p != nil {
		s.lastID = s.p.lastID // an id-only block moves it too
		if s.p.retry > 0 {
			s.retry = s.p.retry
		}
	}
}

// connect opens one connection after the last event received.
func (s *EventStream) connect() error {
	req, err := s.c.newRequest(s.ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	resp, err := s.c.send(req)
	if err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		_ = resp.Body.Close()
		return fmt.Errorf("tributary client: %s: answer is %q, not text/event-stream", s.path(), resp.Header.Get("Content-Type"))
	}
	s.mu.Lock()
	s.body = resp.Body
	s.mu.Unlock()
	if s.closed.Load() { // Close came while connecting
		_ = s.Close()
		return context.Canceled
	}
	s.p = newSSEParser(resp.Body, s.c.cfg.MaxEventSize, s.lastID)
	s.events = 0
	return nil
}

// reconnect opens a new connection after a drop, with backoff: it gives
// up after Config.MaxReconnectAttempts failures in a row, at once when
// the server refuses with a 4xx (the run is gone, the token revoked), and
// when the context is done.
func (s *EventStream) reconnect() error {
	for {
		if err := s.sleep(s.backoff(s.failures)); err != nil {
			return err
		}
		s.reconnects.Add(1)
		err := s.connect()
		if err == nil {
			return nil
		}
		var apiErr *Error
		switch {
		case s.ctx.Err() != nil:
			return s.ctx.Err()
		case errors.As(err, &apiErr) && apiErr.Status < 500 && apiErr.Status != http.StatusTooManyRequests:
			return err
		}
		if s.failures++; s.failures >= s.c.cfg.MaxReconnectAttempts {
			return fmt.Errorf("tributary client: %s: gave up after %d reconnection attempts: %w", s.path(), s.failures, err)
		}
	}
}

// backoff is the wait before reconnection attempt n (from 0): the base
// delay doubled n times, capped, less up to 20% jitter.
func (s *EventStream) backoff(n int) time.Duration {
	d := s.c.cfg.ReconnectDelay
	if d == 0 {
		d = s.retry
	}
	if d == 0 {
		d = defaultReconnectDelay
	}
	maxDelay := s.c.cfg.MaxReconnectDelay
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	if d > 0 {
		d -= time.Duration(rand.Int64N(int64(d)/5 + 1)) //nolint:gosec // jitter needs no secure randomness
	}
	return d
}

func (s *EventStream) sleep(d time.Duration) error {
	if d <= 0 {
		return s.ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return s.ctx.Err()
	case <-t.C:
		return nil
	}
}

// runEnded asks whether the stream's run is over.
func (s *EventStream) runEnded() bool {
	run, err := s.c.GetRun(s.ctx, s.runID)
	return err == nil && run.Status.Terminal()
}

func parseSeq(id string) (uint64, bool) {
	n, err := strconv.ParseUint(id, 10, 64)
	return n, err == nil
}
