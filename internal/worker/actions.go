package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/tributary-sync/tributary/internal/version"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
)

// maxActionTimeout bounds an action whose request names no timeout.
const maxActionTimeout = 10 * time.Minute

// maxActionMessage bounds the error message of a reply.
const maxActionMessage = 4 << 10

// actions serves the hosted connectors' actions and connection tests as
// one NATS micro service (events.ActionServiceName): an endpoint group per
// connector, an endpoint per action and one for the connection test, all
// in the queue group events.ActionQueueGroup. micro delivers one
// endpoint's requests one after another, so each request runs on a
// goroutine of its own, at most ActionConcurrency at once, and answers by
// itself; micro's per-endpoint stats therefore count requests but not
// their errors or processing time.
type actions struct {
	w      *Worker
	log    *zap.Logger
	svc    micro.Service
	slots  chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// startActions adds the worker's micro service and its endpoints.
func (w *Worker) startActions() (*actions, error) {
	host, _ := os.Hostname()
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        events.ActionServiceName,
		Version:     serviceVersion(version.Version),
		Description: "Tributary worker: connector actions and connection tests",
		Metadata: map[string]string{
			"worker_id":  w.cfg.ID,
			"host":       host,
			"pid":        strconv.Itoa(os.Getpid()),
			"connectors": strings.Join(w.connectorNames(), ","),
		},
		QueueGroup: events.ActionQueueGroup,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: action service: %w", err)
	}
	a := &actions{w: w, log: w.log, svc: svc, slots: make(chan struct{}, w.cfg.ActionConcurrency)}
	a.ctx, a.cancel = context.WithCancelCause(context.Background())
	for _, c := range w.cfg.Connectors {
		m := c.Manifest()
		// Endpoint names are unique in the service: <connector>.<action>
		// would not be a valid name, so they join with "_"; the subject
		// and the metadata say which is which.
		if ex, ok := c.(connector.ActionExecutor); ok {
			for _, ad := range m.Actions {
				err = svc.AddEndpoint(m.Name+"_"+ad.Name, a.handler(m.Name, ad.Name, ex, nil),
					micro.WithEndpointSubject(events.ActionSubject(m.Name, ad.Name)),
					micro.WithEndpointMetadata(map[string]string{"connector": m.Name, "action": ad.Name, "description": ad.Description}))
				if err != nil {
					break
				}
			}
		}
		if t, ok := c.(connector.ConnectionTester); ok && err == nil {
			err = svc.AddEndpoint(m.Name+"_test_connection", a.handler(m.Name, "", nil, t),
				micro.WithEndpointSubject(events.TestConnectionSubject(m.Name)),
				micro.WithEndpointMetadata(map[string]string{"connector": m.Name, "action": "test_connection"}))
		}
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("worker: action endpoints of %s: %w", m.Name, err)
		}
	}
	return a, nil
}

// stop takes no more requests: the endpoints unsubscribe (and the server
// knows it once stop returns, so a request that follows finds no
// responder, or another worker). Requests already running go on until
// cancel.
func (a *actions) stop() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	if err := a.svc.Stop(); err != nil {
		a.log.Warn("stop action service", zap.Error(err))
	}
	if a.w.nc.IsConnected() {
		if err := a.w.nc.FlushTimeout(time.Second); err != nil {
			a.log.Debug("flush after stopping the action service", zap.Error(err))
		}
	}
}

// begin counts one more running request, unless the service stopped.
func (a *actions) begin() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.wg.Add(1)
	return true
}

// wait returns a channel closed when no request is running any more.
func (a *actions) wait() <-chan struct{} {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	return done
}

func (a *actions) handler(conn, action string, ex connector.ActionExecutor, tester connector.ConnectionTester) micro.HandlerFunc {
	return func(req micro.Request) {
		if !a.begin() {
			a.replyError(req, events.ActionErrorStopping, "is shutting down")
			return
		}
		go func() {
			defer a.wg.Done()
			a.serve(req, conn, action, ex, tester)
		}()
	}
}

// actionOutcome is what a connector's call produced.
type actionOutcome struct {
	result   any
	err      error
	panicked bool
}

