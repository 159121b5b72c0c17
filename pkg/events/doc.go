// Package events is Tributary's wire contract: the NATS subjects, JetStream
// streams and KV buckets the manager and the workers share, and the typed
// events they exchange.
//
// Every message on a Tributary subject is one JSON [Envelope]:
//
//	{"id":"01J…","type":"document.upserted","source_id":"01J…","run_id":"01J…",
//	 "seq":42,"time":"2026-11-23T10:00:00Z","data":{…}}
//
// The payload in "data" depends on "type"; [Decode] checks the envelope and
// the payload and returns an error that says which field is wrong. Every
// event is published with the Nats-Msg-Id header set to its id, so a publish
// that is retried is stored once.
//
// A connector written in another language, or an indexer, can take part by
// following docs/protocol.md, which documents the same subjects and shapes.
package events
