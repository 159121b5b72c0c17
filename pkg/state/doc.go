// Package state keeps Tributary's durable state in JetStream KV buckets as
// typed records: sources, their credentials, runs, the one active run of each
// source, checkpoints, connector manifests and worker heartbeats.
//
// Every record is JSON. Writes that can race go through compare-and-set on the
// KV revision ([Table.Update], [Table.Mutate]); nothing is last-writer-wins
// except records that have a single writer by design (a worker's own
// heartbeat, a connector's manifest).
//
// Nothing outside this package reads or writes those buckets by key string.
package state
