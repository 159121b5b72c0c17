package events

import (
	"fmt"
	"regexp"
	"strings"
)

// Stream, bucket and subject names. They are part of the protocol: changing
// one is a breaking change for connectors and indexers written against it.
const (
	// StreamSync is the work-queue stream holding sync requests, one subject
	// per connector type: tributary.sync.<connector>.
	StreamSync = "TRIBUTARY_SYNC"
	// StreamCancel holds cancel requests: tributary.cancel.<run_id>.
	StreamCancel = "TRIBUTARY_CANCEL"
	// StreamEvents holds everything workers report about runs:
	// tributary.events.<source_id>.<run_id>.<type>.
	StreamEvents = "TRIBUTARY_EVENTS"
	// StreamChanges is the change feed for indexers: one event per real
	// change of a document, tributary.changes.<source_id>.<created|updated|deleted>.
	StreamChanges = "TRIBUTARY_CHANGES"

	// SubjectSyncPrefix prefixes sync requests; the last token is the connector.
	SubjectSyncPrefix = "tributary.sync."
	// SubjectCancelPrefix prefixes cancel requests; the last token is the run id.
	SubjectCancelPrefix = "tributary.cancel."
	// SubjectEventsPrefix prefixes run events.
	SubjectEventsPrefix = "tributary.events."
	// SubjectChangesPrefix prefixes the change feed.
	SubjectChangesPrefix = "tributary.changes."

	// BucketSources holds source records, key <source_id>.
	BucketSources = "tributary_sources"
	// BucketCredentials holds source credentials apart from their sources, key <source_id>.
	BucketCredentials = "tributary_credentials"
	// BucketRuns holds run records, key <run_id>.
	BucketRuns = "tributary_runs"
	// BucketActive maps a source to its one active (queued or running) run, key <source_id>.
	BucketActive = "tributary_active"
	// BucketLeases holds the lease of each source whose run is executing, key
	// <source_id>; a lease expires when its worker stops refreshing it.
	BucketLeases = "tributary_leases"
	// BucketCheckpoints holds the latest checkpoint of each source, key <source_id>.
	BucketCheckpoints = "tributary_checkpoints"
	// BucketConnectors holds the latest manifest of each connector type, key <connector>.
	BucketConnectors = "tributary_connectors"
	// BucketWorkers holds one heartbeat record per live worker, key <worker_id>;
	// entries expire when a worker stops heartbeating.
	BucketWorkers = "tributary_workers"
	// BucketContent is the object store holding document content, name <content_id>.
	BucketContent = "tributary_content"
	// BucketCatalog holds one record per document of every source, key
	// <source_id>.<document key> (see state.CatalogKey).
	BucketCatalog = "tributary_catalog"
	// BucketContentIndex maps the SHA-256 of content (hex) to the object in
	// BucketContent holding it, so identical content is stored once.
	BucketContentIndex = "tributary_content_index"

	// HeaderMsgID is the JetStream de-duplication header; Tributary sets it to
	// the event id.
	HeaderMsgID = "Nats-Msg-Id"
)

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidToken reports whether s can be used as one subject token (a connector
// name, a source id, a run id): letters, digits, '_' and '-', 1 to 128 bytes.
func ValidToken(s string) bool { return tokenRE.MatchString(s) }

// SyncSubject is the subject a sync request for the connector is published on.
func SyncSubject(connector string) string { return SubjectSyncPrefix + connector }

// SyncSubjectsAll matches every sync request.
const SyncSubjectsAll = SubjectSyncPrefix + "*"

// CancelSubject is the subject a cancel request for the run is published on.
func CancelSubject(runID string) string { return SubjectCancelPrefix + runID }

// CancelSubjectsAll matches every cancel request.
const CancelSubjectsAll = SubjectCancelPrefix + "*"

// EventSubject is the subject a run event is published on.
func EventSubject(sourceID, runID string, t Type) string {
	return fmt.Sprintf("%s%s.%s.%s", SubjectEventsPrefix, sourceID, runID, t)
}

// EventSubjectsAll matches every run event.
const EventSubjectsAll = SubjectEventsPrefix + ">"

// RunEventSubjects matches every event of one run.
func RunEventSubjects(sourceID, runID string) string {
	return fmt.Sprintf("%s%s.%s.>", SubjectEventsPrefix, sourceID, runID)
}

// SourceEventSubjects matches every event of one source.
func SourceEventSubjects(sourceID string) string {
	return fmt.Sprintf("%s%s.>", SubjectEventsPrefix, sourceID)
}

// ChangeSubject is the subject of a change of a document of the source.
func ChangeSubject(sourceID string, t Type) string {
	return SubjectChangesPrefix + sourceID + "." + strings.TrimPrefix(string(t), "change.")
}

// ChangeSubjectsAll matches the whole change feed.
const ChangeSubjectsAll = SubjectChangesPrefix + ">"

// SourceChangeSubjects matches the changes of one source.
func SourceChangeSubjects(sourceID string) string { return SubjectChangesPrefix + sourceID + ".*" }
