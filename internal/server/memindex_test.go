package server_test

import (
	"context"
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
	m := waitInMemory(t, ts, "default", true)
	if m.GetThings() != 177 || m.GetBytes() == 0 || m.GetVertices() == 0 || m.GetLsn() == "" || m.GetSnapshot() == "" || m.GetUpdatedAt() == nil {
		t.Errorf("Monitor: %v", m)
	}
	findParis(t, ts)
	const p = "search-service."
	l.WaitSum(t, p+"memindex.memory.all", "c", 1)
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
	servertest.ImportFixture(t, ts) // through the primary
	deadline := time.Now().Add(60 * time.Second)
	for m := waitInMemory(t, ts, "default", true); m.GetThings() != 177; m = waitInMemory(t, ts, "default", true) {
		if time.Now().After(deadline) {
			t.Fatalf("the standby's index never held the import: %v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}
	findParis(t, ts)
}
