package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// This file is a Server-Sent Events parser written to the WHATWG HTML
// standard, section 9.2.6 "Interpreting an event stream":
// https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
//
// The parts that matter, and where they are handled:
//   - the stream is UTF-8, decoded with the Encoding standard's "UTF-8
//     decode" (invalid sequences become U+FFFD, one per maximal invalid
//     subpart): decodeUTF8;
//   - one leading byte order mark is ignored: sseParser.readLine;
//   - lines end with CRLF, LF or CR, also when a CR and its LF arrive in
//     different reads: sseParser.readLine (afterCR);
//   - a line that starts with a colon is a comment; "field: value" loses one
//     space after the colon; a line without colon is a field with an empty
//     value; unknown fields are ignored: sseParser.processLine;
//   - data lines are joined with LF; id values containing NUL are ignored;
//     retry takes ASCII digits only: sseParser.processLine;
//   - a blank line dispatches: the last event ID string becomes the id
//     buffer (even when nothing is dispatched), nothing is dispatched when
//     the data buffer is empty, the event type defaults to "message":
//     sseParser.dispatch;
//   - at the end of the stream an incomplete line and an event without its
//     blank line are discarded: sseParser.next returns io.EOF.

// errEventTooLarge is returned when a line or an event's data grows past
// the parser's limit; the stream cannot be trusted past that point.
var errEventTooLarge = errors.New("server-sent event larger than the limit")

// sseEvent is one dispatched event.
type sseEvent struct {
	id   string // the last event ID string at dispatch
	typ  string // "message" when the stream gave no event field
	data string
}

// sseParser reads events from one connection's body.
type sseParser struct {
	r   *bufio.Reader
	max int // bound on a line and on an event's data, in bytes

	started bool // the leading byte order mark was looked for
	afterCR bool // the last line ended with CR: a leading LF is its pair

	line []byte

	// The stream's buffers.
	data    []byte
	hasData bool
	typ     string
	idBuf   string

	// lastID is the last event ID string.
	lastID string
	// retry is the reconnection time the stream last asked for; zero
	// until it does.
	retry time.Duration
	// comments counts comment lines (keep-alives).
	comments int
}

// newSSEParser reads a connection's body. lastID is the last event ID
// string of the stream so far: like browsers (Chromium's
// EventSourceParser), and unlike the letter of the standard, which starts
// each connection's id buffer empty, a reconnected stream keeps it until
// the server sends another id. Otherwise a connection that dispatches
// nothing but a "retry:" block would forget where to resume.
func newSSEParser(r io.Reader, maxSize int, lastID string) *sseParser {
	return &sseParser{r: bufio.NewReaderSize(r, 32<<10), max: maxSize, idBuf: lastID, lastID: lastID}
}

// next returns the next dispatched event, or io.EOF at the end of the
// stream, or the reader's error.
func (p *sseParser) next() (sseEvent, error) {
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if ev, ok := p.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if err := p.processLine(line); err != nil {
			return sseEvent{}, err
		}
	}
}

// readLine returns the next complete line without its terminator; the
// slice is valid until the next call.
func (p *sseParser) readLine() ([]byte, error) {
	if !p.started {
		p.started = true
		// Peek blocks for three bytes at most; no event fits in fewer.
		if b, _ := p.r.Peek(3); bytes.Equal(b, []byte("\xEF\xBB\xBF")) {
			_, _ = p.r.Discard(3)
		}
	}
	p.line = p.line[:0]
	for {
		if p.afterCR {
			b, err := p.r.Peek(1)
			if err != nil {
				return nil, err
			}
			p.afterCR = false
			if b[0] == '\n' {
				_, _ = p.r.Discard(1)
			}
		}
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return nil, err // at EOF a line without terminator is discarded
			}
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(p.line)+len(buf) > p.max {
				return nil, errEventTooLarge
			}
			p.line = append(p.line, buf...)
			_, _ = p.r.Discard(len(buf))
			continue
		}
		if len(p.line)+i > p.max {
			return nil, errEventTooLarge
		}
		p.line = append(p.line, buf[:i]...)
		p.afterCR = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		return p.line, nil
	}
}

// processLine handles one non-blank line.
func (p *sseParser) processLine(raw []byte) error {
	line := decodeUTF8(raw)
	if line[0] == ':' {
		p.comments++
		return nil
	}
	field, value, found := strings.Cut(line, ":")
	if found {
		value = strings.TrimPrefix(value, " ")
	}
	switch field {
	case "event":
		p.typ = value
	case "data":
		if len(p.data)+len(value)+1 > p.max {
			return errEventTooLarge
		}
		p.data = append(p.data, value...)
		p.data = append(p.data, '\n')
		p.hasData = true
	case "id":
		if !strings.ContainsRune(value, 0) {
			p.idBuf = value
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			p.retry = ms
		}
	}
	return nil
}

// dispatch ends the current event at a blank line.
func (p *sseParser) dispatch() (sseEvent, bool) {
	p.lastID = p.idBuf
	if !p.hasData {
		p.typ = ""
		return sseEvent{}, false
	}
	ev := sseEvent{id: p.lastID, typ: p.typ, data: string(p.data[:len(p.data)-1])}
	if ev.typ == "" {
		ev.typ = "message"
	}
	p.data, p.hasData, p.typ = p.data[:0], false, ""
	return ev, true
}

// parseDigits reads a retry value: ASCII digits only, in milliseconds.
// A value too large for a time.Duration is the largest one.
func parseDigits(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	const limit = uint64(math.MaxInt64 / int64(time.Millisecond))
	var ms uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if d := uint64(c - '0'); ms > (limit-d)/10 {
			ms = limit
		} else {
			ms = ms*10 + d
		}
	}
	return time.Duration(ms) * time.Millisecond, true //nolint:gosec // bounded above
}

// decodeUTF8 is the Encoding standard's UTF-8 decoder without its BOM
// handling: each maximal invalid subpart becomes one U+FFFD. Go's own
// conversions replace each invalid byte, which differs for truncated
// sequences such as "\xE2\x82".
func decodeUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	var (
		cp           rune
		needed, seen int
		lower, upper byte = 0x80, 0xBF
	)
	for i := 0; i < len(b); {
		c := b[i]
		if needed == 0 {
			i++
			switch {
			case c <= 0x7F:
				sb.WriteByte(c)
			case c >= 0xC2 && c <= 0xDF:
				needed, cp = 1, rune(c&0x1F)
			case c >= 0xE0 && c <= 0xEF:
				switch c {
				case 0xE0:
					lower = 0xA0
				case 0xED:
					upper = 0x9F
				}
				needed, cp = 2, rune(c&0x0F)
			case c >= 0xF0 && c <= 0xF4:
				switch c {
				case 0xF0:
					lower = 0x90
				case 0xF4:
					upper = 0x8F
				}
				needed, cp = 3, rune(c&0x07)
			default:
				sb.WriteRune(utf8.RuneError)
			}
			continue
		}
		if c < lower || c > upper {
			// The byte is not consumed: it starts what comes next.
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			sb.WriteRune(utf8.RuneError)
			continue
		}
		i++
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(c&0x3F)
		seen++
		if seen == needed {
			sb.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		sb.WriteRune(utf8.RuneError)
	}
	return sb.String()
}
