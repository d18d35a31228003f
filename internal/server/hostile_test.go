package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// probeLoop searches for Paris, as a user would with a 5 s deadline, and
// asks for health, on a connection of its own, until stopped.
type probeLoop struct{ searches, health *servertest.CallLoop }

func startProbeLoop(t *testing.T, addr string) *probeLoop {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client, hc := searchv1.NewSearchServiceClient(conn), healthpb.NewHealthClient(conn)
	return &probeLoop{
		searches: servertest.StartLoop(5*time.Millisecond, func() error { return servertest.SearchParis(client, 5*time.Second) }),
		health: servertest.StartLoop(5*time.Millisecond, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil && h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				err = fmt.Errorf("health %s", h.GetStatus())
			}
			return err
		}),
	}
}

// stop ends both loops: searches answered and failed, health checks not
// SERVING, and the first failed search.
func (l *probeLoop) stop() (ok, failed, unhealthy int64, firstErr any) {
	ok, failed, firstErr = l.searches.Stop()
	_, unhealthy, _ = l.health.Stop()
	return ok, failed, unhealthy, firstErr
}

// square is an import message whose geometry is a small square at i.
func squareMessage(i int) *searchv1.ImportRequest {
	x := float64(i%300) - 150
	return &searchv1.ImportRequest{Name: fmt.Sprint("stalled ", i), GeometryGeojson: fmt.Sprintf(
		`{"type":"Polygon","coordinates":[[[%g,0],[%g,0],[%g,0.5],[%g,0]]]}`, x, x+0.5, x+0.5, x)}
}

func TestStalledImportsNeverStarveSearches(t *testing.T) {
	t.Parallel()
	const stalled, concurrent = 16, 2
	ts := servertest.Start(t, map[string]string{
		"IMPORT_IDLE_TIMEOUT": "3s", "MAX_CONCURRENT_IMPORTS": fmt.Sprint(concurrent), "DB_MAX_CONNS": "4",
		"DATABASE_URL": servertest.FixtureDB(t),
	}, true)
	before := servertest.Fingerprint(t, ts.DBURL)
	loop := startProbeLoop(t, ts.Addr)

	// The stalled clients share a connection of their own.
	conn, err := grpc.NewClient(ts.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := searchv1.NewSearchServiceClient(conn)
	type result struct {
		code codes.Code
		msg  string
	}
	results := make(chan result, stalled)
	for i := range stalled {
		go func() {
			// A bound for a server that never ends a stalled import.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			stream, err := client.Import(ctx)
			if err != nil {
				results <- result{status.Code(err), err.Error()}
				return
			}
			_ = stream.Send(squareMessage(i)) // one feature, then silence: no CloseSend
			err = stream.RecvMsg(new(searchv1.ImportResponse))
			st := status.Convert(err)
			results <- result{st.Code(), st.Message()}
		}()
	}
	got := map[codes.Code]int{}
	for range stalled {
		r := <-results
		got[r.code]++
		switch r.code {
		case codes.ResourceExhausted:
			if !strings.Contains(r.msg, "MAX_CONCURRENT_IMPORTS") {
				t.Errorf("refused import: %q does not name MAX_CONCURRENT_IMPORTS", r.msg)
			}
		case codes.DeadlineExceeded:
			if !strings.Contains(r.msg, "IMPORT_IDLE_TIMEOUT") {
				t.Errorf("stalled import: %q does not name IMPORT_IDLE_TIMEOUT", r.msg)
			}
		}
	}
	ok, failed, unhealthy, firstErr := loop.stop()
	t.Logf("%d stalled imports: %v; meanwhile %d searches answered, %d failed (first: %v), %d health checks not SERVING",
		stalled, got, ok, failed, firstErr, unhealthy)
	if want := (map[codes.Code]int{codes.ResourceExhausted: stalled - concurrent, codes.DeadlineExceeded: concurrent}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stalled imports ended with %v, want %v", got, want)
	}
	if failed != 0 || unhealthy != 0 || ok == 0 {
		t.Errorf("searches: %d answered, %d failed (first: %v), %d health checks not SERVING; want none failed", ok, failed, firstErr, unhealthy)
	}
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("stalled imports stored something: %s -> %s", before, after)
	}
}

// watchHandlers counts the health Watch streams the server is serving.
func watchHandlers() int {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "health.(*Server).Watch(")
}

