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

// TestConsistencyTokensWhereTheContractHasThem: the table walked from the
// descriptor finds the token of every read that takes one, and every
// method needing write access hands one out.
func TestConsistencyTokensWhereTheContractHasThem(t *testing.T) {
	t.Parallel()
	const svc = "/search.v1.SearchService/"
	wantIn := map[string]string{
		svc + "Search": "consistency_token", svc + "SearchStream": "consistency_token",
		svc + "GetThing": "consistency_token", svc + "Locate": "options.consistency_token",
	}
	got := consistencyMethods()
	for m, cm := range got {
		if cm.in != nil && wantIn[m] != cm.inName {
			t.Errorf("%s waits for %q, want %q", m, cm.inName, wantIn[m])
		}
	}
	for m, name := range wantIn {
		if got[m].inName != name {
			t.Errorf("%s: no %s found", m, name)
		}
	}
	for m, a := range methodAccess {
		if a == geo.Write && got[m].out == nil {
			t.Errorf("%s needs write access but its response has no consistency_token", m)
		}
	}
}
