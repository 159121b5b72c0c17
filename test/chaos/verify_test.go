package chaos

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
)

// logged is one event read back from the stream, with its stream sequence.
type logged struct {
	seq uint64
	env *events.Envelope
}

// readEvents reads the whole events stream with an ordered consumer.
func readEvents(t *testing.T, js jetstream.JetStream) []logged {
	t.Helper()
	return readStream(t, js, events.StreamEvents)
}

// readStream reads a whole stream of Tributary envelopes.
func readStream(t *testing.T, js jetstream.JetStream, stream string) []logged {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("events stream: %v", err)
	}
	last := s.CachedInfo().State.LastSeq
	var out []logged
	if last == 0 {
		return out
	}
	var cons jetstream.Consumer
	// A cluster that just lost a node may fail a request now and then: start
	// a new ordered consumer after the last event read, until the deadline.
	retry := func(what string, err error) {
		if ctx.Err() != nil {
			t.Fatalf("%s: %v (read %d events, stream ends at %d)", what, err, len(out), last)
		}
		cons = nil
		time.Sleep(250 * time.Millisecond)
	}
	for len(out) == 0 || out[len(out)-1].seq < last {
		if cons == nil {
			cfg := jetstream.OrderedConsumerConfig{}
			if len(out) > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, out[len(out)-1].seq+1
			}
			if cons, err = s.OrderedConsumer(ctx, cfg); err != nil {
				retry("ordered consumer", err)
				continue
			}
		}
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			retry("fetch events", err)
			continue
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			env, err := events.Decode(msg.Data())
			if err != nil {
				t.Fatalf("event %d on %s does not decode: %v", md.Sequence.Stream, msg.Subject(), err)
			}
			out = append(out, logged{seq: md.Sequence.Stream, env: env})
		}
		if err := batch.Error(); err != nil {
			retry("fetch events", err)
			continue
		}
		if n == 0 && ctx.Err() != nil {
			t.Fatalf("read %d events, stream ends at %d", len(out), last)
		}
	}
	return out
}

// report sums up what the events stream shows.
type report struct {
	events        int
	resumes       int
	reEmitted     []int           // documents re-emitted by each resumed attempt
	killToResume  []time.Duration // kill of a run's worker → its next attempt started
	maxReEmitted  int
	checkpointsOK int
}

func (r *report) log(t *testing.T) {
	sum := 0
	for _, n := range r.reEmitted {
		sum += n
	}
	avg := 0.0
	if len(r.reEmitted) > 0 {
		avg = float64(sum) / float64(len(r.reEmitted))
	}
	var worst time.Duration
	for _, d := range r.killToResume {
		worst = max(worst, d)
	}
	t.Logf("events read back: %d; documents lost: 0; checkpoints checked against their documents: %d", r.events, r.checkpointsOK)
	t.Logf("resumed attempts: %d; re-emitted per resume: mean %.1f, max %d (bounded by the documents after the last checkpoint)", r.resumes, avg, r.maxReEmitted)
	t.Logf("kill → resume (%d): median %s, max %s", len(r.killToResume), median(r.killToResume).Round(time.Millisecond), worst.Round(time.Millisecond))
}

// attemptLog is what one attempt of a run did.
type attemptLog struct {
	startSeq uint64
	started  time.Time
	worker   string
	resumed  bool
	docs     map[int]uint64 // document index → stream seq of its first emit in this attempt
}

