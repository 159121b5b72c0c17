package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/connector"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

func newContentStore(t *testing.T) *contentStore {
	t.Helper()
	n := testutil.StartNATS(t)
	ctx := context.Background()
	if err := bus.EnsureStreams(ctx, n.JS, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(ctx, n.JS, state.Config{})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := n.JS.ObjectStore(ctx, events.BucketContent)
	if err != nil {
		t.Fatal(err)
	}
	return &contentStore{store: content.New(n.JS, obs, st.Content)}
}

// Identical content is stored once and keeps its id; each object carries
// its SHA-256.
func TestContentStoredOnce(t *testing.T) {
	t.Parallel()
	c := newContentStore(t)
	ctx := context.Background()
	a1, err := c.Save(ctx, "alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := c.Save(ctx, "alpha", "text/plain")
	a3, _ := c.SaveBinary(ctx, []byte("alpha"), "application/octet-stream")
	b, _ := c.Save(ctx, "beta", "")
	if a1 != a2 || a1 != a3 || a1 == b {
		t.Fatalf("ids: %s %s %s, beta %s", a1, a2, a3, b)
	}
	info, err := c.store.Objects().GetInfo(ctx, a1)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("alpha"))
	if got := info.Headers.Get(HeaderContentSHA256); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("digest header %q", got)
	}
	r, err := c.store.Objects().Get(ctx, a1)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := io.ReadAll(r); string(data) != "alpha" {
		t.Fatalf("object holds %q", data)
	}

	// Writers racing with the same bytes all get one id, and one object stays.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], _ = c.Save(ctx, "gamma", "")
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("racing saves: %v", ids)
		}
	}
	objs, err := c.store.Objects().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("%d objects stored, want 3 (alpha, beta, gamma)", len(objs))
	}
}

func TestExtractAndStore(t *testing.T) {
	t.Parallel()
	c := newContentStore(t)
	ctx := context.Background()
	id, ex, err := c.ExtractAndStore(ctx, []byte("<p>Hello <b>there</b></p><script>no()</script>"), "text/html", "")
	if err != nil {
		t.Fatal(err)
	}
	if ex.Text != "Hello there" || ex.MimeType != "text/html" || ex.Truncated {
		t.Fatalf("extracted %+v", ex)
	}
	r, err := c.store.Objects().Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := io.ReadAll(r); string(data) != "Hello there" {
		t.Fatalf("stored %q", data)
	}
	if _, _, err := c.ExtractAndStore(ctx, []byte{0x89, 'P', 'N', 'G'}, "image/png", "x.png"); !errors.Is(err, connector.ErrUnsupportedContent) {
		t.Fatalf("png: %v", err)
	}
	if _, err := c.ExtractText(ctx, []byte(`{"a":`), "application/json", ""); !errors.Is(err, connector.ErrMalformedContent) {
		t.Fatalf("broken json: %v", err)
	}
}
