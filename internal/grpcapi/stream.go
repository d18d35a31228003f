package grpcapi

import (
	"sync/atomic"
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
//
// sendAll hands the goroutine many messages at once (a Locate batch's
// answers): two channel operations per batch instead of per message. The
// timeout still applies to each message: the goroutine records when its
// last Send returned, and the handler gives up only when none has for the
// timeout.
type stallGuard[T any] struct {
	stream  grpc.ServerStreamingServer[T]
	timeout time.Duration
	msgs    chan []*T
	errs    chan error // buffered: the goroutine never blocks on it
	timer   *time.Timer
	stalled error // set once a Send timed out; every later send returns it
	one     [1]*T // send's batch of one, not allocated per message
	// progress is when the goroutine's last Send returned (UnixNano).
	progress atomic.Int64
}

// newStallGuard starts the sending goroutine; call close when the handler
// returns.
func newStallGuard[T any](stream grpc.ServerStreamingServer[T], timeout time.Duration) *stallGuard[T] {
	g := &stallGuard[T]{
		stream:  stream,
		timeout: timeout,
		msgs:    make(chan []*T),
		errs:    make(chan error, 1),
		timer:   time.NewTimer(timeout),
	}
	g.timer.Stop()
	go func() {
		for ms := range g.msgs {
			var err error
			for _, m := range ms {
				if err = stream.Send(m); err != nil {
					break
				}
				if len(ms) > 1 {
					g.progress.Store(time.Now().UnixNano())
				}
			}
			g.errs <- err
		}
	}()
	return g
}

// send sends m, or fails with geo.Timeout when the client has not made room
// for it within the timeout.
func (g *stallGuard[T]) send(m *T) error {
	g.one[0] = m
	return g.sendAll(g.one[:])
}

// sendAll sends ms in order, or fails with geo.Timeout when the client has
// not made room for one of them within the timeout. The guard's goroutine
// holds ms until it returns; the caller may reuse the slice after that
// (not after a timeout).
func (g *stallGuard[T]) sendAll(ms []*T) error {
	if g.stalled != nil {
		return g.stalled
	}
	if len(ms) == 0 {
		return nil
	}
	if len(ms) > 1 {
		g.progress.Store(time.Now().UnixNano())
	}
	g.msgs <- ms // the goroutine is idle: the previous batch was waited for
	g.timer.Reset(g.timeout)
	for {
		select {
		case err := <-g.errs:
			g.timer.Stop()
			return err
		case <-g.timer.C:
			// A later message may have been sent since the timer started:
			// wait until the timeout has passed since the last one.
			if len(ms) > 1 {
				if left := time.Until(time.Unix(0, g.progress.Load()).Add(g.timeout)); left > 0 {
					g.timer.Reset(left)
					continue
				}
			}
			g.stalled = geo.Errorf(geo.Timeout,
				"the client stopped reading: nothing could be sent for %s (STREAM_SEND_TIMEOUT), so the stream was ended", g.timeout)
			return g.stalled
		}
	}
}

// close ends the sending goroutine once its current Send, if any, returns:
// at once, or, after a stall, when gRPC cancels the stream as the handler
// returns.
func (g *stallGuard[T]) close() {
	g.timer.Stop()
	close(g.msgs)
}
