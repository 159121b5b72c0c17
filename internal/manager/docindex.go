package manager

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"

	"github.com/tributary-sync/tributary/pkg/state"
)

// docIndex is the manager's in-memory index of the catalog, per source,
// behind the documents list: every document's external id (the order of
// the list), its lower-cased title and path (what search matches) and its
// status, so a page of 100,000 documents is found without reading the
// catalog. A source's index is loaded from the catalog on its first list
// and kept current by every catalog write this manager makes (the manager
// holding the lock is the catalog's only writer).
type docIndex struct {
	mu      sync.Mutex
	sources map[string]*sourceIndex
}

type docEntry struct {
	ext string
	// search is what a search matches besides ext (when matchExt): the
	// lower-cased title and path, leaving out what ext or each other
	// already hold, to keep the entry small.
	search   string
	rev      uint64
	status   uint8
	matchExt bool
}

func lessEntry(a, b docEntry) bool { return a.ext < b.ext }

var statusCodes = []state.DocStatus{"", state.DocPending, state.DocIndexed, state.DocFailed}

func statusCode(s state.DocStatus) uint8 {
	for i, v := range statusCodes {
		if v == s {
			return uint8(i)
		}
	}
	return 0
}

func entryOf(doc *state.CatalogDoc, rev uint64) docEntry {
	e := docEntry{ext: doc.ExternalID, rev: rev, status: statusCode(doc.Status)}
	title, path := strings.ToLower(doc.Title), strings.ToLower(doc.Metadata.Path)
	if path != "" && path == doc.ExternalID {
		// The path is the external id (already lower-case): match that.
		e.matchExt, path = true, ""
	}
	switch {
	case e.matchExt && strings.Contains(doc.ExternalID, title):
		// The title is part of the path (a file's name): nothing more.
	case path == "" || strings.Contains(title, path):
		e.search = title
	case title == "" || strings.Contains(path, title):
		e.search = path
	default:
		e.search = title + "\x00" + path
	}
	return e
}

// sourceIndex is one source's index. While it loads, writes queue in
// pending and are applied after the catalog pass, so none is lost.
type sourceIndex struct {
	ready chan struct{}
	err   error
	// used is when the index last served a list (unix nanoseconds).
	used atomic.Int64

	mu      sync.RWMutex
	tree    *btree.BTreeG[docEntry]
	loading bool
	pending []indexOp
}

type indexOp struct {
	del bool
	e   docEntry
}

func newDocIndex() *docIndex {
	return &docIndex{sources: map[string]*sourceIndex{}}
}

// put records a catalog write (the record at revision rev).
func (x *docIndex) put(sourceID string, doc *state.CatalogDoc, rev uint64) {
	x.apply(sourceID, indexOp{e: entryOf(doc, rev)})
}

// remove records a catalog deletion of the record at revision rev.
func (x *docIndex) remove(sourceID, externalID string, rev uint64) {
	x.apply(sourceID, indexOp{del: true, e: docEntry{ext: externalID, rev: rev}})
}

func (x *docIndex) apply(sourceID string, op indexOp) {
	x.mu.Lock()
	si := x.sources[sourceID]
	x.mu.Unlock()
	if si == nil {
		return // not loaded: the catalog pass will see the write
	}
	si.mu.Lock()
	defer si.mu.Unlock()
	if si.loading {
		si.pending = append(si.pending, op)
		return
	}
	si.applyLocked(op)
}

// applyLocked applies op unless the index already holds a later revision
// (two writers of one key may report out of order).
func (si *sourceIndex) applyLocked(op indexOp) {
	cur, ok := si.tree.Get(docEntry{ext: op.e.ext})
	if op.del {
		if ok && cur.rev <= op.e.rev {
			si.tree.Delete(cur)
		}
		return
	}
	if ok && cur.rev > op.e.rev {
		return
	}
	si.tree.ReplaceOrInsert(op.e)
}

// drop forgets a source's index (the source was deleted).
func (x *docIndex) drop(sourceID string) {
	x.mu.Lock()
	delete(x.sources, sourceID)
	x.mu.Unlock()
}

// evictIdle forgets the indexes no list used for idle: a source nobody
// browses costs no memory; its next list loads it again.
func (x *docIndex) evictIdle(idle time.Duration) int {
	cutoff := time.Now().Add(-idle).UnixNano()
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for id, si := range x.sources {
		select {
		case <-si.ready:
		default:
			continue // loading
		}
		if si.used.Load() < cutoff {
			delete(x.sources, id)
			n++
		}
	}
	return n
}

// get returns the source's index, loading it with load (on its own
// context, so one impatient caller does not fail the load for others).
func (x *docIndex) get(ctx context.Context, sourceID string, load func(fn func(*state.CatalogDoc, uint64)) error) (*sourceIndex, error) {
	x.mu.Lock()
	si := x.sources[sourceID]
	if si == nil {
		si = &sourceIndex{ready: make(chan struct{}), tree: btree.NewG(32, lessEntry), loading: true}
		x.sources[sourceID] = si
		go x.load(sourceID, si, load)
	}
	x.mu.Unlock()
	si.used.Store(time.Now().UnixNano())
	select {
	case <-si.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if si.err != nil {
		return nil, si.err
	}
	return si, nil
}

func (x *docIndex) load(sourceID string, si *sourceIndex, load func(fn func(*state.CatalogDoc, uint64)) error) {
	tree := btree.NewG(32, lessEntry)
	err := load(func(doc *state.CatalogDoc, rev uint64) {
		tree.ReplaceOrInsert(entryOf(doc, rev))
	})
	if err != nil {
		x.mu.Lock()
		if x.sources[sourceID] == si {
			delete(x.sources, sourceID) // the next list tries again
		}
		x.mu.Unlock()
		si.err = err
		close(si.ready)
		return
	}
	si.mu.Lock()
	si.tree = tree
	for _, op := range si.pending {
		si.applyLocked(op)
	}
	si.pending, si.loading = nil, false
	si.mu.Unlock()
	close(si.ready)
}

// query returns how many documents match and the external ids of the
// requested page, in external-id order. An empty status or search matches
// everything; search matches title or path, case-insensitively.
func (si *sourceIndex) query(status state.DocStatus, search string, page, size int) (int, []string) {
	want := uint8(0)
	if status != "" {
		want = statusCode(status)
	}
	search = strings.ToLower(search)
	skip := math.MaxInt
	if page-1 <= math.MaxInt/size {
		skip = (page - 1) * size
	}
	total := 0
	var ids []string
	si.mu.RLock()
	defer si.mu.RUnlock()
	si.tree.Ascend(func(e docEntry) bool {
		if want != 0 && e.status != want {
			return true
		}
		if search != "" && !strings.Contains(e.search, search) && (!e.matchExt || !strings.Contains(e.ext, search)) {
			return true
		}
		if total >= skip && len(ids) < size {
			ids = append(ids, e.ext)
		}
		total++
		return true
	})
	return total, ids
}
