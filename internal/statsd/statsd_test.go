package statsd_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
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
	for range 10_000 {
		m.Count("some", 1)
	}
	m.Gauge("end", 1)
	closeFn()
	l.WaitSum(t, "svc.all", "c", 100)
	// At 1%, about 100 of 10,000 are sent (binomial: standard deviation
	// 10). Fewer than 20 or more than 300 is a broken sampler, not chance
	// (both are 8 or more deviations away).
	// Gauges are never sampled: the one sent last marks the end (loopback
	// UDP from one socket arrives in order).
	l.WaitSum(t, "svc.end", "g", 1)
	_, n := l.Sum("svc.some", "c")
	if n < 20 || n > 300 {
		t.Errorf("%d of 10,000 events sent at a 1%% sample rate, want about 100", n)
	}
}

// recorder is a slog.Handler that keeps the records it gets.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func TestUnresolvableAddressIsReportedAndDiscards(t *testing.T) {
	t.Parallel()
	const addr = "no-such-host.invalid:8125"
	rec := &recorder{}
	m, closeFn := statsd.New(statsd.Config{Addr: addr, Prefix: "svc", FlushInterval: 10 * time.Millisecond, SampleRate: 1}, slog.New(rec))
	for range 1000 { // discarded without blocking or failing
		m.Count("x", 1)
		m.Timing("y", time.Millisecond)
		m.Gauge("z", 1)
	}
	closeFn()
	if !m.Enabled() {
		t.Error("a client with an address that does not resolve yet says it is disabled")
	}
	warned := 0
	for _, r := range rec.records {
		r.Attrs(func(a slog.Attr) bool {
			if r.Level == slog.LevelWarn && a.Key == "addr" && a.Value.String() == addr {
				warned++
			}
			return true
		})
	}
	if warned != 1 {
		t.Errorf("%d warnings name the unresolvable address, want 1 (records: %d)", warned, len(rec.records))
	}
}

func TestADaemonThatIsDownAndComesUpGetsTheLaterMetrics(t *testing.T) {
	t.Parallel()
	// A port where nothing listens: sends are refused (ICMP port
	// unreachable), and must neither fail nor stop the client.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	m, closeFn := statsd.New(statsd.Config{Addr: addr, Prefix: "svc", FlushInterval: 5 * time.Millisecond, SampleRate: 1}, quiet)
	defer closeFn()
	for i := range 200 {
		m.Count("lost", 1)
		if i%20 == 0 {
			time.Sleep(5 * time.Millisecond) // let flushes hit the closed port
		}
	}
	time.Sleep(50 * time.Millisecond)
	l := statsdtest.ListenAt(t, addr)
	// UDP: the daemon may miss what was sent before it listened, and a
	// packet in flight; keep sending until it has seen some.
	deadline := time.Now().Add(30 * time.Second)
	for {
		m.Count("after", 1)
		time.Sleep(10 * time.Millisecond)
		if _, n := l.Sum("svc.after", "c"); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never received a metric sent after it came up")
		}
	}
}
