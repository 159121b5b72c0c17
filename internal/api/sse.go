package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/manager"
	"github.com/tributary-sync/tributary/pkg/events"
)

// Live events as Server-Sent Events: each event's id is its sequence in
// the events stream, so a client that reconnects with Last-Event-ID gets
// exactly what it missed.

// defaultKeepAlive is how often an idle stream gets a comment line.
const defaultKeepAlive = 15 * time.Second

// WithKeepAlive sets the SSE keep-alive interval (tests); default 15s.
func WithKeepAlive(d time.Duration) Option { return func(s *Server) { s.keepAlive = d } }

// lastEventID reads Last-Event-ID (or ?last_event_id=): the stream
// sequence of the last event the client has.
func lastEventID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: []manager.Detail{{
			Loc: []any{"header", "Last-Event-ID"}, Msg: "Input should be an event id (a non-negative integer)", Type: "int_parsing"}}})
		return 0, false
	}
	return n, true
}

// runEvents streams a run's events from its first (or after Last-Event-ID)
// and ends after its final one.
func (s *Server) runEvents(w http.ResponseWriter, r *http.Request) {
	run, err := s.m.GetRun(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	last, ok := lastEventID(w, r)
	if !ok {
		return
	}
	s.stream(w, r, events.RunEventSubjects(run.SourceID, run.ID), last, jetstream.DeliverAllPolicy, func(ctx context.Context) bool {
		cur, err := s.m.GetRun(ctx, run.ID)
		return err == nil && cur.Status.Terminal()
	})
}

// allEvents streams every event, optionally of one source and one type,
// from now on (or after Last-Event-ID). It never ends by itself.
func (s *Server) allEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	src, typ := q.Get("source_id"), q.Get("type")
	var details []manager.Detail
	if src != "" && !events.ValidToken(src) {
		details = append(details, manager.Detail{Loc: []any{"query", "source_id"}, Msg: "Input should be a source id", Type: "value_error"})
	}
	if typ != "" && !events.Type(typ).Known() {
		details = append(details, manager.Detail{Loc: []any{"query", "type"}, Msg: "Input should be an event type such as run.started or document.upserted", Type: "enum"})
	}
	if len(details) > 0 {
		writeJSON(w, http.StatusUnprocessableEntity, ValidationProblem{Detail: details})
		return
	}
	last, ok := lastEventID(w, r)
	if !ok {
		return
	}
	if src == "" {
		src = "*"
	}
	filter := events.SubjectEventsPrefix + src + ".>"
	if typ != "" {
		filter = events.SubjectEventsPrefix + src + ".*." + typ
	}
	s.stream(w, r, filter, last, jetstream.DeliverNewPolicy, nil)
}

// stream writes the events matching filter as SSE: after sequence last
// when it is set, else as policy says. ended, when set, is asked at each
// keep-alive whether nothing more can come.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, filter string, last uint64, policy jetstream.DeliverPolicy, ended func(context.Context) bool) {
	ctx := r.Context()
	st, err := s.m.JetStream().Stream(ctx, events.StreamEvents)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: %w", manager.ErrUnavailable, err))
		return
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: policy}
	if last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	}
	cons, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: %w", manager.ErrUnavailable, err))
		return
	}
	msgs, err := cons.Messages()
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: %w", manager.ErrUnavailable, err))
		return
	}
	defer msgs.Stop()
	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()

	type next struct {
		msg jetstream.Msg
		err error
	}
	ch := make(chan next)
	go func() {
		defer close(ch)
		for {
			m, err := msgs.Next()
			select {
			case ch <- next{m, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	keep := s.keepAlive
	if keep <= 0 {
		keep = defaultKeepAlive
	}
	tick := time.NewTicker(keep)
	defer tick.Stop()
	idle := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if idle && ended != nil && ended(ctx) {
				return // finished, and nothing came for a whole interval
			}
			idle = true
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flush()
		case n, ok := <-ch:
			if !ok || n.err != nil {
				if n.err != nil && ctx.Err() == nil {
					s.log.Warn("event stream ended", zap.Error(n.err))
				}
				return
			}
			idle = false
			meta, err := n.msg.Metadata()
			if err != nil {
				continue
			}
			// tributary.events.<source_id>.<run_id>.<type>
			typ := ""
			if parts := strings.SplitN(n.msg.Subject(), ".", 5); len(parts) == 5 {
				typ = parts[4]
			}
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", meta.Sequence.Stream, typ, n.msg.Data()); err != nil {
				return
			}
			flush()
			if ended != nil && events.Type(typ).Terminal() {
				return
			}
		}
	}
}
