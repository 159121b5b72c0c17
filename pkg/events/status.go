package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// SubjectStatusPrefix prefixes document status reports; the last token is
// the source id. Reports are NATS requests the manager answers once the
// status is stored.
const SubjectStatusPrefix = "tributary.status."

// StatusSubject is the subject an indexer reports document statuses of the
// source on.
func StatusSubject(sourceID string) string { return SubjectStatusPrefix + sourceID }

// StatusSubjectsAll matches every status report.
const StatusSubjectsAll = SubjectStatusPrefix + "*"

// Document statuses an indexer reports.
const (
	DocStatusPending = "pending"
	DocStatusIndexed = "indexed"
	DocStatusFailed  = "failed"
)

// StatusReport is what an indexer made of one document: the request body
// on StatusSubject. Name the document by DocID (the API's id) or by
// ExternalID.
type StatusReport struct {
	DocID      string `json:"doc_id,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
	// Status is pending, indexed or failed.
	Status string `json:"status"`
	// Error says why indexing failed (status failed only).
	Error string `json:"error,omitempty"`
	// Fingerprint, when given, is the change's fingerprint: the version
	// the report is about. A report on a version the document has since
	// left is refused (code stale) and changes nothing.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// StatusReply is the manager's answer to a StatusReport: OK, or the error
// in the API's domain-error shape.
type StatusReply struct {
	OK    bool         `json:"ok"`
	Error *StatusError `json:"error,omitempty"`
}

// StatusError is a refused report: code not_found, invalid, stale or
// unavailable.
type StatusError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *StatusError) Error() string { return e.Code + ": " + e.Message }

// ReportStatus sends one status report and waits for the manager to store
// it. A refused report is a *StatusError; no manager answering is
// nats.ErrNoResponders or a timeout from ctx.
func ReportStatus(ctx context.Context, nc *nats.Conn, sourceID string, r StatusReport) error {
	if !ValidToken(sourceID) {
		return fmt.Errorf("%w: source id %q", ErrInvalid, sourceID)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("status report: %w", err)
	}
	msg, err := nc.RequestWithContext(ctx, StatusSubject(sourceID), b)
	if err != nil {
		return fmt.Errorf("status report: %w", err)
	}
	var rep StatusReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fmt.Errorf("status report: bad reply: %w", err)
	}
	if rep.Error != nil {
		return rep.Error
	}
	if !rep.OK {
		return errors.New("status report: reply is neither ok nor an error")
	}
	return nil
}
