package synthetic_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tributary-sync/tributary/internal/connectors/connectortest"
	"github.com/tributary-sync/tributary/internal/connectors/synthetic"
	"github.com/tributary-sync/tributary/pkg/connector"
)

type attempt struct {
	mode       connector.SyncMode
	cfg        synthetic.Config
	checkpoint json.RawMessage
	resumed    bool
	after      func(connectortest.Event, int) error
	ignoreCtx  bool
}

func (a attempt) request(t *testing.T) *connector.SyncRequest {
	t.Helper()
	raw, err := json.Marshal(a.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mode := a.mode
	if mode == "" {
		mode = connector.Full
	}
	return &connector.SyncRequest{SourceID: "src", RunID: "run", Mode: mode, Config: raw, Checkpoint: a.checkpoint, Resumed: a.resumed, Attempt: 1}
}

func (a attempt) run(ctx context.Context, t *testing.T) (*connectortest.Recorder, error) {
	t.Helper()
	rec := connectortest.New(t)
	rec.After = a.after
	rec.IgnoreContext = a.ignoreCtx
	return rec, synthetic.New().Sync(ctx, a.request(t), rec)
}

func (a attempt) mustRun(t *testing.T) *connectortest.Recorder {
	t.Helper()
	rec, err := a.run(t.Context(), t)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if _, ok := rec.Final(); !ok {
		t.Fatal("sync returned nil without Complete")
	}
	return rec
}

func decode(t *testing.T, raw json.RawMessage) synthetic.Checkpoint {
	t.Helper()
	var cp synthetic.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatalf("decode checkpoint %s: %v", raw, err)
	}
	return cp
}

func final(t *testing.T, rec *connectortest.Recorder) synthetic.Checkpoint {
	t.Helper()
	raw, ok := rec.Final()
	if !ok {
		t.Fatal("not completed")
	}
	return decode(t, raw)
}

func ids(from, to int) []string {
	out := []string{}
	for i := from; i < to; i++ {
		out = append(out, synthetic.ID(i))
	}
	return out
}

// covering returns the coverage function of CheckpointsBehindData for a sync
// whose uninterrupted order of documents is order: a partial checkpoint
// covers order[:next], a final one all of order plus deleted.
func covering(order, deleted []string) func(json.RawMessage) ([]string, error) {
	return func(raw json.RawMessage) ([]string, error) {
		var cp synthetic.Checkpoint
		if err := json.Unmarshal(raw, &cp); err != nil {
			return nil, err
		}
		if cp.Partial {
			if cp.Next > len(order) {
				return nil, fmt.Errorf("next %d beyond %d documents", cp.Next, len(order))
			}
			return order[:cp.Next], nil
		}
		return append(slices.Clone(order), deleted...), nil
	}
}

func assertBehind(t *testing.T, rec *connectortest.Recorder, order, deleted []string, baseline ...string) {
	t.Helper()
	if err := rec.CheckpointsBehindData(covering(order, deleted), baseline...); err != nil {
		t.Error(err)
	}
}

func version(t *testing.T, doc connector.Document) int {
	t.Helper()
	v, ok := doc.Metadata.Extra["version"].(int)
	if !ok {
		t.Fatalf("%s: extra %v has no int version", doc.ExternalID, doc.Metadata.Extra)
	}
	return v
}

