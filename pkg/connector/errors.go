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
