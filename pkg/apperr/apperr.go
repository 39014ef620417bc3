// Package apperr holds the error vocabulary shared by every domain package:
// a coded error type that the HTTP layer maps to the SPEC's envelope, and the
// validation error that names the offending field.
package apperr

import (
	"errors"
	"fmt"
)

// Error is a domain error with a stable code from the SPEC. Domain packages
// declare their sentinels as *Error values so errors.Is works on them.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// New declares a sentinel.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Shared sentinels that no single domain owns.
var (
	ErrUnauthenticated = New(CodeUnauthenticated, "authentication required")
	ErrForbidden       = New(CodeForbidden, "not allowed")
	ErrRateLimited     = New(CodeRateLimited, "too many requests")
	ErrUnavailable     = New(CodeUnavailable, "a dependency is unavailable, try again")
	// ErrOverloaded sheds load: answered 503 with Retry-After.
	ErrOverloaded = New(CodeOverloaded, "the server is at capacity, retry shortly")
)

// ValidationError names the field that broke a rule.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Message) }

// Invalid builds a ValidationError.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps an infrastructure failure so it maps to 503 while the
// cause stays in the logs.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w", op, errors.Join(ErrUnavailable, err))
}
