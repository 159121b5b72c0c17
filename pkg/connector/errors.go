package connector

import "errors"

// ErrRunFinished is returned by SyncContext methods called after Complete or
// Fail, or after the sync returned.
var ErrRunFinished = errors.New("connector: run already finished")

// ErrStopRequested is returned by SyncContext.SaveCheckpoint, after the
// checkpoint is stored, when the worker is shutting down. Return from Sync
// (with this error or nil): the run is handed to another worker, which
// resumes it from that checkpoint.
var ErrStopRequested = errors.New("connector: worker is stopping; checkpoint saved, return to hand the run over")

// ErrUnsupportedContent is wrapped by ContentStorage.ExtractText and
// ExtractAndStore for a type no extractor knows: store the bytes with
// SaveBinary instead, or report the document with EmitError.
var ErrUnsupportedContent = errors.New("connector: no text extractor for this content type")

// ErrContentTooLarge is wrapped by ContentStorage.ExtractText and
// ExtractAndStore for input over the extraction limit (50 MiB).
var ErrContentTooLarge = errors.New("connector: content too large to extract")

// ErrMalformedContent is wrapped by ContentStorage.ExtractText and
// ExtractAndStore for bytes that do not parse as their type (a broken PDF).
var ErrMalformedContent = errors.New("connector: content does not parse as its type")
