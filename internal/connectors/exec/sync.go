package exec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// maxDrain bounds how long, once the child is gone, the worker waits for the
// end of its stdout and stderr (a process it started may still hold them).
const maxDrain = time.Second

// Sync implements connector.Connector: it starts the command, writes the
// request line to its stdin and follows its stdout until the child exits.
// The child is always reaped, and every goroutine of the sync has ended,
// when Sync returns.
func (c *Connector) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	if req.Document != "" {
		return fmt.Errorf("exec connector %s cannot re-fetch one document", c.manifest.Name)
	}
	line, err := c.requestLine(req)
	if err != nil {
		return err
	}
	s, err := c.start(sc, line)
	if err != nil {
		return err
	}
	defer s.close() // also when a SyncContext method panics
	err = s.follow(ctx)
	s.close()
	return s.result(ctx, err)
}

func (c *Connector) requestLine(req *connector.SyncRequest) ([]byte, error) {
	r := Request{
		Type: TypeSync, Protocol: ProtocolVersion, Connector: c.manifest.Name,
		SourceID: req.SourceID, RunID: req.RunID, Mode: req.Mode,
		Config: orJSON(req.Config, "{}"), Credentials: orJSON(req.Credentials, "null"),
		Checkpoint: orJSON(req.Checkpoint, "null"), Resumed: req.Resumed, Attempt: req.Attempt,
	}
	b, err := json.Marshal(&r)
	if err != nil {
		// Only invalid JSON in the request can do this; its text is not
		// quoted, as it may hold credentials.
		return nil, fmt.Errorf("exec connector %s: encode the request: invalid JSON in config, credentials or checkpoint", c.manifest.Name)
	}
	return append(b, '\n'), nil
}

func orJSON(raw json.RawMessage, def string) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return json.RawMessage(def)
	}
	return raw
}

// session is one sync's child process and the goroutines that serve it.
type session struct {
	c   *Connector
	sc  connector.SyncContext
	log *zap.Logger
	cmd *osexec.Cmd

	// The parent's ends of the child's stdin, stdout and stderr.
	stdin, stdout, stderr *os.File
	stdinOnce             sync.Once

	exited  chan struct{} // closed once the child is reaped
	waitErr error         // cmd.Wait's; read after exited is closed
	lines   chan []byte   // stdout lines; closed at the end of stdout
	readErr error         // why stdout reading stopped; read after lines is closed
	quit    chan struct{} // closed when lines are no longer wanted
	stopped chan struct{} // closed when the stdout, stderr and stdin goroutines ended
	tail    *tail         // the last stderr lines

	closeOnce sync.Once

	// What the child reported, for the main loop only.
	lineNo  int
	done    bool
	doneCP  json.RawMessage
	failed  bool
	failMsg string
}

func (c *Connector) start(sc connector.SyncContext, reqLine []byte) (*session, error) {
	log := sc.Logger().With(zap.String("connector", c.manifest.Name))
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("exec connector %s: pipe: %w", c.manifest.Name, err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("exec connector %s: pipe: %w", c.manifest.Name, err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("exec connector %s: pipe: %w", c.manifest.Name, err)
	}
	// Plain *os.File stdio: os/exec hands the descriptors to the child and
	// starts no copying goroutines of its own, so Wait only reaps and the
	// parent's read ends stay open until everything written is read.
	cmd := osexec.Command(c.path, c.spec.Args...) //nolint:gosec,noctx // the operator's declared command; cancellation is stdin, SIGTERM, SIGKILL, not CommandContext's kill
	cmd.Dir, cmd.Env = c.spec.Dir, c.env()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	ownGroup(cmd)
	startErr := cmd.Start()
	// The child has its own copies of its ends now (or failed to start).
	_, _, _ = inR.Close(), outW.Close(), errW.Close()
	if startErr != nil {
		closeAll()
		return nil, fmt.Errorf("exec connector %s: start %s: %w", c.manifest.Name, c.path, startErr)
	}
	log.Debug("connector process started", zap.Int("pid", cmd.Process.Pid))

	s := &session{
		c: c, sc: sc, log: log, cmd: cmd,
		stdin: inW, stdout: outR, stderr: errR,
		exited: make(chan struct{}), lines: make(chan []byte), quit: make(chan struct{}), stopped: make(chan struct{}),
		tail: newTail(stderrLines, stderrLineBytes, func(l string) { log.Info("connector stderr", zap.String("line", l)) }),
	}
	go func() {
		s.waitErr = cmd.Wait() // the status is in cmd.ProcessState
		close(s.exited)
	}()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		// A child that exits without reading its request fails this write
		// (EPIPE); its exit status tells the story.
		if _, err := s.stdin.Write(reqLine); err != nil {
			log.Debug("write the request to the connector", zap.Error(err))
		}
	}()
	go func() {
		defer wg.Done()
		s.readStdout()
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(s.tail, s.stderr)
		_ = s.tail.Close()
	}()
	go func() {
		wg.Wait()
		close(s.stopped)
	}()
	return s, nil
}

