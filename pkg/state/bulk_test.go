package state_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tributary-sync/tributary/pkg/state"
)

// Asynchronous writes are compare-and-set like their synchronous twins: a
// create over a record, an update or delete at a stale revision are
// refused with the same sentinels, and what Wait reports is stored.
func TestAsyncWrites(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	doc := func(title string) *state.CatalogDoc {
		return &state.CatalogDoc{SourceID: "src", ExternalID: "a", Title: title}
	}
	p, err := s.Catalog.CreateAsync("src.a", doc("one"))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if p, err = s.Catalog.CreateAsync("src.a", doc("again")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); !errors.Is(err, state.ErrExists) {
		t.Fatalf("create over a record: err = %v, want ErrExists", err)
	}
	if p, err = s.Catalog.UpdateAsync("src.a", doc("two"), rev); err != nil {
		t.Fatal(err)
	}
	rev2, err := p.Wait(ctx)
	if err != nil || rev2 <= rev {
		t.Fatalf("update: rev %d, err %v", rev2, err)
	}
	if p, err = s.Catalog.UpdateAsync("src.a", doc("stale"), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("update at a stale revision: err = %v, want ErrConflict", err)
	}
	if got, grev, err := s.Catalog.Get(ctx, "src.a"); err != nil || got.Title != "two" || grev != rev2 {
		t.Fatalf("Get = %+v at %d, %v; want the update at %d", got, grev, err, rev2)
	}
	if p, err = s.Catalog.DeleteAsync("src.a", rev); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("delete at a stale revision: err = %v, want ErrConflict", err)
	}
	if p, err = s.Catalog.DeleteAsync("src.a", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, _, err := s.Catalog.Get(ctx, "src.a"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get after delete: err = %v, want ErrNotFound", err)
	}
	// Over a deletion marker an asynchronous create is refused (the marker
	// is the key's last revision); Create writes over it.
	if p, err = s.Catalog.CreateAsync("src.a", doc("three")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); !errors.Is(err, state.ErrExists) {
		t.Fatalf("async create over a deletion: err = %v, want ErrExists", err)
	}
	if _, err := s.Catalog.Create(ctx, "src.a", doc("three")); err != nil {
		t.Fatalf("create over a deletion: %v", err)
	}
	if _, err := s.Catalog.UpdateAsync("src.a", doc("x"), 0); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("update without a revision: err = %v, want ErrConflict", err)
	}
}

// GetMany reads every key that holds a record, deleted ones and missing
// ones left out, across more keys than one request answers.
func TestGetMany(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t, state.Config{})
	ctx := t.Context()
	const n = 1500
	var keys []string
	var pend []*state.Pending
	for i := range n {
		k := fmt.Sprintf("src.%04d", i)
		keys = append(keys, k)
		if i%3 == 2 {
			continue // never written
		}
		p, err := s.Catalog.CreateAsync(k, &state.CatalogDoc{ExternalID: k})
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, p)
	}
	revs := map[string]uint64{}
	for _, p := range pend {
		if _, err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < n; i += 3 {
		if err := s.Catalog.Delete(ctx, keys[i], 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i += 3 {
		_, rev, err := s.Catalog.Get(ctx, keys[i])
		if err != nil {
			t.Fatal(err)
		}
		revs[keys[i]] = rev
	}
	got := map[string]uint64{}
	if err := s.Catalog.GetMany(ctx, keys, func(key string, v *state.CatalogDoc, rev uint64) {
		if v.ExternalID != key {
			t.Errorf("%s holds %q", key, v.ExternalID)
		}
		got[key] = rev
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(revs) {
		t.Errorf("GetMany found %d records, want %d", len(got), len(revs))
	}
	for k, rev := range revs {
		if got[k] != rev {
			t.Errorf("%s: revision %d, want %d", k, got[k], rev)
		}
	}
	// None of the keys holds anything.
	if err := s.Catalog.GetMany(ctx, []string{"none.1", "none.2"}, func(key string, _ *state.CatalogDoc, _ uint64) {
		t.Errorf("GetMany returned %s", key)
	}); err != nil {
		t.Fatal(err)
	}
	// A bucket read from its leader is read one key at a time.
	if _, err := s.Sources.Create(ctx, "s1", &state.Source{ID: "s1", Name: "one"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := s.Sources.GetMany(ctx, []string{"s0", "s1"}, func(_ string, v *state.Source, _ uint64) {
		names = append(names, v.Name)
	}); err != nil || len(names) != 1 || names[0] != "one" {
		t.Fatalf("Sources.GetMany = %v, %v", names, err)
	}
}
