package event

import "errors"

// ErrInvalid is wrapped by every *FieldError: the event is malformed.
var ErrInvalid = errors.New("invalid event")

// FieldError is a malformed event: Field names the offending field as a
// path (e.g. "envelope.signatures[1].sig", "statement.subject[0].digest").
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes a FieldError match ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: sprintf(format, args...)}
}