func TestManifest(t *testing.T) {
	m := synthetic.New().Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Name != synthetic.Name || !m.Supports(connector.Full) || !m.Supports(connector.Incremental) {
		t.Errorf("manifest = %+v", m)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, config, checkpoint, want string
	}{
		{name: "negative count", config: `{"count":-1}`, want: "count and size must be non-negative"},
		{name: "negative size", config: `{"count":1,"size":-1}`, want: "count and size must be non-negative"},
		{name: "size too large", config: fmt.Sprintf(`{"count":1,"size":%d}`, synthetic.MaxSize+1), want: fmt.Sprintf("size at most %d", synthetic.MaxSize)},
		{name: "change_ratio above 1", config: `{"count":1,"change_ratio":1.5}`, want: "change_ratio must be within [0, 1]"},
		{name: "change_ratio below 0", config: `{"count":1,"change_ratio":-0.1}`, want: "change_ratio must be within [0, 1]"},
		{name: "pace not a duration", config: `{"count":1,"pace":"soon"}`, want: `pace "soon" is not a duration`},
		{name: "pace without unit", config: `{"count":1,"pace":"5"}`, want: `pace "5" is not a duration`},
		{name: "negative pace", config: `{"count":1,"pace":"-1s"}`, want: `pace "-1s" is not a duration`},
		{name: "wrong type", config: `{"count":"many"}`, want: "decode config"},
		{name: "bad checkpoint", config: `{"count":1}`, checkpoint: `{"generation":"x"}`, want: "decode checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &connector.SyncRequest{Mode: connector.Full, Config: json.RawMessage(tt.config)}
			if tt.checkpoint != "" {
				req.Checkpoint = json.RawMessage(tt.checkpoint)
			}
			rec := connectortest.New(t)
			err := synthetic.New().Sync(t.Context(), req, rec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if ev := rec.Events(); len(ev) != 0 {
				t.Errorf("a rejected config reported %v", ev)
			}
		})
	}
}

func TestID(t *testing.T) {
	for i, want := range map[int]string{0: "doc-000000", 42: "doc-000042", 999999: "doc-999999", 1000000: "doc-1000000"} {
		if got := synthetic.ID(i); got != want {
			t.Errorf("ID(%d) = %q, want %q", i, got, want)
		}
	}
}

func TestFullSync(t *testing.T) {
	tests := []struct {
		name string
		cfg  synthetic.Config
	}{
		{"empty", synthetic.Config{Count: 0}},
		{"one", synthetic.Config{Count: 1}},
		{"seven with content", synthetic.Config{Count: 7, Size: 33, Seed: 9}},
		{"past the default checkpoint interval", synthetic.Config{Count: 1001, Seed: -3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := attempt{cfg: tt.cfg}.mustRun(t)
			n := tt.cfg.Count
			want := ids(0, n)
			if got := rec.IDs(connectortest.Emit, connectortest.Update, connectortest.Delete, connectortest.Error); !slices.Equal(got, want) {
				t.Fatalf("reported %d documents %q…, want exactly %d emits", len(got), got[:min(len(got), 3)], n)
			}
			if got := rec.IDs(connectortest.Emit); len(got) != n {
				t.Errorf("%d emits, want %d", len(got), n)
			}
			if rec.Scanned() != n {
				t.Errorf("scanned %d, want %d", rec.Scanned(), n)
			}
			if cp := final(t, rec); cp != (synthetic.Checkpoint{Generation: 0, Count: n}) {
				t.Errorf("final checkpoint %+v", cp)
			}
			assertBehind(t, rec, want, nil)

			for i, doc := range rec.Docs() {
				if doc.Title == "" || doc.Metadata.Path != i || doc.Metadata.MimeType != "text/plain" || !doc.Permissions.Public {
					t.Errorf("%s: %+v", i, doc)
				}
				if version(t, doc) != 0 {
					t.Errorf("%s: version %d before any incremental sync", i, version(t, doc))
				}
				if doc.Metadata.Size != int64(tt.cfg.Size) {
					t.Errorf("%s: size %d", i, doc.Metadata.Size)
				}
				c, stored := rec.ContentOf(doc)
				switch {
				case tt.cfg.Size == 0 && (doc.ContentID != "" || stored):
					t.Errorf("%s: content %q stored for size 0", i, doc.ContentID)
				case tt.cfg.Size > 0 && (!stored || len(c.Data) != tt.cfg.Size || c.Binary || c.ContentType != "text/plain"):
					t.Errorf("%s: content %+v", i, c)
				}
			}
		})
	}
}