func (s *session) readStdout() {
	defer close(s.lines)
	sc := bufio.NewScanner(s.stdout)
	// The limit is the larger of the buffer's capacity and max.
	sc.Buffer(make([]byte, 0, min(64<<10, s.c.spec.MaxLineBytes)), s.c.spec.MaxLineBytes)
	for sc.Scan() {
		select {
		case s.lines <- bytes.Clone(sc.Bytes()):
		case <-s.quit:
			return
		}
	}
	s.readErr = sc.Err()
}

// follow handles the child's messages until it has exited and closed its
// stdout. It returns ctx.Err() when ctx ends, an error from the
// SyncContext, a *ProtocolError, or nil once the child is done.
func (s *session) follow(ctx context.Context) error {
	lines, exited := s.lines, s.exited
	// The child has a grace period to finish once it has exited, closed
	// its stdout, or sent done or fail.
	var (
		timer   *time.Timer
		timeout <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	arm := func() {
		if timer == nil {
			timer = time.NewTimer(time.Duration(s.c.spec.Grace))
			timeout = timer.C
		}
	}
	for lines != nil || exited != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b, ok := <-lines:
			if !ok {
				lines = nil
				if err := s.readErr; err != nil {
					msg := "read stdout: " + err.Error()
					if errors.Is(err, bufio.ErrTooLong) {
						msg = fmt.Sprintf("a line is longer than %d bytes (max_line_bytes)", s.c.spec.MaxLineBytes)
					}
					return s.protocolErr(s.lineNo+1, msg)
				}
				arm()
				continue
			}
			s.lineNo++
			if err := s.handle(ctx, b); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			if s.done || s.failed {
				s.closeStdin()
				arm()
			}
		case <-exited:
			exited = nil
			arm()
		case <-timeout:
			if exited != nil {
				s.log.Warn("connector still running a grace period after done, fail or closing its stdout; stopping it", zap.Duration("grace", time.Duration(s.c.spec.Grace)))
			} else {
				s.log.Warn("connector exited but its stdout is still open (a process it started?); stopping its process group")
			}
			return nil
		}
	}
	return nil
}

// close stops the child if it still runs (stdin closed, SIGTERM, SIGKILL
// after the grace period), reaps it, and ends every goroutine.
func (s *session) close() {
	s.closeOnce.Do(func() {
		s.closeStdin()
		s.stop()
		close(s.quit)
		t := time.NewTimer(min(time.Duration(s.c.spec.Grace), maxDrain))
		defer t.Stop()
		select {
		case <-s.stopped:
		case <-t.C:
			// Something the child started holds its stdout or stderr. Its
			// group still exists, so its id is not yet reused.
			_ = kill(s.cmd)
			_, _ = s.stdout.Close(), s.stderr.Close()
			<-s.stopped
		}
		_, _ = s.stdout.Close(), s.stderr.Close()
	})
}

