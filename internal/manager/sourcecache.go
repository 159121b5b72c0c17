package manager

import (
	"math"
	"slices"
	"sync"

	"github.com/tributary-sync/tributary/pkg/state"
)

// sourceCache is the manager's in-memory copy of every source record,
// behind the sources list: listing 10,000 sources is paging a sorted slice
// rather than reading 10,000 records. The scheduler's watch of the sources
// bucket keeps it current (startScheduler), and so does every source write
// this manager makes, as soon as it is stored, so a source created, changed
// or deleted through the API shows in the very next list. Each record is
// kept with its revision and a write older than what the cache holds is
// ignored: the watcher and the writers may report out of order.
type sourceCache struct {
	mu   sync.RWMutex
	byID map[string]cachedSource
	ids  []string // ids of the live sources, sorted (ULIDs: oldest first)
}

type cachedSource struct {
	src *state.Source // nil: deleted by this manager, the watcher not there yet
	rev uint64
}

// deletedRev marks a source this manager deleted: ids are never reused,
// so no later write of it can be newer.
const deletedRev = math.MaxUint64

func newSourceCache() *sourceCache {
	return &sourceCache{byID: map[string]cachedSource{}}
}

// put records the record of source id at revision rev (a copy of it: the
// writer's may be changed after).
func (c *sourceCache) put(id string, src *state.Source, rev uint64) {
	cp := *src
	src = &cp
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.byID[id]
	if ok && cur.rev >= rev {
		return
	}
	c.byID[id] = cachedSource{src: src, rev: rev}
	if !ok || cur.src == nil {
		if i, found := slices.BinarySearch(c.ids, id); !found {
			c.ids = slices.Insert(c.ids, i, id)
		}
	}
}

// deleted records that this manager deleted the source.
func (c *sourceCache) deleted(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byID[id]; !ok {
		return // the watcher got there first
	}
	c.byID[id] = cachedSource{rev: deletedRev}
	c.removeID(id)
}

// watched records a deletion the watcher reported.
func (c *sourceCache) watchedDelete(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byID, id)
	c.removeID(id)
}

func (c *sourceCache) removeID(id string) {
	if i, found := slices.BinarySearch(c.ids, id); found {
		c.ids = slices.Delete(c.ids, i, i+1)
	}
}

// page returns how many sources there are and the requested page of them,
// oldest first (size 0: all of them). The records are shared: callers must
// not change them.
func (c *sourceCache) page(page, size int) (int, []*state.Source) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	total := len(c.ids)
	start, end := 0, total
	if size > 0 {
		if page-1 > total/size { // also keeps (page-1)*size from overflowing
			return total, nil
		}
		start = min((page-1)*size, total)
		end = min(start+size, total)
	}
	out := make([]*state.Source, 0, end-start)
	for _, id := range c.ids[start:end] {
		out = append(out, c.byID[id].src)
	}
	return total, out
}
