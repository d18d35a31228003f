package grpcapi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/grpcapi"
	"github.com/geosearch/search/internal/metrics"
)

// lockedBuffer is a log destination safe to read while the server writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stallingClient is a client whose flow-control windows stay at HTTP/2's
// 64 KiB (BDP estimation is off), so that a stream it stops reading stops
// the server's sends after 64 KiB.
func stallingClient(t *testing.T, addr string) searchv1.SearchServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return searchv1.NewSearchServiceClient(conn)
}

// handlersRunning counts goroutines in the SearchStream handler or its
// stall guard.
func handlersRunning() int {
	n := 0
	for _, g := range goroutines() {
		if strings.Contains(g, "grpcapi.(*Server).SearchStream") || strings.Contains(g, "grpcapi.newStallGuard") {
			n++
		}
	}
	return n
}

// TestSearchStreamEndsWhenTheClientStopsReading stalls a stream of 12 MB,
// far beyond the flow-control windows: the server ends it after
// STREAM_SEND_TIMEOUT, releasing its goroutines while the client still reads
// nothing, and the client, once it reads again, gets what was in flight and
// then DEADLINE_EXCEEDED. Not parallel, so that the goroutines counted are
// this test's.
func TestSearchStreamEndsWhenTheClientStopsReading(t *testing.T) {
	svc := &fakeService{things: things(3000)}
	geometry := `{"type":"Polygon","coordinates":[[` + strings.Repeat("[1.2345678,2.3456789],", 180) + `[1.2345678,2.3456789]]]}`
	for i := range svc.things {
		svc.things[i].GeometryGeoJSON = geometry // 4 KB each
	}
	cfg := testConfig
	cfg.StreamSendTimeout = 300 * time.Millisecond
	logs := &lockedBuffer{}
	counts := &countingMetrics{}
	addr := serveWithInterceptors(t, svc, cfg, slog.New(slog.NewJSONHandler(logs, nil)), counts)

	stream, err := stallingClient(t, addr).SearchStream(context.Background(), &searchv1.SearchRequest{Query: "thing", IncludeGeometry: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing more.
	deadline := time.Now().Add(30 * time.Second)
	for counts.get("grpc.SearchService.SearchStream.errors.DeadlineExceeded") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream was not ended by the server; log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for handlersRunning() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the handler or its sending goroutine outlived the stalled stream")
		}
		time.Sleep(20 * time.Millisecond)
	}

	n := 1
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
		n++
	}
	st := status.Convert(err)
	if st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "stopped reading") || !strings.Contains(st.Message(), "STREAM_SEND_TIMEOUT") {
		t.Errorf("the stalled stream ended with %s %q, want DeadlineExceeded naming STREAM_SEND_TIMEOUT", st.Code(), st.Message())
	}
	if n >= len(svc.things) {
		t.Errorf("the client got all %d things although it stopped reading", n)
	}
	t.Logf("the client got %d of %d things (4 KB each) before the end", n, len(svc.things))
}

// goroutines returns the stacks of every goroutine.
func goroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Split(string(buf), "\n\n")
}

// countingMetrics is a metrics.Metrics that adds up counters.
type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (c *countingMetrics) Count(name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int64{}
	}
	c.counts[name] += n
}
func (c *countingMetrics) Timing(string, time.Duration) {}
func (c *countingMetrics) Gauge(string, int64)          {}

func (c *countingMetrics) get(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name]
}

// serveWithInterceptors serves svc on loopback through the server's own
// options (every interceptor, logging to logger, counting into counts) and
// returns the address.
func serveWithInterceptors(t *testing.T, svc geo.SearchService, cfg grpcapi.Config, logger *slog.Logger, counts *countingMetrics) string {
	t.Helper()
	opts, err := grpcapi.ServerOptions(cfg, logger, logger, counts, grpcapi.NewAuth(cfg))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	searchv1.RegisterSearchServiceServer(gs, grpcapi.NewServer(svc, cfg, grpcapi.Info{}, metrics.Nop{}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}
