package manager

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
)

// RunError is one document.error event of a run.
type RunError struct {
	ExternalID string    `json:"external_id"`
	Error      string    `json:"error"`
	Attempt    int       `json:"attempt"`
	Time       time.Time `json:"time"`
}

// maxRunErrorsRead bounds how far into a run's errors a page may start.
const maxRunErrorsRead = 100_000

// RunErrors returns one page of the run's document.error events, oldest
// first, and how many there are. They are read from the events stream
// (kept 7 days), so a run older than that has none left to show.
func (m *Manager) RunErrors(ctx context.Context, runID string, page, size int) ([]RunError, int, error) {
	run, err := m.GetRun(ctx, runID)
	if err != nil {
		return nil, 0, err
	}
	subject := events.EventSubject(run.SourceID, run.ID, events.TypeDocumentError)
	st, err := m.js.Stream(ctx, events.StreamEvents)
	if err != nil {
		return nil, 0, unavailable("read run errors", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, 0, unavailable("read run errors", err)
	}
	total := int(min(info.State.Subjects[subject], math.MaxInt32)) //nolint:gosec // bounded just before
	skip := (page - 1) * size
	out := []RunError{}
	if total == 0 || page-1 > total/size || skip >= total {
		return out, total, nil
	}
	if skip > maxRunErrorsRead {
		return nil, 0, invalid("less_than_equal", fmt.Sprintf("A page may start at most %d errors in", maxRunErrorsRead), "query", "page")
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, 0, unavailable("read run errors", err)
	}
	want := min(skip+size, total)
	for read := 0; read < want; {
		batch, err := cons.Fetch(want-read, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, 0, unavailable("read run errors", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			read++
			if read <= skip {
				continue
			}
			env, err := events.Decode(msg.Data())
			if err != nil {
				continue // the applier counted it as an error too; nothing to show
			}
			if p, ok := env.Payload().(*events.DocumentError); ok {
				out = append(out, RunError{ExternalID: p.ExternalID, Error: p.Error, Attempt: env.Attempt, Time: env.Time})
			}
		}
		if n == 0 {
			if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return nil, 0, unavailable("read run errors", err)
			}
			break // fewer than counted (expired meanwhile)
		}
	}
	return out, total, nil
}
