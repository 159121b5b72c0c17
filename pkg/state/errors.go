package state

import "errors"

var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("state: not found")
	// ErrExists is returned by Create when the record already exists.
	ErrExists = errors.New("state: already exists")
	// ErrConflict is returned by Update when the record changed since it was
	// read (its revision moved).
	ErrConflict = errors.New("state: revision conflict")
)
