// Package core is what the gRPC and HTTP edges share below them: the rules
// that must be the same whichever transport a request came by. The edges
// decode a request, call the domain, and encode the answer; how an error
// reaches the client is decided here, once, for both.
package core

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/geosearch/search/internal/geo"
)

// Status is how one domain error code reaches a client over each edge.
type Status struct {
	// GRPC is the gRPC status code.
	GRPC codes.Code
	// HTTP is the HTTP status.
	HTTP int
	// RetryAfter makes HTTP answers carry a Retry-After header: the
	// condition is expected to pass (gRPC clients retry on the code).
	RetryAfter bool
}

// statuses is the one table from domain error codes to transport codes.
// A code missing here reaches clients as Internal / 500 and is logged as a
// bug: TestEveryDomainCodeHasBothStatuses walks geo's codes and fails for
// a missing row.
var statuses = map[geo.Code]Status{
	geo.Internal:    {codes.Internal, http.StatusInternalServerError, false},
	geo.Invalid:     {codes.InvalidArgument, http.StatusBadRequest, false},
	geo.NotFound:    {codes.NotFound, http.StatusNotFound, false},
	geo.Conflict:    {codes.AlreadyExists, http.StatusConflict, false},
	geo.Unavailable: {codes.Unavailable, http.StatusServiceUnavailable, true},
	geo.Timeout:     {codes.DeadlineExceeded, http.StatusGatewayTimeout, false},
	geo.TooLarge:    {codes.ResourceExhausted, http.StatusRequestEntityTooLarge, false},
	geo.Forbidden:   {codes.PermissionDenied, http.StatusForbidden, false},
	// Aborted work was undone whole and may be retried as it was: HTTP has
	// no closer status than 409 (google.rpc.Code's own mapping).
	geo.Aborted: {codes.Aborted, http.StatusConflict, false},
	// Busy is the server at its cap for this kind of work, not the caller
	// asking too much: 503 with Retry-After, not 429.
	geo.Busy: {codes.ResourceExhausted, http.StatusServiceUnavailable, true},
	// Misconfigured is the server's setup, not the caller's fault and no
	// bug either: another instance may be set up right.
	geo.Misconfigured: {codes.FailedPrecondition, http.StatusServiceUnavailable, false},
}

// StatusOf returns c's row of the table; a code without one is Internal.
func StatusOf(c geo.Code) Status {
	if s, ok := statuses[c]; ok {
		return s
	}
	return statuses[geo.Internal]
}

// StatusClientClosed is what HTTP access logs and metrics record for a
// request whose client went away (nginx's 499); nothing is sent.
const StatusClientClosed = 499

// Outcome is how an error ends a request on either edge.
type Outcome struct {
	Status
	// Message is what the client sees: the domain error's user message, or
	// a message that reveals nothing of the cause.
	Message string
	// Internal reports that the error is a bug or an unexpected failure:
	// the edge logs it in full.
	Internal bool
}

// Classify returns how err reaches the client. Domain errors keep their
// code and user message; a cancelled request is Canceled (499 over HTTP),
// a passed deadline DeadlineExceeded / 504. ok is false for any other
// error, which the edge may know better (a gRPC status from the transport,
// an HTTP protocol error); otherwise the Internal outcome it returns
// stands.
func Classify(err error) (o Outcome, ok bool) {
	var de *geo.Error
	switch {
	case errors.As(err, &de):
		st := StatusOf(de.Code)
		return Outcome{Status: st, Message: de.Message, Internal: st.GRPC == codes.Internal}, true
	case errors.Is(err, context.Canceled):
		return Outcome{Status: Status{GRPC: codes.Canceled, HTTP: StatusClientClosed}, Message: "the request was cancelled"}, true
	case errors.Is(err, context.DeadlineExceeded):
		return Outcome{Status: StatusOf(geo.Timeout), Message: "the request's deadline passed"}, true
	}
	return Outcome{Status: StatusOf(geo.Internal), Message: "internal error", Internal: true}, false
}
