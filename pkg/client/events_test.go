package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/internal/api"
	"github.com/tributary-sync/tributary/pkg/client"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

var errReset = errors.New("connection reset by test")

// cut says how one event-stream connection is dropped: after how many
// events, and with what error (io.EOF looks like a clean close).
type cut struct {
	after int
	err   error
}

// dropTransport drops event-stream connections as its plan says: the n-th
// connection is cut in the middle of the id line of the event after
// plan[n].after (so the client sees an incomplete event), and then fails
// with plan[n].err. Connections past the plan are left alone; once refuse
// is set, new connections fail or get refuse's answer.
type dropTransport struct {
	base   http.RoundTripper
	onDrop func(n int)

	mu      sync.Mutex
	plan    []cut
	conns   int
	lastIDs []string // the Last-Event-ID of each connection
	refuse  func() (*http.Response, error)
}

func (d *dropTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Accept") != "text/event-stream" {
		return d.base.RoundTrip(req)
	}
	d.mu.Lock()
	n := d.conns
	d.conns++
	d.lastIDs = append(d.lastIDs, req.Header.Get("Last-Event-ID"))
	refuse := d.refuse
	var c *cut
	if n < len(d.plan) {
		c = &d.plan[n]
	}
	d.mu.Unlock()
	if refuse != nil && n > 0 {
		return refuse()
	}
	resp, err := d.base.RoundTrip(req)
	if err != nil || c == nil {
		return resp, err
	}
	resp.Body = &dropBody{rc: resp.Body, after: c.after, err: c.err, onDrop: func() {
		if d.onDrop != nil {
			d.onDrop(n)
		}
	}}
	return resp, nil
}

func (d *dropTransport) connections() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conns
}

// dropBody passes the stream through until the id line of event after+1
// has begun, then closes the connection.
type dropBody struct {
	rc     io.ReadCloser
	after  int
	err    error
	onDrop func()

	col    int
	prefix [3]byte
	seen   int
	cut    bool
}

