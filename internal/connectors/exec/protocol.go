package exec

import (
	"encoding/json"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// ProtocolVersion is the version of the exec protocol this package speaks,
// sent in every Request.
const ProtocolVersion = 1

// The request type, and the types of Message.
const (
	TypeSync       = "sync"
	TypeEmit       = "emit"
	TypeUpdate     = "update"
	TypeDelete     = "delete"
	TypeError      = "error"
	TypeScanned    = "scanned"
	TypeTotal      = "total"
	TypeCheckpoint = "checkpoint"
	TypeLog        = "log"
	TypeDone       = "done"
	TypeFail       = "fail"
)

// Request is the one line the worker writes to the child's stdin when it
// starts: the sync to run (connector.SyncRequest on the wire).
type Request struct {
	// Type is "sync".
	Type string `json:"type"`
	// Protocol is ProtocolVersion.
	Protocol int `json:"protocol"`
	// Connector is the connector's name, as declared.
	Connector string `json:"connector"`
	SourceID  string `json:"source_id"`
	RunID     string `json:"run_id"`
	// Mode is "full" or "incremental".
	Mode connector.SyncMode `json:"mode"`
	// Config is the source configuration, valid against the declared
	// schema; {} when the source has none.
	Config json.RawMessage `json:"config"`
	// Credentials are the source's credentials, or null.
	Credentials json.RawMessage `json:"credentials"`
	// Checkpoint is the last saved checkpoint, or null (see
	// connector.SyncRequest.Checkpoint).
	Checkpoint json.RawMessage `json:"checkpoint"`
	// Resumed is true when Checkpoint was saved by an earlier attempt of
	// this run: continue after it.
	Resumed bool `json:"resumed"`
	// Attempt counts the attempts of this run, from 1.
	Attempt int `json:"attempt"`
}

// Message is one line of the child's stdout. Type says which fields mean
// something; docs/exec-protocol.md describes each.
type Message struct {
	Type string `json:"type"`

	// emit, update: the document, and optionally its content inline, as
	// text (Content) or as base64 bytes (ContentBase64, with Extract to
	// store the text extracted from them instead).
	Document      *connector.Document `json:"document,omitempty"`
	Content       *string             `json:"content,omitempty"`
	ContentBase64 *string             `json:"content_base64,omitempty"`
	ContentType   string              `json:"content_type,omitempty"`
	Extract       bool                `json:"extract,omitempty"`

	// delete, error: the document's external id; error: the message.
	ExternalID string `json:"external_id,omitempty"`
	// error, fail: what went wrong.
	Error string `json:"error,omitempty"`

	// scanned: how many items to add (default 1).
	N *int64 `json:"n,omitempty"`
	// total: how many items the sync expects to scan in all.
	Total *int64 `json:"total,omitempty"`

	// checkpoint (required), done (optional): any JSON but null.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`

	// log: level (debug, info, warn, error; default info), message and
	// extra structured fields.
	Level   string         `json:"level,omitempty"`
	Message string         `json:"message,omitempty"`
	Fields  map[string]any `json:"fields,omitempty"`
}
