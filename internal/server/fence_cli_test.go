package server_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/kafka/kafkatest"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestTrackThroughTheClient: `search-client track` reads a CSV (and an
// NDJSON) track file and prints one event per line with device, type, seq,
// time and the thing's id, key and collection; a refused position is
// reported and exits 3; `search-client events` prints the same events from
// the topic.
func TestTrackThroughTheClient(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	dbURL := servertest.Cluster.NewDatabase(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	zones := []geo.Feature{geotest.Square("west", "w", nil, 0, 0, 10, 10), geotest.Square("east", "e", nil, 10, 0, 20, 10)}
	if _, err := postgis.NewSearchService(pool).Import(context.Background(), geo.ImportOptions{Collection: "zones"}, &geotest.Source{Features: zones}); err != nil {
		t.Fatal(err)
	}
	ts := servertest.Start(t, map[string]string{"DATABASE_URL": dbURL, "KAFKA_BROKERS": broker.Addr(), "FENCE_ENABLED": "true"}, true)
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "track.csv")
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(csvFile, `device,lat,lng,time
truck-1,5,5,2026-12-06T10:00:00Z
truck-1,5,15,2026-12-06T10:01:00Z
truck-1,5,15,2026-12-06T10:00:30Z
truck-1,95,15,2026-12-06T10:02:00Z
truck-1,5,25,2026-12-06T10:03:00Z
`)
	stdout, stderr, code := ts.RunClient(t, "track", "--collection", "zones", csvFile)
	if code != 3 || !strings.Contains(stderr, "position 4: INVALID_ARGUMENT: point.lat must be within [-90, 90], got 95") ||
		!strings.Contains(stderr, "tracked 5 positions: 4 events, 1 stale, 1 rejected") {
		t.Fatalf("track: exit %d, stderr:\n%s", code, stderr)
	}
	type line struct {
		Device, Type, Key, Collection string
		Seq, ID                       int64
		Time                          time.Time
	}
	parse := func(out string) []line {
		var lines []line
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e line
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			e.ID = 0 // ids are the store's
			lines = append(lines, e)
		}
		return lines
	}
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	want := []line{
		{"truck-1", "enter", "w", "zones", 1, 0, at("2026-12-06T10:00:00Z")},
		{"truck-1", "exit", "w", "zones", 2, 0, at("2026-12-06T10:01:00Z")},
		{"truck-1", "enter", "e", "zones", 3, 0, at("2026-12-06T10:01:00Z")},
		{"truck-1", "exit", "e", "zones", 4, 0, at("2026-12-06T10:03:00Z")},
	}
	if diff := cmp.Diff(want, parse(stdout)); diff != "" {
		t.Fatalf("track's events (-want +got):\n%s", diff)
	}
	ndjson := filepath.Join(dir, "track.ndjson")
	write(ndjson, `{"device":"van-2","lat":5,"lng":12,"time":"2026-12-06T10:00:00Z"}`+"\n")
	stdout, stderr, code = ts.RunClient(t, "track", "--collection", "zones", ndjson)
	if code != 0 || !strings.Contains(stdout, `"device":"van-2","type":"enter","seq":1`) {
		t.Fatalf("track NDJSON: exit %d\n%s\n%s", code, stdout, stderr)
	}
	waitUntil(t, "every event relayed", time.Minute, func() bool { return dbCount(t, dbURL, `SELECT count(*) FROM fence_outbox`) == 0 })
	stdout, stderr, code = ts.RunClient(t, "events", "--brokers", broker.Addr())
	if code != 0 {
		t.Fatalf("events: exit %d: %s", code, stderr)
	}
	var trucks []line
	for _, l := range parse(stdout) {
		if l.Device == "truck-1" {
			trucks = append(trucks, l)
		}
	}
	if diff := cmp.Diff(want, trucks); diff != "" || !strings.Contains(stdout, `"van-2"`) {
		t.Fatalf("events (-want +got):\n%s\n%s", diff, stdout)
	}
}