func TestDeterministicContent(t *testing.T) {
	cfg := synthetic.Config{Count: 20, Size: 64, Seed: 7}
	a := attempt{cfg: cfg}.mustRun(t)
	b := attempt{cfg: cfg}.mustRun(t)
	other := cfg
	other.Seed = 8
	c := attempt{cfg: other}.mustRun(t)

	differs := 0
	for i := range cfg.Count {
		id := synthetic.ID(i)
		da, db, dc := a.Docs()[id], b.Docs()[id], c.Docs()[id]
		ca, _ := a.ContentOf(da)
		cb, _ := b.ContentOf(db)
		cc, _ := c.ContentOf(dc)
		if da.Title != db.Title || version(t, da) != version(t, db) || string(ca.Data) != string(cb.Data) {
			t.Errorf("%s differs between two syncs with seed 7: %q vs %q", id, ca.Data, cb.Data)
		}
		if want := synthetic.Content(cfg.Seed, i, 0, cfg.Size); string(ca.Data) != want {
			t.Errorf("%s content %q, want Content() = %q", id, ca.Data, want)
		}
		if string(ca.Data) != string(cc.Data) {
			differs++
		}
	}
	if differs == 0 {
		t.Error("seeds 7 and 8 generate identical content")
	}

	for _, size := range []int{0, 1, 5, 6, 1000} {
		if got := synthetic.Content(1, 2, 3, size); len(got) != size {
			t.Errorf("Content size %d has %d bytes", size, len(got))
		}
	}
	if synthetic.Content(1, 2, 0, 100) == synthetic.Content(1, 2, 1, 100) {
		t.Error("a new version of a document has the same content")
	}
	if synthetic.Content(1, 2, 0, 100) == synthetic.Content(1, 3, 0, 100) {
		t.Error("two documents have the same content")
	}
}

func TestChanged(t *testing.T) {
	tests := []struct {
		count int
		ratio float64
		want  int
	}{
		{10, 0, 0},
		{10, 0.24, 2},
		{10, 0.25, 3}, // 2.5 rounds away from zero
		{10, 0.26, 3},
		{3, 0.5, 2}, // 1.5
		{10, 1, 10},
		{0, 0.5, 0},
		{1000, 0.001, 1},
		{1000, 0.0004, 0},
	}
	for _, tt := range tests {
		if got := synthetic.Changed(tt.count, tt.ratio); got != tt.want {
			t.Errorf("Changed(%d, %v) = %d, want %d", tt.count, tt.ratio, got, tt.want)
		}
	}
}

