package geo

import (
	"errors"
	"fmt"
)

// Code classifies an Error. The transport maps each code to its own status in
// one place.
type Code int

// The error codes. The zero Code is Internal so that an unclassified error is
// never mistaken for the caller's fault.
const (
	Internal      Code = iota // a bug or an unexpected failure; details are logged, not shown
	Invalid                   // the request is malformed; the message says why
	NotFound                  // the thing asked for does not exist
	Conflict                  // the request contradicts the stored state
	Unavailable               // a dependency (the database) does not answer; retry later
	Timeout                   // the work took longer than allowed
	TooLarge                  // the request exceeds a size limit
	Forbidden                 // the caller may not do this
	Aborted                   // the work collided with concurrent work or a transient fault and was undone whole; retry it
	Busy                      // the server has as much of this kind of work in progress as it allows; retry later
	Misconfigured             // the server's own setup does not allow this (e.g. its database role may not write); not the caller's fault
)

func (c Code) String() string {
	switch c {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Unavailable:
		return "unavailable"
	case Timeout:
		return "timeout"
	case TooLarge:
		return "too large"
	case Forbidden:
		return "forbidden"
	case Aborted:
		return "aborted"
	case Busy:
		return "busy"
	case Misconfigured:
		return "misconfigured"
	default:
		return "internal"
	}
}

// Error is the domain's error: a code, a message meant for the user, and the
// underlying cause, which is logged but never shown to clients.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Errorf returns an *Error with a formatted user message and no cause.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and user message around cause.
func Wrap(code Code, cause error, message string) *Error {
	return &Error{Code: code, Message: message, Err: cause}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the first *Error in err's chain, or Internal.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// ErrorMessage returns the user message of the first *Error in err's chain, or
// a generic message that reveals nothing of the cause.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
