package state

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/internal/testutil"
)

// unencodable cannot be marshalled: JSON has no functions.
type unencodable struct {
	F func() `json:"f"`
}

// A record that cannot be encoded is an error before anything reaches the
// bucket, and is none of the sentinels callers branch on.
func TestEncodeError(t *testing.T) {
	t.Parallel()
	n := testutil.StartNATS(t)
	ctx := t.Context()
	kv, err := n.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "encode_test"})
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	tb := newTable[unencodable](n.JS, kv)
	v := &unencodable{F: func() {}}
	ops := map[string]func() error{
		"Create": func() error { _, err := tb.Create(ctx, "k", v); return err },
		"Put":    func() error { _, err := tb.Put(ctx, "k", v); return err },
		"Update": func() error { _, err := tb.Update(ctx, "k", v, 1); return err },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			err := op()
			if err == nil || !strings.Contains(err.Error(), "encode") {
				t.Fatalf("err = %v, want an encode error", err)
			}
			var uerr *json.UnsupportedTypeError
			if !errors.As(err, &uerr) {
				t.Errorf("err = %v, want it to wrap the *json.UnsupportedTypeError", err)
			}
			for _, s := range []error{ErrNotFound, ErrExists, ErrConflict} {
				if errors.Is(err, s) {
					t.Errorf("encode error %v matches %v", err, s)
				}
			}
		})
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Values() != 0 {
		t.Errorf("bucket holds %d values after failed encodes, want 0", st.Values())
	}
}