func TestIncremental(t *testing.T) {
	tests := []struct {
		name  string
		count int
		ratio float64
		seed  int64
		want  int
	}{
		{"quarter rounds up", 10, 0.25, 3, 3},
		{"just under", 10, 0.24, 3, 2},
		{"nothing", 10, 0, 3, 0},
		{"everything", 10, 1, 3, 10},
		{"negative seed", 50, 0.1, -12345, 5},
		{"empty", 0, 0.5, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := synthetic.Config{Count: tt.count, Size: 16, ChangeRatio: tt.ratio, Seed: tt.seed}
			base := attempt{cfg: cfg}.mustRun(t)
			cp0, _ := base.Final()

			gen1 := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp0}.mustRun(t)
			changed := gen1.IDs(connectortest.Update)
			if got := gen1.IDs(connectortest.Emit, connectortest.Update, connectortest.Delete, connectortest.Error); !slices.Equal(got, changed) {
				t.Errorf("incremental reported more than updates: %q", got)
			}
			if len(changed) != tt.want {
				t.Fatalf("changed %d documents, want round(%v × %d) = %d", len(changed), tt.ratio, tt.count, tt.want)
			}
			if len(changed) != len(unique(changed)) {
				t.Errorf("a document changed twice: %q", changed)
			}
			if cp := final(t, gen1); cp != (synthetic.Checkpoint{Generation: 1, Count: tt.count}) {
				t.Errorf("final checkpoint %+v", cp)
			}
			for _, doc := range gen1.Docs() {
				if v := version(t, doc); v != 1 {
					t.Errorf("%s: version %d after its first change", doc.ExternalID, v)
				}
			}

			// The same request changes the same documents, identically.
			again := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp0}.mustRun(t)
			if got := again.IDs(connectortest.Update); !slices.Equal(got, changed) {
				t.Errorf("repeated incremental changed %q, first %q", got, changed)
			}
			for id, doc := range again.Docs() {
				c1, _ := gen1.ContentOf(gen1.Docs()[id])
				c2, _ := again.ContentOf(doc)
				if string(c1.Data) != string(c2.Data) {
					t.Errorf("%s: content differs between identical incrementals", id)
				}
			}

			// A full sync after the generation emits what the incremental did
			// for changed documents and the original for the rest.
			cp1, _ := gen1.Final()
			full := attempt{cfg: cfg, checkpoint: cp1}.mustRun(t)
			if cp := final(t, full); cp.Generation != 1 {
				t.Errorf("full sync moved the generation to %d", cp.Generation)
			}
			for id, doc := range full.Docs() {
				want, src := base.Docs()[id], base
				if d, ok := gen1.Docs()[id]; ok {
					want, src = d, gen1
				}
				c1, _ := src.ContentOf(want)
				c2, _ := full.ContentOf(doc)
				if version(t, doc) != version(t, want) || string(c1.Data) != string(c2.Data) {
					t.Errorf("%s: full sync has version %d %q, want %d %q", id, version(t, doc), c2.Data, version(t, want), c1.Data)
				}
			}
		})
	}
}

func unique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// Generations walk around the ids: over many incremental syncs every
// document's version counts the syncs that changed it.
func TestGenerations(t *testing.T) {
	cfg := synthetic.Config{Count: 10, ChangeRatio: 0.3, Seed: 4}
	cp, _ := attempt{cfg: cfg}.mustRun(t).Final()
	counts := map[string]int{}
	var prev []string
	for g := 1; g <= 7; g++ {
		rec := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp}.mustRun(t)
		changed := rec.IDs(connectortest.Update)
		if len(changed) != 3 {
			t.Fatalf("generation %d changed %q", g, changed)
		}
		if prev != nil && slices.ContainsFunc(changed, func(id string) bool { return slices.Contains(prev, id) }) {
			t.Errorf("generation %d changed %q, overlapping the previous %q", g, changed, prev)
		}
		for _, doc := range rec.Docs() {
			counts[doc.ExternalID]++
			if v := version(t, doc); v != counts[doc.ExternalID] {
				t.Errorf("generation %d: %s version %d, changed %d times", g, doc.ExternalID, v, counts[doc.ExternalID])
			}
		}
		if got := final(t, rec).Generation; got != g {
			t.Errorf("generation %d wrote generation %d", g, got)
		}
		prev = changed
		cp, _ = rec.Final()
	}
	full := attempt{cfg: cfg, checkpoint: cp}.mustRun(t)
	total := 0
	for id, doc := range full.Docs() {
		if v := version(t, doc); v != counts[id] {
			t.Errorf("after 7 generations %s has version %d, changed %d times", id, v, counts[id])
		}
		total += counts[id]
	}
	if total != 21 {
		t.Errorf("%d changes in 7 generations of 3", total)
	}
}

