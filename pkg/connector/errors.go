package connector

import "errors"

// ErrRunFinished is returned by SyncContext methods called after Complete or
// Fail, or after the sync returned.
var ErrRunFinished = errors.New("connector: run already finished")
