package exec

import (
	"fmt"
	"strings"
)

// ProtocolError is returned by Sync when the child broke the protocol: a
// line that is not a JSON object, a message of an unknown type or with an
// invalid field, a line over the length limit, or a message after done or
// fail. The child is stopped and the run fails with this error.
type ProtocolError struct {
	// Connector is the connector's name.
	Connector string
	// Line is the 1-based number of the stdout line at fault (0 when the
	// fault is not one line's, such as a read error).
	Line int
	// Msg says what is wrong.
	Msg string
	// Stderr holds the last lines the child wrote to stderr.
	Stderr []string
}

func (e *ProtocolError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exec connector %s: protocol error", e.Connector)
	if e.Line > 0 {
		fmt.Fprintf(&b, " on stdout line %d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	writeStderr(&b, e.Stderr)
	return b.String()
}

// ExitError is returned by Sync when the child exited without a clean end:
// before done or fail, or with a non-zero status or a signal after done.
type ExitError struct {
	// Connector is the connector's name.
	Connector string
	// Status is the exit status, or -1 when a signal ended the child.
	Status int
	// Signal names the signal that ended the child, if one did.
	Signal string
	// Done is true when the child had sent done.
	Done bool
	// Stderr holds the last lines the child wrote to stderr.
	Stderr []string
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exec connector %s: ", e.Connector)
	switch {
	case e.Signal != "":
		fmt.Fprintf(&b, "killed by signal %s", e.Signal)
	default:
		fmt.Fprintf(&b, "exited with status %d", e.Status)
	}
	if e.Done {
		b.WriteString(" after done")
	} else {
		b.WriteString(" before done or fail")
	}
	writeStderr(&b, e.Stderr)
	return b.String()
}

// FailedError is returned by Sync when the child sent fail: the run fails
// with the child's own message.
type FailedError struct {
	// Connector is the connector's name.
	Connector string
	// Msg is the error the child reported.
	Msg string
}

func (e *FailedError) Error() string { return e.Msg }

func writeStderr(b *strings.Builder, lines []string) {
	if len(lines) == 0 {
		b.WriteString(" (stderr was empty)")
		return
	}
	b.WriteString("; last stderr lines:")
	for _, l := range lines {
		b.WriteString("\n  ")
		b.WriteString(l)
	}
}