func TestIncrementalFallsBackToFull(t *testing.T) {
	cfg := synthetic.Config{Count: 5, ChangeRatio: 0.4}
	cp, _ := attempt{cfg: cfg}.mustRun(t).Final()
	grown := cfg
	grown.Count = 6
	tests := []struct {
		name       string
		cfg        synthetic.Config
		checkpoint json.RawMessage
	}{
		{"no checkpoint", cfg, nil},
		{"null checkpoint", cfg, json.RawMessage("null")},
		{"count changed", grown, cp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := attempt{mode: connector.Incremental, cfg: tt.cfg, checkpoint: tt.checkpoint}.mustRun(t)
			if got, want := rec.IDs(connectortest.Emit, connectortest.Update, connectortest.Delete), ids(0, tt.cfg.Count); !slices.Equal(got, want) {
				t.Errorf("reported %q, want a full %q", got, want)
			}
			if got := final(t, rec); got != (synthetic.Checkpoint{Count: tt.cfg.Count}) {
				t.Errorf("final %+v", got)
			}
		})
	}
}

func TestCheckpointEvery(t *testing.T) {
	tests := []struct {
		name  string
		mode  connector.SyncMode
		count int
		ratio float64
		every int
		next  []int
	}{
		{"full, remainder", connector.Full, 10, 0, 3, []int{3, 6, 9}},
		{"full, exact multiple: the last is Complete's", connector.Full, 9, 0, 3, []int{3, 6}},
		{"full, every document", connector.Full, 3, 0, 1, []int{1, 2}},
		{"full, fewer than every", connector.Full, 3, 0, 5, nil},
		{"incremental", connector.Incremental, 10, 0.7, 3, []int{3, 6}},
		{"incremental, exact multiple", connector.Incremental, 10, 0.6, 3, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := synthetic.Config{Count: tt.count, ChangeRatio: tt.ratio, Seed: 2, CheckpointEvery: tt.every}
			cp0, _ := attempt{cfg: cfg}.mustRun(t).Final()
			rec := attempt{mode: tt.mode, cfg: cfg, checkpoint: cp0}.mustRun(t)

			order := rec.IDs(connectortest.Emit, connectortest.Update)
			wantGen := 0
			if tt.mode == connector.Incremental {
				wantGen = 1
			}
			var next []int
			var seen int
			for _, e := range rec.Events() {
				switch e.Kind {
				case connectortest.Emit, connectortest.Update:
					seen++
				case connectortest.Checkpoint:
					cp := decode(t, e.Checkpoint)
					want := synthetic.Checkpoint{Generation: wantGen, Count: tt.count, Mode: tt.mode, Next: cp.Next, Partial: true}
					if cp != want {
						t.Errorf("checkpoint %+v, want %+v", cp, want)
					}
					if cp.Next != seen || seen%tt.every != 0 {
						t.Errorf("checkpoint next %d after %d documents", cp.Next, seen)
					}
					next = append(next, cp.Next)
				}
			}
			if !slices.Equal(next, tt.next) {
				t.Errorf("checkpoints at %v, want %v", next, tt.next)
			}
			assertBehind(t, rec, order, nil)
		})
	}
}

// stopAt stops a sync at its n-th event of kind: a checkpoint returns
// ErrStopRequested after it is stored, any other event fails the sync after
// it is recorded (the worst case: the event was published, the sync died).
func stopAt(kind connectortest.Kind, n int) func(connectortest.Event, int) error {
	if kind == connectortest.Checkpoint {
		return connectortest.StopAtCheckpoint(n)
	}
	seen := 0
	return func(e connectortest.Event, _ int) error {
		if e.Kind == kind {
			seen++
			if seen == n {
				return errInterrupted
			}
		}
		return nil
	}
}

var errInterrupted = errors.New("interrupted")

