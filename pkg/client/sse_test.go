package client

import (
	"errors"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// parseAll runs the streaming parser over r to the end.
func parseAll(r io.Reader, maxSize int) (evs []sseEvent, lastID string, retry time.Duration, err error) {
	p := newSSEParser(r, maxSize, "")
	for {
		ev, err := p.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return evs, p.lastID, p.retry, err
		}
		evs = append(evs, ev)
	}
}

var (
	lineEnd = regexp.MustCompile("\r\n|\r|\n")
	digits  = regexp.MustCompile(`^[0-9]+$`)
)

// referenceParse is the standard's algorithm applied to a whole stream at
// once, written as plainly as possible to check the streaming parser
// against: decode, drop one BOM, split into lines, drop the unterminated
// tail, interpret each line.
func referenceParse(b []byte) (evs []sseEvent, lastID string, retry time.Duration) {
	s := strings.TrimPrefix(decodeUTF8(b), "\uFEFF")
	lines := lineEnd.Split(s, -1)
	lines = lines[:len(lines)-1] // after the last terminator: incomplete
	var data, typ, idBuf string
	hasData := false
	for _, line := range lines {
		switch {
		case line == "":
			lastID = idBuf
			if hasData {
				ev := sseEvent{id: lastID, typ: typ, data: strings.TrimSuffix(data, "\n")}
				if ev.typ == "" {
					ev.typ = "message"
				}
				evs = append(evs, ev)
			}
			data, typ, hasData = "", "", false
			continue
		case strings.HasPrefix(line, ":"):
			continue
		}
		field, value := line, ""
		if i := strings.Index(line, ":"); i >= 0 {
			field, value = line[:i], line[i+1:]
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			data += value + "\n"
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			if digits.MatchString(value) {
				const limit = uint64(math.MaxInt64 / int64(time.Millisecond))
				ms, err := strconv.ParseUint(value, 10, 64)
				if err != nil || ms > limit {
					ms = limit
				}
				retry = time.Duration(ms) * time.Millisecond //nolint:gosec // bounded
			}
		}
	}
	return evs, lastID, retry
}

func TestSSEParser(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []sseEvent
		lastID   string
		retry    time.Duration
	}{
		{"the manager's stream", "retry: 2000\n\nid: 7\nevent: run.started\ndata: {\"a\":1}\n\n: keep-alive\n\n",
			[]sseEvent{{"7", "run.started", `{"a":1}`}}, "7", 2 * time.Second},
		{"data lines join with LF", "data: a\ndata\ndata: b\n\n", []sseEvent{{"", "message", "a\n\nb"}}, "", 0},
		{"one space is dropped, not two", "data:  two\ndata:none\n\n", []sseEvent{{"", "message", " two\nnone"}}, "", 0},
		{"CRLF and CR", "data: a\r\n\r\ndata: b\r\rdata: c\n\r\n", []sseEvent{{"", "message", "a"}, {"", "message", "b"}, {"", "message", "c"}}, "", 0},
		{"one BOM is ignored", "\uFEFFdata: a\n\n", []sseEvent{{"", "message", "a"}}, "", 0},
		{"a second BOM is not", "\uFEFF\uFEFFdata: a\n\ndata: b\n\n", []sseEvent{{"", "message", "b"}}, "", 0},
		{"no data, no event", "event: x\nid: 3\n\ndata: y\n\n", []sseEvent{{"3", "message", "y"}}, "3", 0},
		{"id persists", "id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", []sseEvent{{"1", "message", "a"}, {"1", "message", "b"}, {"", "message", "c"}}, "", 0},
		{"id with NUL is ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []sseEvent{{"1", "message", "a"}, {"1", "message", "b"}}, "1", 0},
		{"id-only block moves the last id", "id: 1\ndata: a\n\nid: 9\n\n", []sseEvent{{"1", "message", "a"}}, "9", 0},
		{"bad retry is ignored", "retry: 1000\n\nretry: 1e3\n\nretry: -1\n\nretry:\n\nretry: 5 \n\n", nil, "", time.Second},
		{"unknown fields and comments", ":hi\nfoo: bar\nData: no\ndata: yes\n\n", []sseEvent{{"", "message", "yes"}}, "", 0},
		{"an incomplete event is dropped", "data: a\n\ndata: b\n", []sseEvent{{"", "message", "a"}}, "", 0},
		{"an unterminated line is dropped", "data: a\n\nid: 5", []sseEvent{{"", "message", "a"}}, "", 0},
		{"empty data dispatches", "data\n\n", []sseEvent{{"", "message", ""}}, "", 0},
		{"invalid UTF-8 is replaced", "data: \xE2\x82x\xFF\n\n", []sseEvent{{"", "message", "\uFFFDx\uFFFD"}}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				evs, lastID, retry, err := parseAll(r, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(evs, tc.want) || lastID != tc.lastID || retry != tc.retry {
					t.Fatalf("got %q last id %q retry %s, want %q %q %s", evs, lastID, retry, tc.want, tc.lastID, tc.retry)
				}
				refEvs, refID, refRetry := referenceParse([]byte(tc.in))
				if !reflect.DeepEqual(refEvs, tc.want) || refID != tc.lastID || refRetry != tc.retry {
					t.Fatalf("reference: %q %q %s", refEvs, refID, refRetry)
				}
			}
		})
	}
}

