package statsd_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/geosearch/search/internal/statsd"
	"github.com/geosearch/search/internal/statsd/statsdtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestClientSendsTheLineProtocol(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	m, closeFn := statsd.New(statsd.Config{Addr: l.Addr(), Prefix: "svc", FlushInterval: 20 * time.Millisecond, SampleRate: 1}, quiet)
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
	m, closeFn := statsd.New(statsd.Config{Prefix: "svc", SampleRate: 1}, quiet)
	defer closeFn()
	if m.Enabled() {
		t.Error("a client without an address says it is enabled")
	}
	m.Count("x", 1) // and discards
}

func TestSampleRateChangesWhileRunning(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	m, closeFn := statsd.New(statsd.Config{Addr: l.Addr(), Prefix: "svc", FlushInterval: 20 * time.Millisecond, SampleRate: 1}, quiet)
	for range 100 {
		m.Count("all", 1)
	}
	m.SetSampleRate(0.01)
	for range 1000 {
		m.Count("some", 1)
	}
	closeFn()
	l.WaitSum(t, "svc.all", "c", 100)
	// At 1%, about 10 of 1000 are sent; 200 would be a broken sampler.
	if _, n := l.Sum("svc.some", "c"); n > 200 {
		t.Errorf("%d of 1000 events sent at a 1%% sample rate", n)
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