func TestResume(t *testing.T) {
	stops := []struct {
		name string
		kind connectortest.Kind
		n    int
	}{
		{"stop at first checkpoint", connectortest.Checkpoint, 1},
		{"stop at last checkpoint", connectortest.Checkpoint, 2},
		{"die before any checkpoint", connectortest.Emit, 2},
		{"die after a checkpoint", connectortest.Emit, 5},
		{"die on the last document", connectortest.Emit, 7},
	}
	for _, mode := range []connector.SyncMode{connector.Full, connector.Incremental} {
		for _, st := range stops {
			t.Run(fmt.Sprintf("%s, %s", mode, st.name), func(t *testing.T) {
				cfg := synthetic.Config{Count: 10, Size: 8, ChangeRatio: 0.7, Seed: 5, CheckpointEvery: 3}
				if mode == connector.Full {
					cfg.Count = 7
				}
				kind := connectortest.Emit
				if mode == connector.Incremental {
					kind = connectortest.Update
				}
				stopKind := st.kind
				if stopKind == connectortest.Emit {
					stopKind = kind
				}
				cp0, _ := attempt{cfg: cfg}.mustRun(t).Final()
				whole := attempt{mode: mode, cfg: cfg, checkpoint: cp0}.mustRun(t)
				order := whole.IDs(kind)
				if len(order) != 7 {
					t.Fatalf("uninterrupted sync reported %d documents", len(order))
				}

				first, err := attempt{mode: mode, cfg: cfg, checkpoint: cp0, after: stopAt(stopKind, st.n)}.run(t.Context(), t)
				if err == nil {
					t.Fatal("interrupted attempt returned nil")
				}
				if _, done := first.Final(); done {
					t.Fatal("interrupted attempt completed")
				}
				assertBehind(t, first, order, nil)

				// The worker hands a resumed attempt the last saved checkpoint,
				// or the previous run's when this run saved none.
				cp := first.LastCheckpoint()
				next := 0
				if cp != nil {
					next = decode(t, cp).Next
				} else {
					cp = cp0
				}
				second := attempt{mode: mode, cfg: cfg, checkpoint: cp, resumed: true}.mustRun(t)
				resumed := second.IDs(kind)
				if !slices.Equal(resumed, order[next:]) {
					t.Errorf("resumed attempt reported %q, want %q", resumed, order[next:])
				}
				assertBehind(t, second, order, nil, order[:next]...)
				if got := final(t, second); got != final(t, whole) {
					t.Errorf("final checkpoint %+v, uninterrupted %+v", got, final(t, whole))
				}

				// No gaps; duplicates only past the checkpoint.
				times := map[string]int{}
				for _, id := range append(first.IDs(kind), resumed...) {
					times[id]++
				}
				for j, id := range order {
					switch {
					case times[id] == 0:
						t.Errorf("%s lost", id)
					case times[id] > 1 && j < next:
						t.Errorf("%s reported %d times though the checkpoint covered it", id, times[id])
					}
				}
				// And the documents are those of an uninterrupted sync.
				for id, doc := range second.Docs() {
					want := whole.Docs()[id]
					c1, _ := whole.ContentOf(want)
					c2, _ := second.ContentOf(doc)
					if version(t, doc) != version(t, want) || string(c1.Data) != string(c2.Data) {
						t.Errorf("%s: resumed version %d %q, uninterrupted %d %q", id, version(t, doc), c2.Data, version(t, want), c1.Data)
					}
				}
			})
		}
	}
}

