package httpapi_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// waits is a geo.ReadYourWrites that records the positions reads wait for
// and answers each wait with err.
type waits struct {
	mu        sync.Mutex
	positions []geo.Position
	err       error
}

func (w *waits) WritePosition(context.Context) (geo.Position, error) { return 0, nil }

func (w *waits) WaitFor(_ context.Context, p geo.Position) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.positions = append(w.positions, p)
	return w.err
}

func (w *waits) taken() []geo.Position {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]geo.Position(nil), w.positions...)
}

// TestReadsWaitForTheirConsistencyToken: a read with a Consistency-Token
// header waits for the write position it names before it runs, as a gRPC
// read with consistency_token does, and its answer carries the token back;
// a token the service did not issue is a 400, a store that cannot catch up
// a 503; reads without the header and open routes wait for nothing.
func TestReadsWaitForTheirConsistencyToken(t *testing.T) {
	t.Parallel()
	rw := &waits{}
	a := start(t, func(s *setup) { s.consistency = rw })
	tok := geo.EncodeConsistencyToken(12345)

	r := a.get(t, "/collections/default/items?limit=1", core.ConsistencyHeader, tok)
	if r.status != http.StatusOK || r.header.Get(core.ConsistencyHeader) != tok {
		t.Errorf("items with a token: %d, header %q; want 200 and the token back", r.status, r.header.Get(core.ConsistencyHeader))
	}
	if got := rw.taken(); len(got) != 1 || got[0] != 12345 {
		t.Errorf("waited for %v, want [12345]", got)
	}

	for _, path := range []string{"/collections/default/items?limit=1", "/conformance", "/readyz"} {
		if r := a.get(t, path); r.status != http.StatusOK || r.header.Get(core.ConsistencyHeader) != "" {
			t.Errorf("%s without a token: %d, header %q", path, r.status, r.header.Get(core.ConsistencyHeader))
		}
	}
	if got := rw.taken(); len(got) != 1 {
		t.Errorf("reads without a token waited: %v", got)
	}

	r = a.get(t, "/collections/default/items", core.ConsistencyHeader, "not-a-token")
	wantException(t, "forged token", r, http.StatusBadRequest, "Consistency-Token header is not a consistency token")

	rw.mu.Lock()
	rw.err = geo.Errorf(geo.Unavailable, "the replica is behind")
	rw.mu.Unlock()
	r = a.get(t, "/collections/default", core.ConsistencyHeader, tok)
	wantException(t, "lagging store", r, http.StatusServiceUnavailable, "the replica is behind")
}