func (b *dropBody) Read(p []byte) (int, error) {
	if b.cut {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	for i := 0; i < n; i++ {
		if p[i] == '\n' {
			b.col = 0
			continue
		}
		if b.col < 3 {
			b.prefix[b.col] = p[i]
		}
		b.col++
		if b.col == 3 && string(b.prefix[:]) == "id:" {
			if b.seen++; b.seen > b.after {
				b.cut = true
				_ = b.rc.Close()
				b.onDrop()
				return i + 1, nil
			}
		}
	}
	return n, err
}

func (b *dropBody) Close() error { return b.rc.Close() }

// readAll reads a stream to its end.
func readAll(t *testing.T, s *client.EventStream) []client.Event {
	t.Helper()
	var out []client.Event
	for s.Next() {
		out = append(out, s.Event())
	}
	return out
}

func ids(evs []client.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// The key reliability property: a client whose connection drops three
// times while the run goes on, each time in the middle of an event,
// reconnects and receives the run's whole event sequence exactly once,
// and the stream ends after the run's final event.
func TestRunEventsSurviveDroppedConnections(t *testing.T) {
	s := start(t)
	plain := newClient(t, s.URL, client.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	const docs = 40
	src, err := plain.CreateSource(ctx, client.CreateSourceRequest{Name: "slow", Connector: "synthetic",
		Config: map[string]any{"count": docs, "pace": "25ms", "checkpoint_every": 10}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu            sync.Mutex
		statusAtDrops []state.RunStatus
		runID         string
	)
	dt := &dropTransport{base: http.DefaultTransport, plan: []cut{{5, errReset}, {7, io.EOF}, {9, errReset}}}
	dt.onDrop = func(int) {
		run, err := plain.GetRun(ctx, runID)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		statusAtDrops = append(statusAtDrops, run.Status)
		mu.Unlock()
	}
	c := newClient(t, s.URL, client.Config{HTTPClient: &http.Client{Transport: dt}, ReconnectDelay: 10 * time.Millisecond})

	run, err := plain.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	runID = run.ID
	stream, err := c.RunEvents(ctx, run.ID, client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, stream)
	if err := stream.Err(); err != nil {
		t.Fatalf("stream ended with %v after %d events", err, len(got))
	}
	if stream.Reconnects() != 3 || dt.connections() != 4 {
		t.Fatalf("%d reconnections over %d connections, want 3 over 4", stream.Reconnects(), dt.connections())
	}
	// Each reconnection resumed after the last whole event received.
	dt.mu.Lock()
	wantIDs := []string{"", got[4].ID, got[4+7].ID, got[4+7+9].ID}
	if strings.Join(dt.lastIDs, ",") != strings.Join(wantIDs, ",") {
		t.Fatalf("Last-Event-ID of the connections: %q, want %q", dt.lastIDs, wantIDs)
	}
	dt.mu.Unlock()
	mu.Lock()
	for i, st := range statusAtDrops {
		if st.Terminal() {
			t.Fatalf("drop %d came after the run ended (%s): the test proves nothing", i+1, st)
		}
	}
	if len(statusAtDrops) != 3 {
		t.Fatalf("%d drops", len(statusAtDrops))
	}
	mu.Unlock()

	// The run's whole sequence, read afterwards on a connection left alone.
	end, err := plain.WaitRun(ctx, run.ID, 20*time.Millisecond)
	if err != nil || end.Status != state.RunCompleted {
		t.Fatalf("run: %+v %v", end, err)
	}
	full, err := plain.RunEvents(ctx, run.ID, client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, full)
	if full.Err() != nil {
		t.Fatal(full.Err())
	}
	if strings.Join(ids(got), ",") != strings.Join(ids(want), ",") {
		t.Fatalf("received %d events:\n%v\nthe run has %d:\n%v", len(got), ids(got), len(want), ids(want))
	}
	seen := map[string]bool{}
	upserted := map[string]bool{}
	var last uint64
	for i, ev := range got {
		if ev.Seq() <= last {
			t.Fatalf("event %d: id %s after %d", i, ev.ID, last)
		}
		last = ev.Seq()
		if ev.Type != want[i].Type || string(ev.Data) != string(want[i].Data) {
			t.Fatalf("event %s differs: %s %s, want %s %s", ev.ID, ev.Type, ev.Data, want[i].Type, want[i].Data)
		}
		env, err := ev.Envelope()
		if err != nil {
			t.Fatal(err)
		}
		if env.RunID != run.ID || env.Type != ev.Type || seen[env.ID] {
			t.Fatalf("event %s: %+v", ev.ID, env)
		}
		seen[env.ID] = true
		if p, ok := env.Payload().(*events.DocumentUpserted); ok {
			upserted[p.Document.ExternalID] = true
		}
	}
	if len(upserted) != docs || got[0].Type != events.TypeRunStarted || got[len(got)-1].Type != events.TypeRunCompleted {
		t.Fatalf("%d documents; first %s, last %s", len(upserted), got[0].Type, got[len(got)-1].Type)
	}
	t.Logf("%d events over %d connections; drops while the run was %v", len(got), dt.connections(), statusAtDrops)
	if stream.LastEventID() != got[len(got)-1].ID {
		t.Fatalf("last event id %s", stream.LastEventID())
	}
}

func TestRunEventsResumeAndEnd(t *testing.T) {
	s := start(t, api.WithKeepAlive(50*time.Millisecond))
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()
	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "gen", Connector: "synthetic", Config: map[string]int{"count": 5}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, c, run.ID, "the end", terminal)

	stream, err := c.RunEvents(ctx, run.ID, client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var all []client.Event
	for ev, err := range stream.All() {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ev)
	}
	if len(all) < 7 || !all[len(all)-1].Type.Terminal() {
		t.Fatalf("%d events, last %+v", len(all), all[len(all)-1])
	}

	// After the third: the rest, nothing twice.
	rest, err := c.RunEvents(ctx, run.ID, client.StreamOptions{LastEventID: all[2].ID})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, rest)
	if rest.Err() != nil || strings.Join(ids(got), ",") != strings.Join(ids(all[3:]), ",") {
		t.Fatalf("after %s: %v (%v), want %v", all[2].ID, ids(got), rest.Err(), ids(all[3:]))
	}

	// After the final event nothing comes: the server closes the idle
	// stream of a finished run, and the client takes that for the end.
	start := time.Now()
	after, err := c.RunEvents(ctx, run.ID, client.StreamOptions{LastEventID: all[len(all)-1].ID})
	if err != nil {
		t.Fatal(err)
	}
	if after.Next() || after.Err() != nil || after.Reconnects() != 0 {
		t.Fatalf("after the end: event %+v, err %v, %d reconnections", after.Event(), after.Err(), after.Reconnects())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s to end", d)
	}

	_, err = c.RunEvents(ctx, "nope", client.StreamOptions{})
	mustAPIError(t, err, 404, client.CodeNotFound)
	_, err = c.RunEvents(ctx, run.ID, client.StreamOptions{LastEventID: "x"})
	if e := mustAPIError(t, err, 422, client.CodeValidation); e.Detail[0].Field() != "header.Last-Event-ID" {
		t.Fatalf("detail: %+v", e.Detail)
	}
}

func TestEventsFirehose(t *testing.T) {
	s := start(t, api.WithKeepAlive(50*time.Millisecond))
	c := newClient(t, s.URL, client.Config{})
	ctx := t.Context()
	src, err := c.CreateSource(ctx, client.CreateSourceRequest{Name: "gen", Connector: "synthetic", Config: map[string]int{"count": 3}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c.Events(ctx, client.EventsParams{SourceID: src.ID, Type: events.TypeDocumentUpserted})
	if err != nil {
		t.Fatal(err)
	}
	// Open: everything published from now on is in it.
	run, err := c.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []client.Event
	for len(got) < 3 && stream.Next() {
		got = append(got, stream.Event())
	}
	for _, ev := range got {
		if ev.Type != events.TypeDocumentUpserted || !strings.Contains(string(ev.Data), run.ID) {
			t.Fatalf("unfiltered: %+v", ev)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d events (%v)", len(got), stream.Err())
	}
	// Close stops a Next that waits (keep-alives keep coming meanwhile).
	done := make(chan bool)
	go func() { done <- stream.Next() }()
	time.Sleep(120 * time.Millisecond) // let Next wait through a keep-alive or two
	_ = stream.Close()
	if <-done || stream.Err() != nil {
		t.Fatalf("after Close: %v", stream.Err())
	}

	// A cancelled context ends it with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	stream, err = c.Events(cctx, client.EventsParams{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if stream.Next() || !errors.Is(stream.Err(), context.Canceled) {
		t.Fatalf("after cancel: %v", stream.Err())
	}

	_, err = c.Events(ctx, client.EventsParams{Type: "nothing", SourceID: "a.b"})
	if e := mustAPIError(t, err, 422, client.CodeValidation); len(e.Detail) != 2 {
		t.Fatalf("detail: %+v", e.Detail)
	}
}

// Reconnecting gives up after MaxReconnectAttempts failures in a row, at
// once on a 4xx, and not at all when reconnection is off.
func TestStreamReconnectLimits(t *testing.T) {
	s := start(t)
	plain := newClient(t, s.URL, client.Config{})
	ctx := t.Context()
	src, err := plain.CreateSource(ctx, client.CreateSourceRequest{Name: "gen", Connector: "synthetic", Config: map[string]int{"count": 5}})
	if err != nil {
		t.Fatal(err)
	}
	run, err := plain.SyncSource(ctx, src.ID, client.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitRun(t, plain, run.ID, "the end", terminal)

	for _, tc := range []struct {
		name     string
		attempts int
		refuse   func() (*http.Response, error)
		check    func(t *testing.T, err error, reconnects int)
	}{
		{"network down", 3, func() (*http.Response, error) { return nil, errReset }, func(t *testing.T, err error, reconnects int) {
			if !errors.Is(err, errReset) || !strings.Contains(err.Error(), "gave up after 3 reconnection attempts") || reconnects != 3 {
				t.Fatalf("%v after %d reconnections", err, reconnects)
			}
		}},
		{"503", 2, func() (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"code":"unavailable","message":"later"}`))}, nil
		}, func(t *testing.T, err error, reconnects int) {
			if client.StatusOf(err) != 503 || reconnects != 2 {
				t.Fatalf("%v after %d reconnections", err, reconnects)
			}
		}},
		{"404", 5, func() (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"code":"not_found","message":"Run gone"}`))}, nil
		}, func(t *testing.T, err error, reconnects int) {
			if !client.HasCode(err, client.CodeNotFound) || reconnects != 1 {
				t.Fatalf("%v after %d reconnections", err, reconnects)
			}
		}},
		{"no reconnection", -1, nil, func(t *testing.T, err error, reconnects int) {
			if !errors.Is(err, errReset) || reconnects != 0 {
				t.Fatalf("%v after %d reconnections", err, reconnects)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dt := &dropTransport{base: http.DefaultTransport, plan: []cut{{2, errReset}}, refuse: tc.refuse}
			c := newClient(t, s.URL, client.Config{HTTPClient: &http.Client{Transport: dt}, ReconnectDelay: time.Millisecond,
				MaxReconnectDelay: 5 * time.Millisecond, MaxReconnectAttempts: tc.attempts})
			stream, err := c.RunEvents(ctx, run.ID, client.StreamOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, stream); len(got) != 2 {
				t.Fatalf("%d events before the drop", len(got))
			}
			tc.check(t, stream.Err(), stream.Reconnects())
		})
	}
}

// A server that accepts the stream and closes it at once, every time, is
// given up on; its "retry:" sets the wait between attempts.
func TestStreamGivesUpOnEmptyConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		_, _ = w.Write([]byte("retry: 1\n\n"))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, client.Config{MaxReconnectAttempts: 3})
	start := time.Now()
	stream, err := c.RunEvents(t.Context(), "r1", client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stream.Next() || !errors.Is(stream.Err(), io.ErrUnexpectedEOF) || stream.Reconnects() != 2 || conns.Load() != 3 {
		t.Fatalf("err %v after %d reconnections, %d connections", stream.Err(), stream.Reconnects(), conns.Load())
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("took %s: the server's retry of 1 ms was not used", d)
	}

	// Not an event stream at all.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(plain.Close)
	if _, err := newClient(t, plain.URL, client.Config{}).Events(t.Context(), client.EventsParams{}); err == nil || !strings.Contains(err.Error(), "not text/event-stream") {
		t.Fatalf("a JSON answer: %v", err)
	}
}