func TestThousandsOfStreamsOnOneConnectionStarveNoOtherClient(t *testing.T) {
	t.Parallel()
	const streams, limit = 2000, 50
	ts := servertest.Start(t, map[string]string{"GRPC_MAX_CONCURRENT_STREAMS": fmt.Sprint(limit), "DATABASE_URL": servertest.FixtureDB(t)}, true)
	loop := startProbeLoop(t, ts.Addr)

	conn, err := grpc.NewClient(ts.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Health Watch streams stay open until the client goes: the hostile
	// client opens thousands and never ends one.
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return
			}
			for {
				if _, err := w.Recv(); err != nil {
					return
				}
			}
		}()
	}
	servertest.Eventually(t, time.Minute, fmt.Sprintf("%d open Watch streams", limit), func() bool { return watchHandlers() == limit })
	maxSeen := 0
	for okBefore := loop.searches.OK.Load(); loop.searches.OK.Load() < okBefore+50; {
		maxSeen = max(maxSeen, watchHandlers())
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	servertest.Eventually(t, time.Minute, "the Watch streams to end", func() bool { return watchHandlers() == 0 })
	ok, failed, unhealthy, firstErr := loop.stop()
	t.Logf("%d streams asked for on one connection: at most %d served at once; meanwhile %d searches answered, %d failed, %d health checks not SERVING",
		streams, maxSeen, ok, failed, unhealthy)
	if maxSeen > limit {
		t.Errorf("the server served %d streams of one connection at once, over its limit of %d", maxSeen, limit)
	}
	if failed != 0 || unhealthy != 0 {
		t.Errorf("other clients: %d searches failed (first: %v), %d health checks not SERVING; want none", failed, firstErr, unhealthy)
	}
}

func TestATransientDatabaseFaultEndsTheImportWhole(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	before := servertest.Fingerprint(t, ts.DBURL)
	stream, err := ts.Client.Import(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	raws := geotest.LoadRaw(t, "ne_50m_countries.geojson")
	send := func(from, to int) {
		for _, rf := range raws[from:to] {
			if err := stream.Send(&searchv1.ImportRequest{Name: rf.Name, GeometryGeojson: string(rf.GeometryJSON)}); err != nil {
				return // the server ended the stream; CloseAndRecv has its status
			}
		}
	}
	send(0, 200) // one whole batch: the server writes it into its transaction
	dbName := ts.DBURL[strings.LastIndex(ts.DBURL, "/")+1 : strings.Index(ts.DBURL, "?")]
	waitFor(t, "the import transaction to write", func(conn *pgx.Conn) bool { return writers(conn, dbName) > 0 }, ts.DBURL)
	conn := servertest.Connect(t, ts.DBURL)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`, dbName); err != nil {
		t.Fatal(err)
	}
	send(200, len(raws))
	_, err = stream.CloseAndRecv()
	if code := status.Code(err); code != codes.Unavailable && code != codes.Aborted {
		t.Errorf("import whose connection was terminated: %v, want a retryable code (Unavailable or Aborted)", err)
	}
	if after := servertest.Fingerprint(t, ts.DBURL); after != before {
		t.Errorf("an import cut by a database fault stored something: %s -> %s", before, after)
	}
	// The server goes on: the next import succeeds.
	servertest.ImportFixture(t, ts)
}

func TestCLIRejectsAFeatureWithArrayPropertiesAlone(t *testing.T) {
	t.Parallel()
	ts := servertest.Start(t, nil, true)
	sq := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	doc := `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"name":"a"},"geometry":` + sq + `},
		{"type":"Feature","properties":["b"],"geometry":` + sq + `},
		{"type":"Feature","properties":{"name":"c"},"geometry":{"type":"Point","coordinates":[0,0]}},
		{"type":"Feature","properties":{"name":"d"},"geometry":` + sq + `}]}`
	file := filepath.Join(t.TempDir(), "mixed.geojson")
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := ts.RunClient(t, "import", file)
	// The two stored features are committed: the import prints the token
	// that reads them back (its value is the database's WAL position).
	token := regexp.MustCompile(`(?m)^consistency token: [A-Za-z0-9_-]{12}\n`)
	if !token.MatchString(stdout) {
		t.Errorf("no consistency token line in:\n%s", stdout)
	}
	stdout = token.ReplaceAllString(stdout, "")
	want := `imported 2 features into default (0 repaired), rejected 2
  rejected feature 1 (): properties must be a JSON object or null, got an array
  rejected feature 2 (c): geometry type Point is not supported; want Polygon or MultiPolygon
`
	if code != 3 || stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %s\nwant exit 3 and:\n%s", code, stdout, stderr, want)
	}
}
