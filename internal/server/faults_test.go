package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestPostgresRestartUnderLoad stops PostgreSQL (fast shutdown) while a
// client searches in a loop, then starts it again: while it is down every
// failure is UNAVAILABLE (never INTERNAL; a hang past the call's 2 s
// deadline would show as DEADLINE_EXCEEDED) and health is NOT_SERVING; afterwards everything recovers on its
// own and no call fails on a dead pooled connection.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	own := servertest.OwnCluster(t)
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": own.NewDatabase(t), "DB_CONNECT_TIMEOUT": "1s"}, true)
	servertest.ImportFixture(t, ts)

	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	var slowest time.Duration
	search := func() error {
		start := time.Now()
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := ts.Client.Search(cctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 48.85, Lng: 2.35}})
		mu.Lock()
		codesSeen[status.Code(err)]++
		slowest = max(slowest, time.Since(start))
		mu.Unlock()
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = search()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	own.Stop()
	ts.WaitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	time.Sleep(time.Second)
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)
	servertest.Eventually(t, 10*time.Second, "searches to succeed again", func() bool { return search() == nil })
	close(stop)
	wg.Wait()

	mu.Lock()
	t.Logf("codes during the restart: %v; slowest call %s", codesSeen, slowest)
	for code, n := range codesSeen {
		if code != codes.OK && code != codes.Unavailable {
			t.Errorf("%d calls failed with %s; a database outage must be UNAVAILABLE", n, code)
		}
	}
	if codesSeen[codes.Unavailable] == 0 {
		t.Error("no call saw the outage: the test proved nothing")
	}
	mu.Unlock()

	// Recovered: the pool holds no dead connections, so nothing fails now.
	for i := range 50 {
		if err := search(); err != nil {
			t.Fatalf("search %d after recovery: %v", i, err)
		}
	}
}

// TestPostgresStopDuringImport stops PostgreSQL while an import is writing:
// the client gets an error; after recovery no feature is half there (a
// thing without its parts), and as an import is one transaction, none is
// there at all; running the keyed import again, twice, stores exactly one
// copy of each feature.
func TestPostgresStopDuringImport(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	own := servertest.OwnCluster(t)
	dbURL := own.NewDatabase(t)
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": dbURL, "DB_CONNECT_TIMEOUT": "1s"}, true)
	features := geotest.LoadRaw(t, "ne_50m_countries.geojson")

	stream, err := ts.Client.Import(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		for _, rf := range features {
			if err := stream.Send(&searchv1.ImportRequest{Name: rf.Name, Key: rf.Name, GeometryGeojson: string(rf.GeometryJSON)}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	dbName := dbURL[strings.LastIndex(dbURL, "/")+1 : strings.Index(dbURL, "?")]
	waitFor(t, "the import transaction to write", func(conn *pgx.Conn) bool { return writers(conn, dbName) > 0 }, dbURL)
	own.Stop()
	<-sent
	if _, err := stream.CloseAndRecv(); err == nil {
		t.Fatal("the import succeeded although the database stopped under it")
	} else {
		t.Logf("the client got: %v", err)
	}
	if err := own.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts.WaitHealth(t, healthpb.HealthCheckResponse_SERVING)

	count := func() (things, withoutParts int) {
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT EXISTS
			(SELECT 1 FROM thing_part p WHERE p.thing_id = thing.id)) FROM thing`).Scan(&things, &withoutParts); err != nil {
			t.Fatal(err)
		}
		return things, withoutParts
	}
	if things, half := count(); things != 0 || half != 0 {
		t.Errorf("after the interrupted import: %d things, %d without parts; want none", things, half)
	}
	for range 2 {
		out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--key-property", "name")
		if code != 0 {
			t.Fatalf("import again: %s%s", out, errOut)
		}
	}
	if things, half := count(); things != len(features) || half != 0 {
		t.Errorf("after importing twice: %d things, %d without parts; want exactly %d", things, half, len(features))
	}
}
