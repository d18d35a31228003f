package grpcapi

import (
	"testing"

	"github.com/geosearch/search/internal/geo"
)

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
	// Track writes devices' states and events, never things: a read has
	// nothing of it to wait for.
	noThings := map[string]bool{svc + "Track": true}
	for m, a := range methodAccess {
		if a == geo.Write && got[m].out == nil && !noThings[m] {
			t.Errorf("%s needs write access but its response has no consistency_token", m)
		}
	}
}
