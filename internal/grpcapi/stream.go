package grpcapi

import (
	"time"

	"google.golang.org/grpc"

	"github.com/geosearch/search/internal/geo"
)

// stallGuard sends a server stream's messages and gives up on a client that
// has stopped reading: when one Send has been blocked (by HTTP/2 flow
// control) for the timeout, the handler ends the stream with
// DEADLINE_EXCEEDED instead of waiting for the client forever.
//
// A blocked Send cannot be interrupted from the handler: it waits on the
// transport stream's context, which only gRPC cancels. So every Send runs on
// one goroutine of the guard's own, and the handler waits for it or for the
// timeout. This is safe under grpc-go's rules (v1.85, see
// internal/transport/http2_server.go and stream.go):
//
//   - SendMsg is never called from two goroutines at once: only the guard's
//     goroutine calls it, one message at a time, and the handler does not
//     call it at all. A message is not touched after it is handed over.
//   - The handler may return while that goroutine is blocked in Send. gRPC
//     then writes the status (WriteStatus), and finishStream cancels the
//     stream's context, "to interrupt the potential blocking on other
//     goroutines". The blocked Send returns that context's error; its own
//     WriteStatus is a no-op on the finished stream (both are serialized by
//     the transport); the goroutine finds its channel closed and exits.
//     SendMsg's tracing state is guarded by serverStream's mutex for exactly
//     this case. Binary logging and stats handlers, which this server does
//     not install, would see that last failed Send after the RPC's end.
//
// What a stalled stream then still holds is the transport's: at most its
// write quota (64 KiB) of queued data, and the status queued behind it. They
// are released when the client reads again (it then gets the status) or
// when its connection closes. The handler goroutine, the guard's goroutine
// and the fetched batch are released at the timeout.
type stallGuard[T any] struct {
	stream  grpc.ServerStreamingServer[T]
	timeout time.Duration
	msgs    chan *T
	errs    chan error // buffered: the goroutine never blocks on it
	timer   *time.Timer
	stalled error // set once a Send timed out; every later send returns it
}

// newStallGuard starts the sending goroutine; call close when the handler
// returns.
func newStallGuard[T any](stream grpc.ServerStreamingServer[T], timeout time.Duration) *stallGuard[T] {
	g := &stallGuard[T]{
		stream:  stream,
		timeout: timeout,
		msgs:    make(chan *T),
		errs:    make(chan error, 1),
		timer:   time.NewTimer(timeout),
	}
	g.timer.Stop()
	go func() {
		for m := range g.msgs {
			g.errs <- stream.Send(m)
		}
	}()
	return g
}

// send sends m, or fails with geo.Timeout when the client has not made room
// for it within the timeout.
func (g *stallGuard[T]) send(m *T) error {
	if g.stalled != nil {
		return g.stalled
	}
	g.msgs <- m // the goroutine is idle: the previous send was waited for
	g.timer.Reset(g.timeout)
	select {
	case err := <-g.errs:
		g.timer.Stop()
		return err
	case <-g.timer.C:
		g.stalled = geo.Errorf(geo.Timeout,
			"the client stopped reading: nothing could be sent for %s (STREAM_SEND_TIMEOUT), so the stream was ended", g.timeout)
		return g.stalled
	}
}

// close ends the sending goroutine once its current Send, if any, returns:
// at once, or, after a stall, when gRPC cancels the stream as the handler
// returns.
func (g *stallGuard[T]) close() {
	g.timer.Stop()
	close(g.msgs)
}
