package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/server/servertest"
	"github.com/geosearch/search/internal/statsd/statsdtest"
)

// These tests count the process's goroutines and measure its heap, so they
// are not parallel: Go runs them before any parallel test starts, alone.

// goroutinesIn counts the goroutines whose stack mentions any of fns.
func goroutinesIn(fns ...string) int {
	buf := make([]byte, 1<<24)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn) {
				n++
				break
			}
		}
	}
	return n
}

// streamHandlers are the functions of a running SearchStream on the server.
var streamHandlers = []string{"grpcapi.(*Server).SearchStream", "grpcapi.newStallGuard"}

// waitGoroutines waits until the process is back to at most baseline+slack
// goroutines and no SearchStream handler runs; it returns the last count.
func waitGoroutines(t *testing.T, baseline, slack int) int {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+slack && goroutinesIn(streamHandlers...) == 0 {
			return n
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<24)
			t.Fatalf("%d goroutines a minute after the streams ended, baseline %d (+%d allowed); %d in SearchStream:\n%s",
				n, baseline, slack, goroutinesIn(streamHandlers...), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// heapAlloc is the heap's live size after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// newConn is a client connection to ts, closed when the test ends.
func newConn(t *testing.T, ts *servertest.Server, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(ts.Addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// insertDiscs stores n small polygons named "disc NNNNN" (33 vertices
// each, about 1.2 KB of GeoJSON) straight into the database. They are for
// name searches only, so the trigger that cuts parts for point searches is
// off while they are written: it would take minutes on a loaded machine.
func insertDiscs(t *testing.T, dbURL string, n int) {
	t.Helper()
	ctx := context.Background()
	conn := servertest.Connect(t, dbURL)
	defer conn.Close(ctx)
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER TABLE thing DISABLE TRIGGER thing_part_sync`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO thing (name, geom)
			SELECT 'disc ' || lpad(i::text, 5, '0'),
			       ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(i % 300 - 150 + 0.5, (i / 300) % 150 - 75 + 0.5), 4326), 0.3, 8))
			FROM generate_series(1, $1::int) i`, n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `ALTER TABLE thing ENABLE TRIGGER thing_part_sync`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStalledStreamsHoldBoundedMemory opens streams over far more data than
// the flow-control windows and stops reading them. While they are stalled,
// the server's heap grows by about one fetched batch per stream, far less
// than the results, which it never buffers; after STREAM_SEND_TIMEOUT each
// handler ends the stream and its goroutines and batch are released,
// although the clients still read nothing. When the clients read again they
// get what was in flight, then DEADLINE_EXCEEDED.
func TestStalledStreamsHoldBoundedMemory(t *testing.T) {
	const (
		things  = 20_000
		stalled = 8
	)
	metrics := statsdtest.Listen(t)
	ts := servertest.Start(t, map[string]string{"STREAM_SEND_TIMEOUT": "2s", "DB_MAX_CONNS": "4",
		"STATSD_ADDR": metrics.Addr(), "STATSD_FLUSH_INTERVAL": "20ms"}, true)
	insertDiscs(t, ts.DBURL, things)
	req := &searchv1.SearchRequest{Query: "disc", IncludeGeometry: true}

	// What one whole stream weighs on the wire; a server buffering results
	// would hold at least that per stalled stream.
	full, err := ts.Client.SearchStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var whole, n int
	for {
		th, err := full.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		whole += proto.Size(th)
		n++
	}
	if n != things {
		t.Fatalf("a full read got %d things, want %d", n, things)
	}

	baseGoroutines := runtime.NumGoroutine()
	baseHeap := heapAlloc()
	streams := make([]grpc.ServerStreamingClient[searchv1.Thing], stalled)
	conns := make([]*grpc.ClientConn, stalled)
	for i := range streams {
		// HTTP/2's initial 64 KiB windows, which BDP estimation does not
		// grow: the client takes 64 KiB and then makes no more room.
		conns[i] = newConn(t, ts, grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
		if streams[i], err = searchv1.NewSearchServiceClient(conns[i]).SearchStream(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if _, err := streams[i].Recv(); err != nil {
			t.Fatal(err)
		}
	}

	// Sample the heap (garbage included: an upper bound) until every
	// stalled stream was ended by the server.
	var peak uint64
	ended := func() int {
		return servertest.CountRecords(servertest.LogRecords(ts.Logs.String()), map[string]any{
			"method": "/search.v1.SearchService/SearchStream", "code": "DeadlineExceeded"})
	}
	deadline := time.Now().Add(60 * time.Second)
	for ended() < stalled {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d stalled streams ended by the server within a minute", ended(), stalled)
		}
		time.Sleep(10 * time.Millisecond)
	}
	growth := int64(peak) - int64(baseHeap)
	buffered := stalled * whole
	// Counted, not measured: every thing the server fetched is counted in
	// search.results. A stalled stream fetches a batch, sends until flow
	// control blocks it, and fetches the next batch only when the first is
	// sent: at most two batches (1,000 things) each, where a server
	// buffering results would fetch all 20,000. (UDP may lose a count; that
	// only lowers the sum.)
	fetched, _ := metrics.Sum("search-service.search.results", "c")
	stalledFetched := int(fetched) - things // the full read above fetched every thing once
	t.Logf("one whole stream: %d things, %.1f MB; %d stalled streams fetched %d things; heap grew by at most %.1f MB (buffering them would need %.1f MB)",
		things, float64(whole)/1e6, stalled, stalledFetched, float64(growth)/1e6, float64(buffered)/1e6)
	if stalledFetched > stalled*2*500 {
		t.Errorf("%d stalled streams fetched %d things from the database, want at most two batches of 500 each", stalled, stalledFetched)
	}
	if n := goroutinesIn(streamHandlers...); n != 0 {
		t.Errorf("%d goroutines still in SearchStream after the server ended the stalled streams", n)
	}

	for i, s := range streams {
		got := 1
		for {
			if _, err = s.Recv(); err != nil {
				break
			}
			got++
		}
		st := status.Convert(err)
		if st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "STREAM_SEND_TIMEOUT") {
			t.Errorf("stalled stream %d ended with %s %q, want DeadlineExceeded naming STREAM_SEND_TIMEOUT", i, st.Code(), st.Message())
		}
		if got >= things {
			t.Errorf("stalled stream %d got all %d things", i, got)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	after := waitGoroutines(t, baseGoroutines, 5)
	t.Logf("goroutines: %d before the stalled streams, %d after; heap: %.1f MB before, %.1f MB after",
		baseGoroutines, after, float64(baseHeap)/1e6, float64(heapAlloc())/1e6)
}

// gaugeRecorder keeps the last value of each gauge reported to it.
type gaugeRecorder struct {
	mu     sync.Mutex
	gauges map[string]int64
}

func (g *gaugeRecorder) Count(string, int64)          {}
func (g *gaugeRecorder) Timing(string, time.Duration) {}
func (g *gaugeRecorder) Gauge(name string, v int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gauges[name] = v
}

// poolGauges are the server's database pool gauges as it reports them.
func poolGauges(ts *servertest.Server) map[string]int64 {
	g := &gaugeRecorder{gauges: map[string]int64{}}
	ts.Srv.Parts().Search.ReportPool(g)
	return g.gauges
}

// rawConns records the TCP connections a client dialed, so that a test can
// cut them without any HTTP/2 goodbye.
type rawConns struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (r *rawConns) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
	}
	return c, err
}

func (r *rawConns) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
}

// TestManyStreamsLeaveNothingBehind runs 200 concurrent streams over 26
// client connections: 70 read to the end, 70 are cancelled midway, and 60
// lose their connection, cut at the TCP level. Once they are gone, the
// process is back to its goroutines from before (so no handler, stall guard
// or server transport is left), and the database pool has nothing acquired
// and no more connections than its maximum, in its own stats and in
// PostgreSQL's.
func TestManyStreamsLeaveNothingBehind(t *testing.T) {
	const (
		maxConns   = 4
		perConn    = 7 // streams per connection that reads or cancels
		perCutConn = 10
	)
	ts := servertest.Start(t, map[string]string{"DB_MAX_CONNS": "4", "DATABASE_URL": servertest.FixtureDB(t)}, true)
	req := &searchv1.SearchRequest{Query: "a", IncludeGeometry: true}
	full, err := ts.Client.SearchStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	matches, size := 0, 0
	for {
		th, err := full.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		matches++
		size += proto.Size(th)
	}
	if size < 4*65535 {
		t.Fatalf("a stream is %d bytes; this test needs streams that do not fit in the flow-control windows", size)
	}
	baseline := runtime.NumGoroutine()

	type kind int
	const (
		reads kind = iota
		cancels
		cut
	)
	var conns []*grpc.ClientConn
	var kinds []kind
	raw := &rawConns{}
	// HTTP/2's initial 64 KiB windows, which BDP estimation does not grow,
	// so that no stream fits in its client's buffers: every handler is
	// still sending when all 200 are open.
	small := []grpc.DialOption{grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535)}
	for range 10 {
		conns, kinds = append(conns, newConn(t, ts, small...)), append(kinds, reads)
		conns, kinds = append(conns, newConn(t, ts, small...)), append(kinds, cancels)
	}
	for range 6 {
		conns, kinds = append(conns, newConn(t, ts, append(small, grpc.WithContextDialer(raw.dial))...)), append(kinds, cut)
	}

	var opened, done sync.WaitGroup
	start := make(chan struct{})
	// The cut streams read only once their connections are cut: reading
	// before, they could finish before the cut.
	severed := make(chan struct{})
	var mu sync.Mutex
	outcomes := map[string]int{}
	outcome := func(format string) {
		mu.Lock()
		outcomes[format]++
		mu.Unlock()
	}
	total := 0
	for i, conn := range conns {
		n := perConn
		if kinds[i] == cut {
			n = perCutConn
		}
		client := searchv1.NewSearchServiceClient(conn)
		for range n {
			total++
			opened.Add(1)
			done.Add(1)
			go func(k kind) {
				defer done.Done()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				stream, err := client.SearchStream(ctx, req)
				if err == nil {
					_, err = stream.Recv()
				}
				opened.Done()
				if err != nil {
					outcome("failed to open: " + status.Code(err).String())
					return
				}
				<-start // all 200 are open
				if k == cut {
					<-severed
				}
				got := 1
				for {
					if k == cancels && got == 5 {
						cancel()
					}
					if _, err = stream.Recv(); err != nil {
						break
					}
					got++
				}
				switch {
				case k == reads && errors.Is(err, io.EOF) && got == matches:
					outcome("read all")
				case k == cancels && status.Code(err) == codes.Canceled:
					outcome("cancelled")
				case k == cut && status.Code(err) == codes.Unavailable:
					outcome("connection lost")
				default:
					outcome(fmt.Sprintf("unexpected: %d things, then %v", got, err))
				}
			}(kinds[i])
		}
	}
	opened.Wait()
	running := goroutinesIn("grpcapi.(*Server).SearchStream")
	close(start)
	raw.cut()
	close(severed)
	done.Wait()
	t.Logf("%d streams of %d things (%d bytes), %d handlers running on the server when all were open; outcomes: %v", total, matches, size, running, outcomes)
	want := map[string]int{"read all": 10 * perConn, "cancelled": 10 * perConn, "connection lost": 6 * perCutConn}
	if total != 200 || len(outcomes) != len(want) || outcomes["read all"] != want["read all"] ||
		outcomes["cancelled"] != want["cancelled"] || outcomes["connection lost"] != want["connection lost"] {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}

	for _, c := range conns {
		c.Close()
	}
	after := waitGoroutines(t, baseline, 5)
	t.Logf("goroutines: %d before the streams, %d after they left", baseline, after)

	servertest.Eventually(t, 30*time.Second, "no pooled connection acquired", func() bool { return poolGauges(ts)["db.pool.in_use"] == 0 })
	if g := poolGauges(ts); g["db.pool.total"] > maxConns || g["db.pool.total"] < 1 {
		t.Errorf("pool gauges %v: want between 1 and %d connections", g, maxConns)
	} else {
		t.Logf("pool after the streams: %v", g)
	}
	ctx := context.Background()
	conn := servertest.Connect(t, ts.DBURL)
	defer conn.Close(ctx)
	// Eventually: with MEMINDEX=on the index's refresh (every 250 ms) reads
	// on the same pool, and a sample taken during one sees it busy; a
	// connection a stream left busy stays so.
	var backends, busy int
	servertest.Eventually(t, 30*time.Second, "the server's connections all idle", func() bool {
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state <> 'idle')
			FROM pg_stat_activity WHERE application_name = $1`, "search-server/"+ts.Srv.Parts().Config.InstanceID).Scan(&backends, &busy); err != nil {
			t.Fatal(err)
		}
		return busy == 0
	})
	if backends > maxConns {
		t.Errorf("PostgreSQL has %d connections of the server; want at most %d", backends, maxConns)
	}
}