// A new run after one that stopped midway starts over in full, within the
// generation the stopped run began.
func TestPartialCheckpointOfAnotherRun(t *testing.T) {
	cfg := synthetic.Config{Count: 10, ChangeRatio: 0.7, Seed: 5, CheckpointEvery: 3}
	cp0, _ := attempt{cfg: cfg}.mustRun(t).Final()
	failed, _ := attempt{mode: connector.Incremental, cfg: cfg, checkpoint: cp0, after: connectortest.StopAtCheckpoint(1)}.run(t.Context(), t)
	cp := failed.LastCheckpoint()
	if got := decode(t, cp); !got.Partial || got.Generation != 1 {
		t.Fatalf("checkpoint %+v", got)
	}
	for _, mode := range []connector.SyncMode{connector.Full, connector.Incremental} {
		t.Run(string(mode), func(t *testing.T) {
			rec := attempt{mode: mode, cfg: cfg, checkpoint: cp}.mustRun(t)
			if got, want := rec.IDs(connectortest.Emit, connectortest.Update, connectortest.Delete), ids(0, 10); !slices.Equal(got, want) {
				t.Errorf("reported %q, want a full %q", got, want)
			}
			if got := final(t, rec); got != (synthetic.Checkpoint{Generation: 1, Count: 10}) {
				t.Errorf("final %+v", got)
			}
			for i := range 10 {
				doc := rec.Docs()[synthetic.ID(i)]
				if want := synthetic.Version(10, 7, 5, 1, i); version(t, doc) != want {
					t.Errorf("%s: version %d, want %d", doc.ExternalID, version(t, doc), want)
				}
			}
		})
	}
}

func TestCountChanges(t *testing.T) {
	tests := []struct {
		name    string
		mode    connector.SyncMode
		count   int
		deleted []string
	}{
		{"shrink", connector.Full, 6, ids(6, 10)},
		{"shrink, incremental requested", connector.Incremental, 6, ids(6, 10)},
		{"shrink to nothing", connector.Full, 0, ids(0, 10)},
		{"grow", connector.Full, 12, nil},
		{"same", connector.Full, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := synthetic.Config{Count: 10, ChangeRatio: 0.2, CheckpointEvery: 4}
			cp0, _ := attempt{cfg: cfg}.mustRun(t).Final()
			cfg.Count = tt.count
			rec := attempt{mode: tt.mode, cfg: cfg, checkpoint: cp0}.mustRun(t)
			// Deletes come first, so every partial checkpoint follows them.
			var want []string
			for _, id := range tt.deleted {
				want = append(want, "delete "+id)
			}
			want = append(want, ids(0, tt.count)...)
			var got []string
			for _, e := range rec.Events() {
				switch e.Kind {
				case connectortest.Emit:
					got = append(got, e.ID)
				case connectortest.Delete:
					got = append(got, "delete "+e.ID)
				case connectortest.Update, connectortest.Error:
					t.Errorf("unexpected %s %s", e.Kind, e.ID)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("reported %q, want %q", got, want)
			}
			if cp := final(t, rec); cp != (synthetic.Checkpoint{Count: tt.count}) {
				t.Errorf("final %+v", cp)
			}
			assertBehind(t, rec, ids(0, tt.count), tt.deleted)
		})
	}
}

func TestCancel(t *testing.T) {
	for _, lenient := range []bool{false, true} {
		t.Run(fmt.Sprintf("before the sync, lenient %v", lenient), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			rec, err := attempt{cfg: synthetic.Config{Count: 5}, ignoreCtx: lenient}.run(ctx, t)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if ev := rec.Events(); len(ev) != 0 {
				t.Errorf("cancelled sync reported %v", ev)
			}
		})
		for _, every := range []int{1, 3, 500} {
			t.Run(fmt.Sprintf("during the sync, checkpoint_every %d, lenient %v", every, lenient), func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				emits := 0
				rec, err := attempt{cfg: synthetic.Config{Count: 10, Size: 4, CheckpointEvery: every}, ignoreCtx: lenient, after: func(e connectortest.Event, _ int) error {
					if e.Kind == connectortest.Emit {
						emits++
						if emits == 3 {
							cancel()
						}
					}
					return nil
				}}.run(ctx, t)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want context.Canceled", err)
				}
				if got := rec.IDs(connectortest.Emit); !slices.Equal(got, ids(0, 3)) {
					t.Errorf("emitted %q, want %q", got, ids(0, 3))
				}
				if _, done := rec.Final(); done {
					t.Error("cancelled sync completed")
				}
				if n := rec.Refused(); n > 1 {
					t.Errorf("%d calls after cancellation, want at most 1", n)
				}
			})
		}
	}
}

