package memindex_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// BenchmarkFollowUnderImportLoad measures how far an instance's index
// lags behind writes of another instance (no token) under a steady import
// load: the 1:50m (or 1:10m) countries are in memory, a background writer imports a
// feature into them every 100 ms, and each iteration imports a square at
// a point of its own (straight to the store, as another instance) and
// waits until a search through the index finds it (polling every 250 ms,
// the default). ns/op is that lag;
// p50-ms and max-ms are reported too. The target: within a second.
func BenchmarkFollowUnderImportLoad(b *testing.B) {
	for _, file := range []string{"ne_50m_countries.geojson", "ne_10m_countries.geojson.gz"} {
		b.Run(file, func(b *testing.B) { followUnderLoad(b, file) })
	}
}

func followUnderLoad(b *testing.B, file string) {
	store, _ := newService(b)
	// The 1:10m Vatican collapses on import and is reported, not stored.
	if _, err := store.Import(context.Background(), geo.ImportOptions{Collection: "countries"}, &geotest.Source{Features: geotest.Load(b, file)}); err != nil {
		b.Fatal(err)
	}
	cfg := onConfig(1 << 30)
	cfg.PollInterval = 250 * time.Millisecond // the default
	mem, reg, c := indexed(b, store, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reg.Run(ctx)
	for deadline := time.Now().Add(5 * time.Minute); len(reg.Status()) == 0 || !reg.Status()[0].InMemory; {
		if time.Now().After(deadline) {
			b.Fatalf("not loaded: %+v", reg.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the steady load
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			sq := geotest.Square(fmt.Sprintf("load-%d", i), "", nil, -170, -80, -169, -79)
			_, _ = store.Import(ctx, geo.ImportOptions{Collection: "countries"}, &geotest.Source{Features: []geo.Feature{sq}})
		}
	}()
	var lags []time.Duration
	b.ResetTimer()
	for i := range b.N {
		x := -150 + float64(i%300)
		name := fmt.Sprintf("probe-%d", i)
		importInto(b, store, "countries", false, geotest.Square(name, "", nil, x, -60, x+0.5, -59.5))
		wrote := time.Now()
		q := geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: -59.75, Lng: x + 0.25}, Collections: []string{"countries"}}, Limit: 100}
		for deadline := wrote.Add(30 * time.Second); ; {
			page, err := mem.Search(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if hasName(page.Things, name) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s not found 30 s after its import", name)
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(wrote))
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if c.sum("database") > 0 {
		b.Fatalf("%d searches went to the database: the lag measured is not the index's", c.sum("database"))
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Milliseconds()), "max-ms")
}
