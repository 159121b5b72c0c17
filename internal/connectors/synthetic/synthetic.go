// Package synthetic is the built-in load source: a deterministic,
// configurable stream of documents that tests, benchmarks and users' own load
// tests share. It imports only pkg/connector, as a third-party connector would.
//
// Configuration:
//
//	{"count": 1000, "size": 1024, "pace": "2ms", "change_ratio": 0.1, "seed": 1, "checkpoint_every": 500}
//
// A full sync emits documents doc-000000 … doc-(count-1), each with size bytes
// of text content (none when size is 0), one every pace. It saves a checkpoint
// every checkpoint_every documents; a resumed attempt continues after it.
//
// Each incremental sync is a new generation: it changes round(change_ratio ×
// count) documents, a window that moves around the id space from one
// generation to the next, and emits them as updated. A document's content
// depends only on the seed, its index and how many generations changed it, so
// a repeated full sync emits identical documents.
//
// It has actions for tests of the actions API: echo (returns its params),
// sleep (waits, honouring cancellation) and fail (returns an error); and a
// connection test that passes whenever the config is usable, since there is
// nothing to connect to.
package synthetic

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// Name is the connector's type name.
const Name = "synthetic"

const defaultCheckpointEvery = 500

// MaxSize bounds the content size of one document.
const MaxSize = 16 << 20

const configSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["count"],
  "additionalProperties": false,
  "properties": {
    "count": {"type": "integer", "minimum": 0, "maximum": 100000000, "description": "Number of documents."},
    "size": {"type": "integer", "minimum": 0, "maximum": 16777216, "description": "Bytes of text content per document; 0 for metadata-only documents."},
    "pace": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$", "description": "Pause between documents, a Go duration such as 2ms."},
    "change_ratio": {"type": "number", "minimum": 0, "maximum": 1, "description": "Fraction of documents an incremental sync changes."},
    "seed": {"type": "integer", "description": "Seed of the generated content."},
    "checkpoint_every": {"type": "integer", "minimum": 1, "description": "Save a checkpoint every this many documents. Default 500."}
  }
}`

// Config is the source configuration.
type Config struct {
	Count           int     `json:"count"`
	Size            int     `json:"size,omitempty"`
	Pace            string  `json:"pace,omitempty"`
	ChangeRatio     float64 `json:"change_ratio,omitempty"`
	Seed            int64   `json:"seed,omitempty"`
	CheckpointEvery int     `json:"checkpoint_every,omitempty"`
}

// Checkpoint is the connector's checkpoint.
type Checkpoint struct {
	// Generation counts the incremental syncs that completed.
	Generation int `json:"generation"`
	// Count is the document count of the sync that wrote the checkpoint.
	Count int `json:"count"`
	// Mode of the sync that wrote it, and Next, the position to continue at,
	// when Partial.
	Mode    connector.SyncMode `json:"mode,omitempty"`
	Next    int                `json:"next,omitempty"`
	Partial bool               `json:"partial,omitempty"`
}

// Connector generates documents.
type Connector struct{}

// New returns the synthetic connector.
func New() *Connector { return &Connector{} }

// Manifest implements connector.Connector.
func (*Connector) Manifest() connector.Manifest {
	return connector.Manifest{
		Name:         Name,
		Version:      "1.0.0",
		Description:  "Deterministic generated documents for tests and load tests",
		SyncModes:    []connector.SyncMode{connector.Full, connector.Incremental},
		ConfigSchema: json.RawMessage(configSchema),
		Actions:      actions,
	}
}

type plan struct {
	cfg   Config
	pace  time.Duration
	every int
}

func parse(req *connector.SyncRequest) (*plan, error) {
	p := &plan{}
	if err := req.DecodeConfig(&p.cfg); err != nil {
		return nil, err
	}
	if p.cfg.Count < 0 || p.cfg.Size < 0 || p.cfg.Size > MaxSize {
		return nil, fmt.Errorf("count and size must be non-negative, size at most %d", MaxSize)
	}
	if p.cfg.ChangeRatio < 0 || p.cfg.ChangeRatio > 1 || math.IsNaN(p.cfg.ChangeRatio) {
		return nil, fmt.Errorf("change_ratio must be within [0, 1]")
	}
	if p.cfg.Pace != "" {
		d, err := time.ParseDuration(p.cfg.Pace)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("pace %q is not a duration", p.cfg.Pace)
		}
		p.pace = d
	}
	p.every = p.cfg.CheckpointEvery
	if p.every <= 0 {
		p.every = defaultCheckpointEvery
	}
	return p, nil
}

// Sync implements connector.Connector.
func (c *Connector) Sync(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	p, err := parse(req)
	if err != nil {
		return err
	}
	var prev Checkpoint
	had, err := req.DecodeCheckpoint(&prev)
	if err != nil {
		return err
	}

	cp := Checkpoint{Generation: prev.Generation, Count: p.cfg.Count, Mode: connector.Full}
	start := 0
	switch {
	case req.Resumed && prev.Partial:
		// Continue the interrupted attempt exactly where it stopped.
		cp, start = prev, prev.Next
	case prev.Partial:
		// The previous run stopped midway: the generation it began is not
		// complete, so a new run starts over in full.
		cp.Generation = prev.Generation
	case req.Mode == connector.Incremental && had && prev.Count == p.cfg.Count:
		cp.Mode = connector.Incremental
		cp.Generation = prev.Generation + 1
	}

	if cp.Mode == connector.Incremental {
		return c.incremental(ctx, p, cp, start, sc)
	}
	return c.full(ctx, p, cp, start, prev, had, sc)
}

func (c *Connector) full(ctx context.Context, p *plan, cp Checkpoint, start int, prev Checkpoint, had bool, sc connector.SyncContext) error {
	n := p.cfg.Count
	sc.SetTotal(n)
	// Documents beyond a shrunk count are gone. They are reported first, so
	// that every partial checkpoint (which records the new count) comes
	// after them and a resumed attempt need not remember the old count.
	if start == 0 && had && prev.Count > n {
		for i := n; i < prev.Count; i++ {
			if err := sc.EmitDeleted(ctx, ID(i)); err != nil {
				return err
			}
		}
	}
	for i := start; i < n; i++ {
		if err := c.one(ctx, p, cp.Generation, i, false, sc); err != nil {
			return err
		}
		if (i+1)%p.every == 0 && i+1 < n {
			cp.Partial, cp.Next = true, i+1
			if err := sc.SaveCheckpoint(ctx, &cp); err != nil {
				return err
			}
		}
	}
	return sc.Complete(ctx, &Checkpoint{Generation: cp.Generation, Count: n})
}

func (c *Connector) incremental(ctx context.Context, p *plan, cp Checkpoint, start int, sc connector.SyncContext) error {
	n := p.cfg.Count
	k := Changed(n, p.cfg.ChangeRatio)
	sc.SetTotal(k)
	for j := start; j < k; j++ {
		i := changedIndex(n, k, p.cfg.Seed, cp.Generation, j)
		if err := c.one(ctx, p, cp.Generation, i, true, sc); err != nil {
			return err
		}
		if (j+1)%p.every == 0 && j+1 < k {
			cp.Partial, cp.Next = true, j+1
			if err := sc.SaveCheckpoint(ctx, &cp); err != nil {
				return err
			}
		}
	}
	return sc.Complete(ctx, &Checkpoint{Generation: cp.Generation, Count: n})
}

func (c *Connector) one(ctx context.Context, p *plan, gen, i int, updated bool, sc connector.SyncContext) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.pace > 0 {
		t := time.NewTimer(p.pace)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	sc.IncrementScanned(1)
	v := Version(p.cfg.Count, Changed(p.cfg.Count, p.cfg.ChangeRatio), p.cfg.Seed, gen, i)
	doc := connector.Document{
		ExternalID: ID(i),
		Title:      fmt.Sprintf("Synthetic document %d", i),
		Metadata: connector.Metadata{
			MimeType: "text/plain",
			Size:     int64(p.cfg.Size),
			Path:     ID(i),
			Extra:    map[string]any{"version": v},
		},
		Permissions: connector.Permissions{Public: true},
	}
	if p.cfg.Size > 0 {
		id, err := sc.Content().Save(ctx, Content(p.cfg.Seed, i, v, p.cfg.Size), "text/plain")
		if err != nil {
			return fmt.Errorf("store content of %s: %w", doc.ExternalID, err)
		}
		doc.ContentID = id
	}
	if updated {
		return sc.EmitUpdated(ctx, doc)
	}
	return sc.Emit(ctx, doc)
}

// ID is the external id of document i.
func ID(i int) string { return fmt.Sprintf("doc-%06d", i) }

// Changed is how many documents an incremental sync changes.
func Changed(count int, ratio float64) int {
	k := int(math.Round(ratio * float64(count)))
	return min(max(k, 0), count)
}

// The changed window of generation g covers positions [(g-1)k, gk) of an
// endless walk around the ids, which starts at an offset taken from the seed.
func offset(count int, seed int64) int {
	if count == 0 {
		return 0
	}
	return int(uint64(seed) % uint64(count)) //nolint:gosec // count > 0 is validated; the seed's bits are only a starting point
}

func changedIndex(count, k int, seed int64, gen, j int) int {
	t := uint64(gen-1)*uint64(k) + uint64(j)                      //nolint:gosec // gen ≥ 1, k ≥ 0, j ≥ 0 by construction
	return int((t + uint64(offset(count, seed))) % uint64(count)) //nolint:gosec // offset < count, count > 0
}

// Version is how many of the generations 1..gen changed document i.
func Version(count, k int, seed int64, gen, i int) int {
	if count == 0 || k == 0 || gen <= 0 {
		return 0
	}
	pos := (i - offset(count, seed) + count) % count // first walk position of i
	total := gen * k                                 // positions walked so far
	if total <= pos {
		return 0
	}
	return (total-1-pos)/count + 1
}

var words = strings.Fields(`lorem ipsum dolor sit amet consectetur adipiscing elit sed do
eiusmod tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam quis
nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat river stream
index source sync checkpoint document catalog worker manager tributary delta`)

// Content returns size bytes of deterministic text for version v of
// document i.
func Content(seed int64, i, v, size int) string {
	// Deterministic test content, not security: a seeded PCG is the point.
	s1, s2 := uint64(seed), uint64(i)<<20|uint64(v) //nolint:gosec // bit patterns, not quantities
	r := rand.New(rand.NewPCG(s1, s2))              //nolint:gosec // see above
	var b strings.Builder
	b.Grow(size + 16)
	for b.Len() < size {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()[:size]
}