// Pace runs on a fake clock (testing/synctest): the test observes what the
// sync has emitted while it waits, without measuring real time.
func TestPace(t *testing.T) {
	t.Run("waits before each document", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rec := connectortest.New(t)
			rec.IgnoreContext = true // only the connector's own checks stop it
			done := make(chan error, 1)
			req := attempt{cfg: synthetic.Config{Count: 3, Pace: "1h"}}.request(t)
			go func() { done <- synthetic.New().Sync(ctx, req, rec) }()

			synctest.Wait() // blocked in the first pause
			if got := rec.IDs(connectortest.Emit); len(got) != 0 {
				t.Fatalf("emitted %q before the first pause ended", got)
			}
			time.Sleep(90 * time.Minute)
			synctest.Wait() // one pause over, blocked in the second
			if got := rec.IDs(connectortest.Emit); !slices.Equal(got, ids(0, 1)) {
				t.Fatalf("emitted %q after one pause", got)
			}

			cancel() // cancellation interrupts a pause
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if got := rec.IDs(connectortest.Emit); !slices.Equal(got, ids(0, 1)) {
				t.Errorf("emitted %q after cancellation", got)
			}
			if _, completed := rec.Final(); completed {
				t.Error("cancelled sync completed")
			}
		})
	})
	for _, pace := range []string{"", "0s", "1.5ms", "2m30s"} {
		t.Run("completes with pace "+pace, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec, err := attempt{cfg: synthetic.Config{Count: 4, Pace: pace}}.run(context.Background(), t)
				if err != nil {
					t.Fatal(err)
				}
				if got := rec.IDs(connectortest.Emit); !slices.Equal(got, ids(0, 4)) {
					t.Errorf("emitted %q", got)
				}
			})
		})
	}
}

// Shrinking the count and being interrupted after a partial checkpoint still
// deletes the tail: the deletes precede the checkpoint.
func TestShrinkInterruptedDeletesTail(t *testing.T) {
	cfg := synthetic.Config{Count: 10, CheckpointEvery: 3}
	cp0, _ := attempt{cfg: cfg}.mustRun(t).Final()
	cfg.Count = 6
	rec := attempt{cfg: cfg, checkpoint: cp0}.mustRun(t)
	var deleted []string
	for _, e := range rec.Events() {
		if e.Kind == connectortest.Checkpoint {
			break
		}
		if e.Kind == connectortest.Delete {
			deleted = append(deleted, e.ID)
		}
	}
	if want := ids(6, 10); !slices.Equal(deleted, want) {
		t.Fatalf("deleted before the first checkpoint %q, want %q", deleted, want)
	}
}

func TestActions(t *testing.T) {
	c := synthetic.New()
	if err := c.Manifest().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := json.RawMessage(`{"count":4}`)
	res, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{SourceID: "s", Action: "echo", Params: json.RawMessage(`{"message":"m"}`), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if e := res.(synthetic.EchoResult); string(e.Params) != `{"message":"m"}` || e.Count != 4 || e.SourceID != "s" || e.HasCredentials {
		t.Fatalf("echo: %+v", e)
	}
	if _, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{Action: "fail", Config: cfg}); err == nil || err.Error() != "synthetic failure" {
		t.Fatalf("fail: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := c.ExecuteAction(ctx, &connector.ActionRequest{Action: "sleep", Params: json.RawMessage(`{"duration":"1m"}`), Config: cfg}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sleep: %v", err)
	}
	if _, err := c.ExecuteAction(t.Context(), &connector.ActionRequest{Action: "sleep", Params: json.RawMessage(`{"duration":"1h"}`), Config: cfg}); err == nil {
		t.Fatal("sleep 1h accepted")
	}
	if err := c.TestConnection(t.Context(), &connector.ActionRequest{Config: cfg}); err != nil {
		t.Fatal(err)
	}
}
