package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// exception is the body of every error answer: the exception schema of
// OGC API – Features (a code and a description).
type exception struct {
	Code        string `json:"code"`
	Description string `json:"description,omitempty"`
}

// protocolError is an error of HTTP itself, which the domain has no code
// for: a method or a media type the endpoint does not take.
type protocolError struct {
	status  int
	message string
}

func (e *protocolError) Error() string { return e.message }

func errMethod(method, allow string) error {
	return &protocolError{status: http.StatusMethodNotAllowed, message: fmt.Sprintf("method %s is not allowed here; allowed: %s", method, allow)}
}

func errMediaType(got, want string) error {
	return &protocolError{status: http.StatusUnsupportedMediaType, message: fmt.Sprintf("Content-Type %q is not accepted here; send %s", got, want)}
}

func errNotFoundPath(path string) error {
	return geo.Errorf(geo.NotFound, "there is no resource at %s; the landing page / links to every resource", path)
}

// retryAfterSeconds is the Retry-After of 503 answers whose condition is
// expected to pass (a busy instance, a database that does not answer).
const retryAfterSeconds = "1"

// statusCanceled is what the access log and metrics record for a request
// whose client went away; nothing is sent.
const statusCanceled = core.StatusClientClosed

// classify returns the status, the exception code and the message the
// client sees for err, and whether err must be logged in full. Errors of
// HTTP itself and of bearer tokens are this edge's own; everything else
// goes by core's one table.
func classify(err error) (status int, code, message string, internal bool) {
	var pe *protocolError
	switch {
	case errors.As(err, &pe):
		return pe.status, http.StatusText(pe.status), pe.message, false
	case errors.Is(err, geo.ErrNoToken):
		return http.StatusUnauthorized, "Unauthorized", `this request needs a token: send the header "Authorization: Bearer <token>"`, false
	case errors.Is(err, geo.ErrInvalidToken):
		return http.StatusUnauthorized, "Unauthorized", "the token is not valid", false
	case errors.Is(err, geo.ErrReadOnlyToken):
		return http.StatusForbidden, "Forbidden", "this request needs a write token; this token may only read", false
	}
	o, _ := core.Classify(err)
	code = http.StatusText(o.HTTP)
	switch o.HTTP {
	case http.StatusBadRequest:
		code = "InvalidParameterValue" // OGC's name for a bad parameter
	case statusCanceled:
		code = "Canceled"
	}
	return o.HTTP, code, o.Message, o.Internal
}

// errorMessage is the message the client sees for err.
func errorMessage(err error) string {
	_, _, msg, _ := classify(err)
	return msg
}

// writeError answers with err's status and the exception body, unless the
// handler had started its answer (a stream cut short) or the client left.
func (s *Server) writeError(w *statusRecorder, r *http.Request, route string, err error) {
	status, code, message, internal := classify(err)
	if internal {
		s.deps.Logger.ErrorContext(r.Context(), "internal error", "route", route, "error", err.Error())
	}
	if w.status != 0 {
		return // the answer has begun; the client sees it cut short
	}
	if status == statusCanceled {
		w.status = statusCanceled
		return
	}
	if status == http.StatusUnauthorized {
		challenge := `Bearer realm="search"`
		if errors.Is(err, geo.ErrInvalidToken) {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if o, _ := core.Classify(err); o.RetryAfter {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(exception{Code: code, Description: message})
}
