package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// How a request is bounded, in the order it meets the bounds:
//
//  1. A place among HTTP_MAX_IN_FLIGHT, held until its answer is written
//     (or HTTP_WRITE_TIMEOUT passes): beyond them, 503 with Retry-After at
//     once. This bounds memory and goroutines.
//  2. For the routes that read the database, a database slot: as many as
//     the HTTP API's pool has connections (Deps.DBConns, DB_HTTP_MAX_CONNS),
//     waited for at most HTTP_QUEUE_TIMEOUT, after which the request is
//     refused with 503 and Retry-After too. A request that holds one finds
//     a connection free, so its deadline (HTTP_REQUEST_TIMEOUT) pays for
//     its own work only, never for a queue: the admitted are answered, the
//     others told at once to come back, rather than all of them waiting
//     for a pool that cannot serve them in time and ending in 504.
//  3. The answer is made in memory while the slot is held and written
//     once it is let go, so that a client reading slowly holds no
//     database slot, only its place in flight.
//
// POST /locate's stream takes a database slot for each batch's statement.

// routeKind is how a route is bounded.
type routeKind int

const (
	// bounded reads the database: a request deadline
	// (HTTP_REQUEST_TIMEOUT), read and write deadlines, a place among
	// HTTP_MAX_IN_FLIGHT and a database slot; its answer is held in
	// memory until the slot is let go.
	bounded routeKind = iota
	// fromMemory is answered without the database: as bounded, without
	// a database slot.
	fromMemory
	// streamed: a place in flight, but no deadline: POST /locate reads and
	// answers a stream of points for as long as its client sends them,
	// taking a database slot per batch.
	streamed
	// probe: readiness, answered from memory and never refused, so that
	// load cannot make an instance that answers look dead.
	probe
)

// bound applies the route's bounds (see routeKind) and serves it: beyond
// HTTP_MAX_IN_FLIGHT requests, Busy at once.
func (s *Server) bound(w *statusRecorder, r *http.Request, rt route) error {
	switch rt.kind {
	case probe:
		return s.serveRoute(w, r, rt)
	case streamed:
		// The server's read and write deadlines would cut a stream that
		// goes on; the stream's own bounds (the body limit, the
		// batches) apply instead.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}
	if s.inFlight != nil {
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
		default:
			return geo.Errorf(geo.Busy, "this instance answers as many HTTP requests as it allows (HTTP_MAX_IN_FLIGHT=%d); retry later or elsewhere", cap(s.inFlight))
		}
	}
	if rt.kind == streamed {
		return s.serveRoute(w, r, rt)
	}
	if s.cfg.RequestTimeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if rt.kind != bounded {
		return s.serveRoute(w, r, rt)
	}
	held := &heldAnswer{header: w.Header()}
	if err := s.serveRoute(held, r, rt); err != nil {
		return err // what was held is dropped: the answer is the error
	}
	return held.send(w)
}

// takeDBSlot waits for a database slot, at most HTTP_QUEUE_TIMEOUT, and
// returns what lets it go; Busy when none came free in time.
func (s *Server) takeDBSlot(ctx context.Context) (release func(), err error) {
	if s.dbSlots == nil {
		return func() {}, nil
	}
	release = func() { <-s.dbSlots }
	select {
	case s.dbSlots <- struct{}{}:
		return release, nil
	default:
	}
	wait := time.NewTimer(s.cfg.QueueTimeout)
	defer wait.Stop()
	select {
	case s.dbSlots <- struct{}{}:
		return release, nil
	case <-wait.C:
		return nil, geo.Errorf(geo.Busy, "this instance's HTTP database connections (%d) stayed busy for HTTP_QUEUE_TIMEOUT (%s); retry later or elsewhere", cap(s.dbSlots), s.cfg.QueueTimeout)
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// slotted is the store as POST /locate's stream sees it: each Locate
// statement takes a database slot (takeDBSlot) for as long as it runs.
type slotted struct {
	geo.SearchService
	s *Server
}

func (l slotted) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	release, err := l.s.takeDBSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return l.SearchService.Locate(ctx, q)
}

// heldAnswer is a bounded route's answer kept in memory until the route
// has let its database slot go. Headers go straight to the real answer's
// (they are sent with its status, or with the error that replaces it).
// Its size is the route's own bound: an items page's byte budget
// (MAX_PAGE_BYTES), a tile's (TILE_MAX_BYTES).
type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldAnswer) Header() http.Header { return h.header }

func (h *heldAnswer) WriteHeader(code int) {
	if h.status == 0 && code >= 200 {
		h.status = code
	}
}

func (h *heldAnswer) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// send writes the held answer to w, with its length.
func (h *heldAnswer) send(w http.ResponseWriter) error {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	if h.status != http.StatusNoContent && h.status != http.StatusNotModified && h.header.Get("Content-Length") == "" {
		h.header.Set("Content-Length", strconv.Itoa(h.body.Len()))
	}
	w.WriteHeader(h.status)
	_, err := w.Write(h.body.Bytes())
	return err
}
