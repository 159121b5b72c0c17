package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tributary-sync/tributary/pkg/events"
)

// Config says how the buckets are created.
type Config struct {
	// Replicas is the replication factor of every bucket (1 for a single
	// server, 3 for a production cluster). Default 1.
	Replicas int
	// WorkerTTL is how long a worker's heartbeat record lives without being
	// refreshed. Default 15s.
	WorkerTTL time.Duration
	// LeaseTTL is how long a source lease lives without being refreshed: the
	// heartbeat timeout. Default 10s.
	LeaseTTL time.Duration
	// Storage is file (default) or memory.
	Storage jetstream.StorageType
}

func (c *Config) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.WorkerTTL <= 0 {
		c.WorkerTTL = 15 * time.Second
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
}

// Store holds the typed tables.
type Store struct {
	Sources     *Table[Source]
	Credentials *Table[Credentials]
	Runs        *Table[Run]
	Active      *Table[Active]
	Checkpoints *Table[Checkpoint]
	Connectors  *Table[ConnectorInfo]
	Workers     *Table[Worker]
	Leases      *Table[Lease]
	// Content maps a content digest to the one stored object holding it.
	Content *Table[ContentRef]
	// Catalog holds every document of every source, key CatalogKey.
	Catalog *Table[CatalogDoc]
}

// Open creates or updates every bucket and returns the store. The manager
// calls it at start.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg.setDefaults()
	mk := func(name, desc string, ttl time.Duration) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			History:     1,
			TTL:         ttl,
			Storage:     cfg.Storage,
			Replicas:    cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("state: bucket %s: %w", name, err)
		}
		if !directGets[name] {
			return leaderReads(ctx, js, name)
		}
		return kv, nil
	}
	return build(js, mk, cfg.WorkerTTL, cfg.LeaseTTL)
}

// directGets lists the buckets read with direct gets, which any replica
// may answer, possibly before it has a write the leader acknowledged. They
// are the high-volume ones whose readers cope with a stale read: the
// catalog (its one writer, the manager, writes with compare-and-set and
// retries) and the content index (a stale miss stores content twice). The
// others (sources, runs, checkpoints, leases, …) must read their own
// writes in a cluster — a source just created must be found by the sync
// that follows — so their streams do not allow direct gets and reads go to
// the stream leader (see nats-server#6557).
var directGets = map[string]bool{events.BucketCatalog: true, events.BucketContentIndex: true}

// leaderReads turns direct gets off for the bucket's stream (the KV
// default turns them on) and binds the bucket again, so that reads go to
// the leader. Clients that bind later (workers) read the setting from the
// stream.
func leaderReads(ctx context.Context, js jetstream.JetStream, name string) (jetstream.KeyValue, error) {
	st, err := js.Stream(ctx, "KV_"+name)
	if err != nil {
		return nil, fmt.Errorf("state: bucket %s: %w", name, err)
	}
	if cfg := st.CachedInfo().Config; cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("state: bucket %s: turn direct gets off: %w", name, err)
		}
	}
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("state: bucket %s: %w", name, err)
	}
	return kv, nil
}

// Bind returns the store over buckets that already exist (a worker binds to
// what the manager created). It fails with ErrNotFound when the manager has
// not created them yet.
func Bind(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	return build(js, func(name, _ string, _ time.Duration) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				return nil, fmt.Errorf("state: bucket %s: %w", name, ErrNotFound)
			}
			return nil, fmt.Errorf("state: bucket %s: %w", name, err)
		}
		return kv, nil
	}, 0, 0)
}

func build(js jetstream.JetStream, mk func(name, desc string, ttl time.Duration) (jetstream.KeyValue, error), workerTTL, leaseTTL time.Duration) (*Store, error) {
	var s Store
	var err error
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValue {
		if err != nil {
			return nil
		}
		var b jetstream.KeyValue
		b, err = mk(name, desc, ttl)
		return b
	}
	sources := kv(events.BucketSources, "Tributary sources", 0)
	creds := kv(events.BucketCredentials, "Tributary source credentials", 0)
	runs := kv(events.BucketRuns, "Tributary runs", 0)
	active := kv(events.BucketActive, "Tributary active run per source", 0)
	cps := kv(events.BucketCheckpoints, "Tributary checkpoints", 0)
	conns := kv(events.BucketConnectors, "Tributary connector manifests", 0)
	workers := kv(events.BucketWorkers, "Tributary live workers", workerTTL)
	leases := kv(events.BucketLeases, "Tributary source leases of executing runs", leaseTTL)
	content := kv(events.BucketContentIndex, "Tributary content by SHA-256: identical content is stored once", 0)
	catalog := kv(events.BucketCatalog, "Tributary document catalog: every document of every source", 0)
	if err != nil {
		return nil, err
	}
	s.Sources = newTable[Source](js, sources)
	s.Credentials = newTable[Credentials](js, creds)
	s.Runs = newTable[Run](js, runs)
	s.Active = newTable[Active](js, active)
	s.Checkpoints = newTable[Checkpoint](js, cps)
	s.Connectors = newTable[ConnectorInfo](js, conns)
	s.Workers = newTable[Worker](js, workers)
	s.Leases = newTable[Lease](js, leases)
	s.Content = newTable[ContentRef](js, content)
	s.Catalog = newTable[CatalogDoc](js, catalog)
	return &s, nil
}
