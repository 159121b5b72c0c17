package events

import (
	"fmt"
	"time"
)

// Document is one item of a source as a connector reports it.
type Document struct {
	// ExternalID identifies the document in its source; unique per source.
	ExternalID string `json:"external_id"`
	// Title is the display title.
	Title string `json:"title"`
	// ContentID references the document's content in the content store
	// (see ContentStorage in pkg/connector); empty for metadata-only documents.
	ContentID string `json:"content_id,omitempty"`
	// Metadata describes the document.
	Metadata Metadata `json:"metadata"`
	// Permissions says who may see the document.
	Permissions Permissions `json:"permissions"`
	// Attributes are custom, searchable key/value pairs.
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Metadata describes a document.
type Metadata struct {
	Title     string         `json:"title,omitempty"`
	Author    string         `json:"author,omitempty"`
	CreatedAt *time.Time     `json:"created_at,omitempty"`
	UpdatedAt *time.Time     `json:"updated_at,omitempty"`
	MimeType  string         `json:"mime_type,omitempty"`
	Size      int64          `json:"size,omitempty"`
	URL       string         `json:"url,omitempty"`
	Path      string         `json:"path,omitempty"`
	Extra     map[string]any `json:"extra,omitempty"`
}

// Permissions says who may see a document.
type Permissions struct {
	Public bool     `json:"public"`
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// MaxExternalIDLen bounds an external id.
const MaxExternalIDLen = 1024

// Validate checks the fields every consumer relies on.
func (d *Document) Validate() error {
	if err := validateExternalID(d.ExternalID); err != nil {
		return err
	}
	if d.Metadata.Size < 0 {
		return &FieldError{Field: "metadata.size", Msg: "must not be negative"}
	}
	return nil
}

func validateExternalID(id string) error {
	switch {
	case id == "":
		return &FieldError{Field: "external_id", Msg: "is required"}
	case len(id) > MaxExternalIDLen:
		return &FieldError{Field: "external_id", Msg: fmt.Sprintf("is longer than %d bytes", MaxExternalIDLen)}
	}
	return nil
}