func (a *actions) serve(req micro.Request, conn, action string, ex connector.ActionExecutor, tester connector.ConnectionTester) {
	start := time.Now()
	var in events.ActionRequest
	if err := json.Unmarshal(req.Data(), &in); err != nil {
		a.replyError(req, events.ActionErrorBadRequest, "request does not decode: "+err.Error())
		return
	}
	if ex != nil && in.Action != "" && in.Action != action {
		a.replyError(req, events.ActionErrorNotFound, fmt.Sprintf("this endpoint runs action %q, not %q", action, in.Action))
		return
	}
	what := action
	if tester != nil {
		what = "test_connection"
	}
	log := a.log.With(zap.String("source_id", in.SourceID), zap.String("connector", conn), zap.String("action", what))
	timeout := in.Timeout()
	if timeout <= 0 || timeout > maxActionTimeout {
		timeout = maxActionTimeout
	}
	ctx, cancel := context.WithTimeout(a.ctx, timeout)
	defer cancel()
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	case <-ctx.Done():
		a.replyEnded(ctx, req, log, "waiting for a free action slot")
		return
	}

	creq := &connector.ActionRequest{SourceID: in.SourceID, Action: action, Params: in.Params, Config: in.Config, Credentials: in.Credentials}
	done := make(chan actionOutcome, 1)
	// The connector runs on a goroutine of its own, so that the answer
	// goes out when ctx ends even if the connector does not return.
	go func() {
		var o actionOutcome
		defer func() {
			if p := recover(); p != nil {
				log.Error("connector panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
				o = actionOutcome{err: fmt.Errorf("connector panicked: %v", p), panicked: true}
			}
			done <- o
		}()
		if tester != nil {
			o.err = tester.TestConnection(ctx, creq)
		} else {
			o.result, o.err = ex.ExecuteAction(ctx, creq)
		}
	}()
	var o actionOutcome
	select {
	case o = <-done:
	case <-ctx.Done():
		a.replyEnded(ctx, req, log, "running it")
		return
	}
	took := zap.Duration("took", time.Since(start))
	switch {
	case o.err != nil && !o.panicked && ctx.Err() != nil:
		a.replyEnded(ctx, req, log, "running it")
	case o.err != nil && tester != nil && !o.panicked:
		log.Info("connection test failed", took, zap.String("reason", o.err.Error()))
		a.respond(req, log, &events.ActionReply{WorkerID: a.w.cfg.ID, Message: truncate(o.err.Error())})
	case o.err != nil:
		log.Info("action failed", took, zap.String("reason", o.err.Error()))
		a.replyError(req, events.ActionErrorFailed, o.err.Error())
	case tester != nil:
		log.Info("connection test passed", took)
		a.respond(req, log, &events.ActionReply{WorkerID: a.w.cfg.ID, OK: true})
	default:
		res, err := json.Marshal(o.result)
		if err != nil {
			a.replyError(req, events.ActionErrorFailed, "the action's result does not encode as JSON: "+err.Error())
			return
		}
		log.Info("action done", took)
		a.respond(req, log, &events.ActionReply{WorkerID: a.w.cfg.ID, Result: res})
	}
}

// replyEnded answers a request whose context ended: the worker is
// stopping, or the request's timeout passed.
func (a *actions) replyEnded(ctx context.Context, req micro.Request, log *zap.Logger, while string) {
	if a.ctx.Err() != nil {
		log.Info("action cancelled: worker stopping", zap.String("while", while))
		a.replyError(req, events.ActionErrorStopping, "shut down while "+while)
		return
	}
	log.Info("action timed out", zap.String("while", while), zap.Error(ctx.Err()))
	a.replyError(req, events.ActionErrorTimeout, "timed out while "+while)
}

func (a *actions) respond(req micro.Request, log *zap.Logger, rep *events.ActionReply) {
	b, err := json.Marshal(rep)
	if err != nil {
		a.replyError(req, events.ActionErrorFailed, "reply does not encode: "+err.Error())
		return
	}
	if limit := a.w.nc.MaxPayload(); int64(len(b)) > limit {
		a.replyError(req, events.ActionErrorFailed, fmt.Sprintf("the action's result is %d bytes of JSON, over the %d-byte message limit", len(b), limit))
		return
	}
	if err := a.reply(req, b, nil); err != nil {
		log.Warn("answer action request", zap.Error(err))
	}
}

// reply publishes an answer to the request's reply subject. Not
// req.Respond: it records its outcome in the request, which micro reads
// when the handler returns, and the handler returned long ago.
func (a *actions) reply(req micro.Request, data []byte, hdr nats.Header) error {
	if req.Reply() == "" {
		return nil
	}
	return a.w.nc.PublishMsg(&nats.Msg{Subject: req.Reply(), Data: data, Header: hdr})
}

// replyError answers with an ActionError in the body and the micro error
// headers.
func (a *actions) replyError(req micro.Request, code, msg string) {
	msg = truncate(msg)
	b, _ := json.Marshal(&events.ActionReply{WorkerID: a.w.cfg.ID, Error: &events.ActionError{Code: code, Message: msg}})
	hdr := nats.Header{}
	hdr.Set(micro.ErrorCodeHeader, events.ActionErrorStatus(code))
	hdr.Set(micro.ErrorHeader, headerSafe(msg))
	if err := a.reply(req, b, hdr); err != nil {
		a.log.Warn("answer action request", zap.String("code", code), zap.Error(err))
	}
}

func truncate(s string) string {
	if len(s) <= maxActionMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxActionMessage], "") + "…"
}

// headerSafe makes a message one short header line.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 256 {
		s = strings.ToValidUTF8(s[:256], "") + "…"
	}
	if strings.TrimSpace(s) == "" {
		s = "error"
	}
	return s
}

// semVer is micro's own check of a service version.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

// serviceVersion is the build version as micro wants it, a semantic
// version: "v1.2.3" is "1.2.3", and anything else "0.0.0".
func serviceVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semVer.MatchString(v) {
		return v
	}
	return "0.0.0"
}

// errActionsStopping is the cancel cause of running actions at shutdown.
var errActionsStopping = errors.New("worker shutting down")