func (s *session) closeStdin() {
	s.stdinOnce.Do(func() { _ = s.stdin.Close() })
}

// stop ends a child that still runs: SIGTERM to its process group, then
// SIGKILL after the grace period. It returns once the child is reaped.
func (s *session) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	grace := time.Duration(s.c.spec.Grace)
	if err := terminate(s.cmd); err != nil {
		s.log.Warn("SIGTERM the connector", zap.Error(err))
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-s.exited:
		return
	case <-t.C:
	}
	s.log.Warn("connector still running after SIGTERM and its grace period; killing it", zap.Duration("grace", grace))
	if err := kill(s.cmd); err != nil {
		s.log.Warn("SIGKILL the connector", zap.Error(err))
	}
	<-s.exited
}

// result turns how the child ended into Sync's return value.
func (s *session) result(ctx context.Context, err error) error {
	if err != nil {
		var pe *ProtocolError
		if errors.As(err, &pe) {
			pe.Stderr = s.tail.Lines()
		}
		return err
	}
	if s.failed {
		return &FailedError{Connector: s.c.manifest.Name, Msg: s.failMsg}
	}
	ps := s.cmd.ProcessState
	if ps == nil { // Wait failed before the child's status was known
		return fmt.Errorf("exec connector %s: wait for the child: %w", s.c.manifest.Name, s.waitErr)
	}
	if s.done && ps.Success() {
		var cp any
		if s.doneCP != nil {
			cp = s.doneCP
		}
		if err := s.sc.Complete(ctx, cp); err != nil {
			return fmt.Errorf("exec connector %s: done: %w", s.c.manifest.Name, err)
		}
		return nil
	}
	return &ExitError{Connector: s.c.manifest.Name, Status: ps.ExitCode(), Signal: exitSignal(ps), Done: s.done, Stderr: s.tail.Lines()}
}

func (s *session) protocolErr(line int, msg string) error {
	return &ProtocolError{Connector: s.c.manifest.Name, Line: line, Msg: msg}
}

// handle performs one message.
func (s *session) handle(ctx context.Context, b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil // blank lines are allowed
	}
	bad := func(format string, args ...any) error {
		return s.protocolErr(s.lineNo, fmt.Sprintf(format, args...))
	}
	if s.done || s.failed {
		return bad("a line after done or fail: %s", snippet(b))
	}
	var m Message
	if b[0] != '{' {
		return bad("not a JSON object: %s", snippet(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return bad("not a valid message: %v: %s", err, snippet(b))
	}
	scErr := func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("exec connector %s: stdout line %d (%s): %w", s.c.manifest.Name, s.lineNo, m.Type, err)
	}
	switch m.Type {
	case TypeEmit, TypeUpdate:
		if m.Document == nil {
			return bad("%s: document is required", m.Type)
		}
		doc := *m.Document
		if err := doc.Validate(); err != nil {
			return bad("%s: document: %v", m.Type, err)
		}
		if doc.ContentID != "" {
			return bad("%s: document.content_id must be empty: send the content inline", m.Type)
		}
		stored, err := s.content(ctx, &m, &doc)
		if err != nil || !stored {
			return scErr(err)
		}
		if m.Type == TypeUpdate {
			return scErr(s.sc.EmitUpdated(ctx, doc))
		}
		return scErr(s.sc.Emit(ctx, doc))
	case TypeDelete:
		if m.ExternalID == "" {
			return bad("delete: external_id is required")
		}
		return scErr(s.sc.EmitDeleted(ctx, m.ExternalID))
	case TypeError:
		if m.ExternalID == "" {
			return bad("error: external_id is required")
		}
		msg := m.Error
		if msg == "" {
			msg = "unknown error"
		}
		return scErr(s.sc.EmitError(ctx, m.ExternalID, errors.New(msg)))
	case TypeScanned:
		n := int64(1)
		if m.N != nil {
			n = *m.N
		}
		if n < 0 {
			return bad("scanned: n must not be negative")
		}
		s.sc.IncrementScanned(int(n))
	case TypeTotal:
		if m.Total == nil || *m.Total < 0 {
			return bad("total: total is required and must not be negative")
		}
		s.sc.SetTotal(int(*m.Total))
	case TypeCheckpoint:
		if isNull(m.Checkpoint) {
			return bad("checkpoint: checkpoint is required and must not be null")
		}
		return scErr(s.sc.SaveCheckpoint(ctx, m.Checkpoint))
	case TypeLog:
		var lvl zapcore.Level
		switch m.Level {
		case "debug":
			lvl = zapcore.DebugLevel
		case "info", "":
			lvl = zapcore.InfoLevel
		case "warn":
			lvl = zapcore.WarnLevel
		case "error":
			lvl = zapcore.ErrorLevel
		default:
			return bad("log: level %q is not debug, info, warn or error", m.Level)
		}
		fields := []zap.Field{zap.Bool("from_connector", true)}
		if len(m.Fields) > 0 {
			fields = append(fields, zap.Any("fields", m.Fields))
		}
		s.log.Log(lvl, m.Message, fields...)
	case TypeDone:
		s.done = true
		if !isNull(m.Checkpoint) {
			s.doneCP = m.Checkpoint
		}
	case TypeFail:
		s.failed, s.failMsg = true, m.Error
		if s.failMsg == "" {
			s.failMsg = "sync failed"
		}
	case "":
		return bad("type is required: %s", snippet(b))
	default:
		return bad("unknown message type %q", m.Type)
	}
	return nil
}

