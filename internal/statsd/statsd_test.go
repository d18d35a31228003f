package statsd_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/geosearch/search/internal/metrics"
	"github.com/geosearch/search/internal/statsd"
	"github.com/geosearch/search/internal/statsd/statsdtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestClientSendsTheLineProtocol(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	m, closeFn := statsd.New(statsd.Config{Addr: l.Addr(), Prefix: "svc", FlushInterval: 20 * time.Millisecond}, quiet)
	m.Count("a.b", 2)
	m.Count("a.b", 3)
	m.Timing("t", 1500*time.Microsecond)
	m.Gauge("g", 7)
	closeFn() // flushes
	l.WaitSum(t, "svc.a.b", "c", 5)
	l.WaitSum(t, "svc.t", "ms", 1.5)
	l.WaitSum(t, "svc.g", "g", 7)
}

func TestUnsetAddressIsANoop(t *testing.T) {
	t.Parallel()
	m, closeFn := statsd.New(statsd.Config{Prefix: "svc"}, quiet)
	defer closeFn()
	if _, ok := m.(metrics.Nop); !ok {
		t.Errorf("got %T, want metrics.Nop", m)
	}
}

func TestUnresolvableOrUnreachableAddressNeverFails(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"no-such-host.invalid:8125", "127.0.0.1:1"} {
		m, closeFn := statsd.New(statsd.Config{Addr: addr, Prefix: "svc", FlushInterval: 10 * time.Millisecond}, quiet)
		for range 1000 {
			m.Count("x", 1)
			m.Timing("y", time.Millisecond)
			m.Gauge("z", 1)
		}
		closeFn()
	}
}
