package postgis_test

import (
	"context"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

// BenchmarkTrack measures geofencing against 10,000 polygons (a 100 × 100
// grid of cells): positions per second through the Tracker (Locate, then
// one transaction of states, outbox and offsets per batch of 1,000), and
// plain Locate of the same points in the same run, for the ratio. 1,000
// devices walk in steps that cross a cell about every other position, so
// states flip often (Tile38's slow case). Timings belong here and in make
// bench, never in tests.
func BenchmarkTrack(b *testing.B) {
	svc, pool := newService(b)
	ctx := context.Background()
	if _, err := svc.Import(ctx, geo.ImportOptions{Collection: "zones"}, &geotest.Source{Features: grid(100, nil)}); err != nil {
		b.Fatal(err)
	}
	tr := geo.NewTracker(svc, postgis.NewFenceStore(pool), time.Minute, nil)
	const batch = 1000
	// Position i of every device at time i: batches of 1,000 positions,
	// one per device, in time order.
	walks := geotest.Tracks(9, "zones", batch, 200, 2, time.Now().Add(-24*time.Hour))
	positions := make([]geo.Fix, 0, len(walks))
	for i := range 200 {
		for d := range batch {
			positions = append(positions, walks[d*200+i])
		}
	}
	points := make([]geo.Point, len(positions))
	for i, p := range positions {
		points[i] = p.Point
	}
	b.Run("locate", func(b *testing.B) {
		n := 0
		for b.Loop() {
			start := (n * batch) % len(points)
			q := geo.LocateQuery{Filter: geo.Filter{Collections: []string{"zones"}}, Points: points[start : start+batch], Limit: geo.MaxFenceThings + 1}
			if _, err := svc.Locate(ctx, q); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "positions/s")
	})
	// The cursor outlives a run of the sub-benchmark (the framework may run
	// it more than once): each round of all positions is 200 s later than
	// the one before, so no position is ever stale.
	next, round := 0, time.Duration(0)
	b.Run("track", func(b *testing.B) {
		n, events := 0, 0
		for b.Loop() {
			if next == len(positions) {
				next, round = 0, round+200*time.Second
			}
			fixes := append([]geo.Fix(nil), positions[next:next+batch]...)
			for i := range fixes {
				fixes[i].Time = fixes[i].Time.Add(round)
			}
			res, err := tr.Track(ctx, fixes, nil)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Stale || r.Err != nil {
					b.Fatalf("a benchmark position was stale (%v) or refused: %v", r.Stale, r.Err)
				}
				events += len(r.Events)
			}
			next += batch
			n++
		}
		b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "positions/s")
		b.ReportMetric(float64(events)/float64(n*batch), "events/position")
	})
}
