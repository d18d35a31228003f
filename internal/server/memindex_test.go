package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/geosearch/search/internal/postgis/postgistest"
	"github.com/geosearch/search/internal/server/servertest"
	"github.com/geosearch/search/internal/statsd/statsdtest"
	searchv1 "github.com/geosearch/search/proto/search/v1"
)

// waitInMemory waits until Monitor says collection is in memory (or, with
// want false, known and not in memory) and returns its entry.
func waitInMemory(t *testing.T, ts *servertest.Server, collection string, want bool) *searchv1.MemoryIndex {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := ts.Client.Monitor(context.Background(), &searchv1.MonitorRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.GetMemoryIndexes() {
			if m.GetCollection() == collection && m.GetInMemory() == want {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Monitor never said %s in memory = %v: %v", collection, want, resp.GetMemoryIndexes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitThings waits, within, until Monitor says collection is in memory
// with n things: "default" is in memory, empty, from the start (the
// migrations make it), before an import's refresh is published.
func waitThings(t *testing.T, ts *servertest.Server, collection string, n int64, within time.Duration) *searchv1.MemoryIndex {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := waitInMemory(t, ts, collection, true)
		if m.GetThings() == n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("Monitor never said %s holds %d things in memory: %v", collection, n, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func findParis(t *testing.T, ts *servertest.Server) {
	t.Helper()
	if err := servertest.SearchParis(ts.Client, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryIndexThroughTheServer: a server loads the imported collection
// in the background, says so in Monitor and in gauges, counts searches
// answered from memory; a second instance on the same database answers at
// once, from the database, then loads; one with a budget too small keeps
// the collection on the database and answers the same.
func TestMemoryIndexThroughTheServer(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	ts := servertest.Start(t, map[string]string{
		"MEMINDEX":               "on",
		"MEMINDEX_POLL_INTERVAL": "50ms",
		"STATSD_ADDR":            l.Addr(),
		"STATSD_FLUSH_INTERVAL":  "20ms",
		"STATSD_GAUGE_INTERVAL":  "100ms",
	}, true)
	servertest.ImportFixture(t, ts)
	m := waitThings(t, ts, "default", 177, 30*time.Second)
	if m.GetBytes() == 0 || m.GetVertices() == 0 || m.GetLsn() == "" || m.GetSnapshot() == "" || m.GetUpdatedAt() == nil {
		t.Errorf("Monitor: %v", m)
	}
	// Searches are answered from memory, and counted so. Eventually: one
	// that comes while the lease is being renewed (a heartbeat late on a
	// loaded machine) is answered by the database, as it must be.
	const p = "search-service."
	servertest.Eventually(t, 30*time.Second, "a search answered from memory, counted", func() bool {
		findParis(t, ts)
		sum, _ := l.Sum(p+"memindex.memory.all", "c")
		return sum >= 1
	})
	l.WaitSeen(t, p+"memindex.default.bytes", "g")
	l.WaitSeen(t, p+"memindex.default.in_memory", "g")

	again := servertest.Start(t, map[string]string{"DATABASE_URL": ts.DBURL, "MEMINDEX": "on"}, true)
	findParis(t, again) // at once: from the database or from memory, the same
	waitInMemory(t, again, "default", true)
	findParis(t, again)

	small := servertest.Start(t, map[string]string{"DATABASE_URL": ts.DBURL, "MEMINDEX": "on", "MEMINDEX_BUDGET_BYTES": "100000"}, true)
	if m := waitInMemory(t, small, "default", false); m.GetReason() == "" || m.GetBytes() != 0 {
		t.Errorf("over the budget: %v", m)
	}
	findParis(t, small)
}

// TestMemoryIndexOnAHotStandby: an instance reading from a hot standby
// builds its index there: what is imported on the primary reaches memory
// once the standby has replayed it.
func TestMemoryIndexOnAHotStandby(t *testing.T) {
	t.Parallel()
	dbs := postgistest.StartReplicatedT(t)
	primaryURL, standbyURL := dbs.NewDatabase(t)
	ts := servertest.Start(t, map[string]string{
		"DATABASE_URL": standbyURL, "DATABASE_WRITE_URL": primaryURL,
		"MEMINDEX": "on", "MEMINDEX_POLL_INTERVAL": "50ms",
	}, true)
	servertest.ImportFixture(t, ts)                   // through the primary
	waitThings(t, ts, "default", 177, 60*time.Second) // the standby's index holds the import
	findParis(t, ts)
}

// TestAnotherInstanceReadsTheWriteAtOnce: two instances with the index on,
// on one database: after each import or delete through one returns, a
// search without a token through the other sees it, and the other answers
// from memory (the lease, docs/INDEX.md).
func TestAnotherInstanceReadsTheWriteAtOnce(t *testing.T) {
	t.Parallel()
	l := statsdtest.Listen(t)
	ts := servertest.Start(t, map[string]string{"MEMINDEX": "on"}, true)
	other := servertest.Start(t, map[string]string{
		"DATABASE_URL": ts.DBURL, "MEMINDEX": "on",
		"STATSD_ADDR": l.Addr(), "STATSD_FLUSH_INTERVAL": "20ms",
	}, true)
	ctx := context.Background()
	search := func(x float64) int {
		t.Helper()
		resp, err := other.Client.Search(ctx, &searchv1.SearchRequest{Point: &searchv1.Point{Lat: 0.5, Lng: x}, Collections: []string{"lease"}})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetThings())
	}
	const memory = "search-service.memindex.memory.lease"
	importSquare := func(i int) {
		t.Helper()
		x := float64(i * 2)
		stream, err := ts.Client.Import(ctx)
		if err != nil {
			t.Fatal(err)
		}
		square := fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%[1]g,0],[%[2]g,0],[%[2]g,1],[%[1]g,1],[%[1]g,0]]]}`, x, x+1)
		if err := stream.Send(&searchv1.ImportRequest{Name: fmt.Sprint("s", i), Key: fmt.Sprint(i), GeometryGeojson: square,
			Options: &searchv1.ImportOptions{Collection: "lease"}}); err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.CloseAndRecv(); err != nil || resp.GetImported() != 1 {
			t.Fatalf("import %d: %v %v", i, resp, err)
		}
	}
	// Once the other instance answers from memory (its index loaded, its
	// lease held), every write through ts must reach it before returning.
	importSquare(50)
	servertest.Eventually(t, 30*time.Second, "the other instance answers from memory", func() bool {
		search(100.5)
		sum, _ := l.Sum(memory, "c")
		return sum > 0
	})
	before, _ := l.Sum(memory, "c")
	for i := range 10 {
		x := float64(i * 2)
		importSquare(i)
		if n := search(x + 0.5); n != 1 {
			t.Fatalf("after import %d the other instance found %d things, want 1", i, n)
		}
		if i%2 == 1 {
			if _, err := ts.Client.DeleteThings(ctx, &searchv1.DeleteThingsRequest{Collection: "lease", Keys: []string{fmt.Sprint(i)}}); err != nil {
				t.Fatal(err)
			}
			if n := search(x + 0.5); n != 0 {
				t.Fatalf("after delete %d the other instance found %d things, want 0", i, n)
			}
		}
	}
	servertest.Eventually(t, 10*time.Second, "memory answers counted during the writes", func() bool {
		sum, _ := l.Sum(memory, "c")
		return sum > before
	})
}