// check verifies, for every run, from the events alone: nothing lost, no
// checkpoint ahead of its documents, and each resume re-emitting only what
// came after the checkpoint it resumed from.
func check(t *testing.T, log []logged, runs map[string]string, docs int, kills map[string]time.Time) *report {
	t.Helper()
	rep := &report{events: len(log)}
	byRun := map[string][]logged{}
	for _, l := range log {
		if _, ok := runs[l.env.RunID]; ok {
			byRun[l.env.RunID] = append(byRun[l.env.RunID], l)
		}
	}
	for runID := range runs {
		evs := byRun[runID]
		attempts := map[int]*attemptLog{}
		firstSeen := map[int]uint64{} // document → stream seq of its first emit in the run
		type cp struct {
			seq  uint64
			next int
		}
		var cps []cp
		for _, l := range evs {
			a := attempts[l.env.Attempt]
			switch p := l.env.Payload().(type) {
			case *events.RunStarted:
				a = &attemptLog{startSeq: l.seq, started: l.env.Time, worker: p.WorkerID, resumed: p.Resumed, docs: map[int]uint64{}}
				attempts[l.env.Attempt] = a
			case *events.DocumentUpserted:
				i := docIndex(t, p.Document.ExternalID)
				if a == nil {
					t.Fatalf("run %s: document before run.started of attempt %d", runID, l.env.Attempt)
				}
				if _, ok := a.docs[i]; !ok {
					a.docs[i] = l.seq
				}
				if _, ok := firstSeen[i]; !ok {
					firstSeen[i] = l.seq
				}
			case *events.Checkpoint:
				var c struct {
					Next    int  `json:"next"`
					Partial bool `json:"partial"`
				}
				if err := json.Unmarshal(p.Checkpoint, &c); err != nil {
					t.Fatalf("run %s: checkpoint %s: %v", runID, p.Checkpoint, err)
				}
				if c.Partial {
					cps = append(cps, cp{seq: l.seq, next: c.Next})
				}
			}
		}

		// Nothing lost: every document reached the stream.
		var lost []int
		for i := range docs {
			if _, ok := firstSeen[i]; !ok {
				lost = append(lost, i)
			}
		}
		if len(lost) > 0 {
			t.Errorf("run %s: %d documents never reached JetStream, e.g. doc-%06d", runID, len(lost), lost[0])
		}

		// Checkpoints only after data: a checkpoint at position next covers
		// documents 0 … next-1, and each is in the stream before it.
		for _, c := range cps {
			for i := range c.next {
				if s, ok := firstSeen[i]; !ok || s > c.seq {
					t.Errorf("run %s: checkpoint at stream seq %d covers doc-%06d, which was not stored before it", runID, c.seq, i)
					break
				}
			}
			rep.checkpointsOK++
		}

		// Each resumed attempt re-emits only documents after the last
		// checkpoint stored before it started.
		nums := make([]int, 0, len(attempts))
		for n := range attempts {
			nums = append(nums, n)
		}
		sort.Ints(nums)
		for k, n := range nums {
			a := attempts[n]
			if k == 0 {
				continue
			}
			var last *cp
			for i := range cps {
				if cps[i].seq < a.startSeq {
					last = &cps[i]
				}
			}
			if last != nil && !a.resumed {
				t.Errorf("run %s: attempt %d started after a checkpoint but not resumed", runID, n)
			}
			re := 0
			for i, seq := range a.docs {
				first := firstSeen[i]
				if first >= seq {
					continue // new in this attempt
				}
				re++
				if last != nil && i < last.next {
					t.Errorf("run %s: attempt %d re-emitted doc-%06d, covered by the checkpoint at seq %d (next %d)", runID, n, i, last.seq, last.next)
					break
				}
			}
			rep.resumes++
			rep.reEmitted = append(rep.reEmitted, re)
			rep.maxReEmitted = max(rep.maxReEmitted, re)
			prev := attempts[nums[k-1]]
			if killedAt, ok := kills[prev.worker]; ok && killedAt.Before(a.started) {
				rep.killToResume = append(rep.killToResume, a.started.Sub(killedAt))
			}
		}
	}
	return rep
}

func docIndex(t *testing.T, externalID string) int {
	t.Helper()
	i, err := strconv.Atoi(strings.TrimPrefix(externalID, "doc-"))
	if err != nil || !strings.HasPrefix(externalID, "doc-") {
		t.Fatalf("unexpected external id %q", externalID)
	}
	return i
}

// checkChanges verifies the change feed: every document of every run's
// source was created exactly once, and nothing was updated or deleted,
// however many times crashed and resumed attempts emitted it.
func checkChanges(t *testing.T, changes []logged, runs map[string]string, docs int) {
	t.Helper()
	created := map[string]map[string]int{} // source → external id → count
	for _, l := range changes {
		switch p := l.env.Payload().(type) {
		case *events.ChangeCreated:
			if created[l.env.SourceID] == nil {
				created[l.env.SourceID] = map[string]int{}
			}
			created[l.env.SourceID][p.ExternalID]++
		case *events.ChangeUpdated, *events.ChangeDeleted:
			t.Errorf("unexpected %s of a document of source %s", l.env.Type, l.env.SourceID)
		}
	}
	for _, src := range runs {
		got := created[src]
		if len(got) != docs {
			t.Errorf("source %s: %d documents created on the change feed, want %d", src, len(got), docs)
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("source %s: %s created %d times", src, id, n)
			}
		}
	}
}
