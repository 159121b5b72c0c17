package events

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every decoding and validation error, so callers can
// tell a bad message from a transport failure with errors.Is.
var ErrInvalid = errors.New("invalid event")

// FieldError says which field of an event is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s %s", e.Field, e.Msg) }

// Is makes every FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }
