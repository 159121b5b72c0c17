package content_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/tributary-sync/tributary/internal/bus"
	"github.com/tributary-sync/tributary/internal/content"
	"github.com/tributary-sync/tributary/internal/testutil"
	"github.com/tributary-sync/tributary/pkg/events"
	"github.com/tributary-sync/tributary/pkg/state"
)

// Content of one chunk is written without ObjectStore.Put, in its format:
// the object store reads it back (checking its digest) like any other, as
// it does larger content, which goes through Put.
func TestPutReadsBack(t *testing.T) {
	t.Parallel()
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
	s := content.New(n.JS, obs, st.Content)
	for _, size := range []int{0, 1, 1000, 128 * 1024, 128*1024 + 1, 300_000} {
		data := bytes.Repeat([]byte{byte('a' + size%26)}, size)
		id, err := s.Put(ctx, data, "text/plain")
		if err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		again, err := s.Put(ctx, data, "text/plain")
		if err != nil || again != id {
			t.Fatalf("put %d bytes again: %s, %v; want %s", size, again, err, id)
		}
		obj, err := s.Open(ctx, id)
		if err != nil {
			t.Fatalf("open %d bytes: %v", size, err)
		}
		got, err := io.ReadAll(obj)
		_ = obj.Close()
		if err != nil {
			t.Fatalf("read %d bytes: %v", size, err)
		}
		if !bytes.Equal(got, data) || obj.Size != uint64(size) || obj.ContentType != "text/plain" {
			t.Fatalf("%d bytes read back as %d (size %d, type %q)", size, len(got), obj.Size, obj.ContentType)
		}
		info, err := obs.GetInfo(ctx, id)
		if err != nil || info.Headers.Get(content.HeaderContentSHA256) != content.Digest(data) {
			t.Fatalf("info of %d bytes: %+v, %v", size, info, err)
		}
	}
}
