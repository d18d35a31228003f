package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/geosearch/search/internal/geo"
)

// domainCodes walks geo's codes: every one past Internal has a name of its
// own (geo.Code.String), the first without one ends the walk.
func domainCodes(t *testing.T) []geo.Code {
	t.Helper()
	var out []geo.Code
	for c := geo.Code(1); c.String() != geo.Internal.String(); c++ {
		out = append(out, c)
	}
	if len(out) < 10 {
		t.Fatalf("walked %d domain codes, want at least 10: does geo.Code.String name every code?", len(out))
	}
	return out
}

// TestEveryDomainCodeHasBothStatuses fails when a domain code is added
// without its row in the table, or with a row that leaves either edge
// answering as for a bug.
func TestEveryDomainCodeHasBothStatuses(t *testing.T) {
	t.Parallel()
	for _, c := range domainCodes(t) {
		st, ok := statuses[c]
		switch {
		case !ok:
			t.Errorf("domain code %q has no row in statuses: it reaches clients as Internal / 500", c)
		case st.GRPC == codes.Internal || st.GRPC == codes.Unknown || st.GRPC == codes.OK:
			t.Errorf("domain code %q maps to gRPC %s", c, st.GRPC)
		case st.HTTP < 400 || st.HTTP == http.StatusInternalServerError || http.StatusText(st.HTTP) == "":
			t.Errorf("domain code %q maps to HTTP %d", c, st.HTTP)
		}
		if st.RetryAfter && st.HTTP != http.StatusServiceUnavailable && st.HTTP != http.StatusTooManyRequests {
			t.Errorf("domain code %q: Retry-After goes with 503 or 429, not %d", c, st.HTTP)
		}
	}
	if st := StatusOf(geo.Internal); st.GRPC != codes.Internal || st.HTTP != http.StatusInternalServerError {
		t.Errorf("Internal maps to %v", st)
	}
	if st := StatusOf(geo.Code(1 << 20)); st != StatusOf(geo.Internal) {
		t.Errorf("an unknown code maps to %v, want Internal's row", st)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	secret := errors.New("SELECT secret FROM vault")
	tests := []struct {
		name     string
		err      error
		grpc     codes.Code
		http     int
		message  string
		internal bool
		ok       bool
	}{
		{"domain, wrapped", fmt.Errorf("search: %w", geo.Errorf(geo.Invalid, "bad bbox")), codes.InvalidArgument, 400, "bad bbox", false, true},
		{"busy", geo.Errorf(geo.Busy, "too many imports"), codes.ResourceExhausted, 503, "too many imports", false, true},
		{"internal hides its cause", geo.Wrap(geo.Internal, secret, "internal error"), codes.Internal, 500, "internal error", true, true},
		{"cancelled", fmt.Errorf("query: %w", context.Canceled), codes.Canceled, StatusClientClosed, "the request was cancelled", false, true},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, http.StatusGatewayTimeout, "the request's deadline passed", false, true},
		{"unknown", secret, codes.Internal, 500, "internal error", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, ok := Classify(tt.err)
			if o.GRPC != tt.grpc || o.HTTP != tt.http || o.Message != tt.message || o.Internal != tt.internal || ok != tt.ok {
				t.Errorf("Classify = %+v, %v; want %s %d %q internal=%v ok=%v", o, ok, tt.grpc, tt.http, tt.message, tt.internal, tt.ok)
			}
		})
	}
}
