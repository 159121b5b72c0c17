package exec

import (
	"bytes"
	"sync"
)

// tail keeps the last lines written to it, each cut at a byte limit: the
// child's stderr, for error messages. onLine, when set, sees every complete
// line (cut) as it arrives.
type tail struct {
	maxLines, maxLen int
	onLine           func(string)

	mu      sync.Mutex
	lines   []string // ring of up to maxLines
	next    int      // where the next line goes once the ring is full
	partial []byte
	cut     bool // partial exceeded maxLen
}

func newTail(maxLines, maxLen int, onLine func(string)) *tail {
	return &tail{maxLines: maxLines, maxLen: maxLen, onLine: onLine}
}

// Write implements io.Writer; it never fails.
func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := t.maxLen - len(t.partial); room < len(chunk) {
			t.partial = append(t.partial, chunk[:max(room, 0)]...)
			t.cut = true
		} else {
			t.partial = append(t.partial, chunk...)
		}
		if i < 0 {
			break
		}
		t.flushLocked()
		p = p[i+1:]
	}
	return n, nil
}

// Close keeps a last line that has no newline.
func (t *tail) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 || t.cut {
		t.flushLocked()
	}
	return nil
}

func (t *tail) flushLocked() {
	line := string(bytes.TrimRight(t.partial, "\r"))
	if t.cut {
		line += " …(cut)"
	}
	t.partial, t.cut = t.partial[:0], false
	if t.onLine != nil {
		t.onLine(line)
	}
	if len(t.lines) < t.maxLines {
		t.lines = append(t.lines, line)
		return
	}
	t.lines[t.next] = line
	t.next = (t.next + 1) % t.maxLines
}

// Lines returns the kept lines, oldest first.
func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.lines))
	out = append(out, t.lines[t.next:]...)
	return append(out, t.lines[:t.next]...)
}
