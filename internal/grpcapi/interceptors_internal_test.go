package grpcapi

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/geosearch/search/internal/geo"
)

// TestEveryDomainCodeHasItsOwnStatus fails when a domain code is added
// without a row in grpcCode: it would reach clients as Internal.
func TestEveryDomainCodeHasItsOwnStatus(t *testing.T) {
	t.Parallel()
	n := 0
	for c := geo.Code(1); c.String() != geo.Internal.String(); c++ {
		n++
		if got := grpcCode(c); got == codes.Internal {
			t.Errorf("domain code %q maps to Internal: give it its gRPC code in grpcCode", c)
		}
	}
	if n < 10 {
		t.Errorf("walked %d domain codes, want at least 10: does geo.Code.String name every code?", n)
	}
}
