package postgis_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

// BenchmarkReplicationLag imports into the primary while a Replica
// measures the standby's lag every 50 ms, as readiness would (max-lag-ms),
// and after each import waits for its consistency position on the standby
// (visible-ms: from the import's return to the standby having replayed it).
// One op is one import, each replacing the collection.
func BenchmarkReplicationLag(b *testing.B) {
	for _, fixture := range []struct {
		name     string
		features func() []geo.Feature
	}{
		{"countries 1:10m", func() []geo.Feature { return geotest.Load(b, "ne_10m_countries.geojson.gz") }},
		{"grid 100k", func() []geo.Feature { return grid(316, nil) }}, // 99,856 cells
	} {
		b.Run(fixture.name, func(b *testing.B) {
			features := fixture.features()
			r := newReplicated(b, time.Minute)
			ctx := context.Background()
			eventually(b, "standby ready", func() error { return r.replica.Ping(ctx) })
			var maxLag, visible time.Duration
			for b.Loop() {
				stop := make(chan struct{})
				var wg sync.WaitGroup
				var lag time.Duration
				wg.Add(1)
				go func() {
					defer wg.Done()
					t := time.NewTicker(50 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-stop:
							return
						case <-t.C:
							_ = r.replica.Ping(ctx)
							lag = max(lag, r.replica.LastLag())
						}
					}
				}()
				if _, err := r.svc.Import(ctx, geo.ImportOptions{Collection: "bench", Replace: true}, &geotest.Source{Features: features}); err != nil {
					b.Fatal(err)
				}
				done := time.Now()
				if err := r.replica.WaitFor(ctx, r.token(b)); err != nil {
					b.Fatal(err)
				}
				visible = max(visible, time.Since(done))
				close(stop)
				wg.Wait()
				maxLag = max(maxLag, lag)
			}
			b.ReportMetric(float64(maxLag.Milliseconds()), "max-lag-ms")
			b.ReportMetric(float64(visible.Microseconds())/1000, "visible-ms")
		})
	}
}

// BenchmarkStandbySearch: point searches of the 1:10m countries on the
// primary and on its standby (each op one search, RunParallel at 4 per
// CPU), and on the standby with a consistency position it has replayed
// (the cost of one more round trip).
func BenchmarkStandbySearch(b *testing.B) {
	r := newReplicated(b, time.Minute)
	ctx := context.Background()
	if _, err := r.svc.Import(ctx, geo.ImportOptions{}, &geotest.Source{Features: geotest.Load(b, "ne_10m_countries.geojson.gz")}); err != nil {
		b.Fatal(err)
	}
	tok := r.token(b)
	if err := r.replica.WaitFor(ctx, tok); err != nil {
		b.Fatal(err)
	}
	pool, err := postgis.Open(ctx, postgis.Config{URL: r.primary, MaxConns: 8, MaxWriteConns: 1}, "bench", postgis.NewStatementTimeout(0))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	onPrimary := postgis.NewSearchService(pool)
	pts := make([]geo.Point, 10000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pts {
		pts[i] = geo.Point{Lat: rng.Float64()*140 - 60, Lng: rng.Float64()*360 - 180}
	}
	for _, c := range []struct {
		name string
		svc  *postgis.SearchService
		wait bool
	}{{"primary", onPrimary, false}, {"standby", r.svc, false}, {"standby with token", r.svc, true}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(pts))
				for pb.Next() {
					if c.wait {
						if err := r.replica.WaitFor(ctx, tok); err != nil {
							b.Fatal(err)
						}
					}
					p := pts[i%len(pts)]
					i++
					if _, err := c.svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &p}, Limit: 50}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