func TestSSEParserLimit(t *testing.T) {
	long := "data: " + strings.Repeat("x", 100) + "\n\n"
	if _, _, _, err := parseAll(strings.NewReader(long), 50); !errors.Is(err, errEventTooLarge) {
		t.Fatalf("long line: %v", err)
	}
	many := strings.Repeat("data: "+strings.Repeat("x", 20)+"\n", 5) + "\n"
	if _, _, _, err := parseAll(strings.NewReader(many), 50); !errors.Is(err, errEventTooLarge) {
		t.Fatalf("long data: %v", err)
	}
	if evs, _, _, err := parseAll(strings.NewReader(long), 200); err != nil || len(evs) != 1 {
		t.Fatalf("under the limit: %v %v", evs, err)
	}
}

func TestSSEParserHugeRetry(t *testing.T) {
	_, _, retry, err := parseAll(strings.NewReader("retry: 99999999999999999999999999\n\n"), 1<<10)
	if err != nil || retry <= 0 {
		t.Fatalf("retry %s, %v", retry, err)
	}
}

// The UTF-8 decoder follows the Encoding standard: one U+FFFD for each
// maximal invalid subpart.
func TestDecodeUTF8(t *testing.T) {
	for in, want := range map[string]string{
		"plain é":          "plain é",
		"\xE2\x82":         "\uFFFD",
		"\xE2\x82\xAC":     "€",
		"\xF0\x9F\x98":     "\uFFFD",
		"\xC0\xAF":         "\uFFFD\uFFFD",
		"\xED\xA0\x80":     "\uFFFD\uFFFD\uFFFD", // a surrogate
		"\xF4\x90\x80\x80": "\uFFFD\uFFFD\uFFFD\uFFFD",
		"a\xFFb":           "a\uFFFDb",
		"\xE2\x82a":        "\uFFFDa",
	} {
		if got := decodeUTF8([]byte(in)); got != want {
			t.Errorf("decodeUTF8(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseSSE checks the streaming parser against the whole-stream
// reference, fed in one read and a byte at a time (a CR and its LF in
// different reads, a BOM split up).
func FuzzParseSSE(f *testing.F) {
	for _, s := range []string{
		"retry: 2000\n\nid: 7\nevent: run.started\ndata: {\"a\":1}\n\n: keep-alive\n\n",
		"data: a\r\n\r\ndata: b\r\rdata: c\n\r\n",
		"\uFEFFdata: a\n\n",
		"\xEF\xBB",
		"id: 1\x00\ndata\n\nid\n\n",
		"retry: 0099\n\nretry: 1a\n\n",
		"data: \xE2\x82x\xFF\r",
		"event\nevent:\ndata:data:data\n\n",
		":\n:\r\n\r",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		wantEvs, wantID, wantRetry := referenceParse(in)
		for _, r := range []io.Reader{strings.NewReader(string(in)), iotest.OneByteReader(strings.NewReader(string(in))), iotest.HalfReader(strings.NewReader(string(in)))} {
			evs, lastID, retry, err := parseAll(r, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(evs, wantEvs) || lastID != wantID {
				t.Fatalf("parse(%q):\n got %q last id %q\nwant %q last id %q", in, evs, lastID, wantEvs, wantID)
			}
			if retry != wantRetry {
				t.Fatalf("parse(%q): retry %s, want %s", in, retry, wantRetry)
			}
			for _, ev := range evs {
				if !utf8.ValidString(ev.id) || !utf8.ValidString(ev.typ) || !utf8.ValidString(ev.data) {
					t.Fatalf("invalid UTF-8 out of %q: %q", in, ev)
				}
				if strings.ContainsAny(ev.id, "\r\n\x00") || strings.ContainsAny(ev.typ, "\r\n") {
					t.Fatalf("line break in a field out of %q: %q", in, ev)
				}
			}
		}
	})
}

// FuzzSSERoundTrip writes an event the way the manager does and reads it
// back.
func FuzzSSERoundTrip(f *testing.F) {
	f.Add("4711", "document.upserted", `{"id":"01M84"}`)
	f.Add("1", "", "two\nlines")
	f.Add("", "x", "")
	f.Fuzz(func(t *testing.T, id, typ, data string) {
		if !utf8.ValidString(id) || !utf8.ValidString(typ) || !utf8.ValidString(data) || strings.ContainsAny(id, "\r\n\x00") || strings.ContainsAny(typ, "\r\n") ||
			strings.HasPrefix(id, " ") || strings.HasPrefix(typ, " ") || strings.Contains(data, "\r") || strings.HasPrefix(id+typ+data, "\uFEFF") {
			t.Skip()
		}
		var b strings.Builder
		b.WriteString("retry: 2000\n\n: keep-alive\n\n")
		if id != "" {
			b.WriteString("id: " + id + "\n")
		}
		if typ != "" {
			b.WriteString("event: " + typ + "\n")
		}
		for _, l := range strings.Split(data, "\n") {
			b.WriteString("data: " + l + "\n")
		}
		b.WriteString("\n")
		evs, _, _, err := parseAll(iotest.HalfReader(strings.NewReader(b.String())), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want := sseEvent{id: id, typ: typ, data: data}
		if typ == "" {
			want.typ = "message"
		}
		if len(evs) != 1 || evs[0] != want {
			t.Fatalf("%q: got %q, want %q", b.String(), evs, want)
		}
	})
}