// content stores the inline content of an emit or update and sets the
// document's content id. It reports false, having reported the document
// as an error, when text cannot be extracted from the bytes.
func (s *session) content(ctx context.Context, m *Message, doc *connector.Document) (bool, error) {
	bad := func(format string, args ...any) error {
		return s.protocolErr(s.lineNo, fmt.Sprintf(format, args...))
	}
	switch {
	case m.Content != nil && m.ContentBase64 != nil:
		return false, bad("%s: content and content_base64 are exclusive", m.Type)
	case m.Extract && m.ContentBase64 == nil:
		return false, bad("%s: extract needs content_base64", m.Type)
	case m.Content != nil:
		id, err := s.sc.Content().Save(ctx, *m.Content, m.ContentType)
		if err != nil {
			return false, fmt.Errorf("store content of %q: %w", doc.ExternalID, err)
		}
		doc.ContentID = id
	case m.ContentBase64 != nil:
		data, err := base64.StdEncoding.DecodeString(*m.ContentBase64)
		if err != nil {
			return false, bad("%s: content_base64: %v", m.Type, err)
		}
		if !m.Extract {
			id, err := s.sc.Content().SaveBinary(ctx, data, m.ContentType)
			if err != nil {
				return false, fmt.Errorf("store content of %q: %w", doc.ExternalID, err)
			}
			doc.ContentID = id
			break
		}
		mimeType := m.ContentType
		if mimeType == "" {
			mimeType = doc.Metadata.MimeType
		}
		id, _, err := s.sc.Content().ExtractAndStore(ctx, data, mimeType, doc.Metadata.Path)
		switch {
		case errors.Is(err, connector.ErrUnsupportedContent), errors.Is(err, connector.ErrContentTooLarge), errors.Is(err, connector.ErrMalformedContent):
			return false, s.sc.EmitError(ctx, doc.ExternalID, err)
		case err != nil:
			return false, fmt.Errorf("store content of %q: %w", doc.ExternalID, err)
		}
		doc.ContentID = id
	}
	return true, nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// snippet quotes the start of a bad line for an error message.
func snippet(b []byte) string {
	const n = 120
	if len(b) > n {
		return fmt.Sprintf("%q…", b[:n])
	}
	return fmt.Sprintf("%q", b)
}
