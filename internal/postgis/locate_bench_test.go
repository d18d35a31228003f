package postgis_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// BenchmarkLocate compares one Locate statement per batch of points with
// one Search statement per point, on the 1:50m countries, per point
// (ns/op is per point in every sub-benchmark). Timings belong here and in
// make bench, never in tests.
func BenchmarkLocate(b *testing.B) {
	svc, _ := newService(b)
	ctx := context.Background()
	if _, err := svc.Import(ctx, geo.ImportOptions{}, &geotest.Source{Features: geotest.Load(b, "ne_50m_countries.geojson")}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	pts := make([]geo.Point, 10000)
	for i := range pts {
		pts[i] = geo.Point{Lat: rng.Float64()*140 - 60, Lng: rng.Float64()*360 - 180}
	}
	b.Run("search per point", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			p := pts[i%len(pts)]
			if _, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &p}, Limit: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, size := range []int{1, 100, 500} {
		b.Run("locate batch "+itoa(size), func(b *testing.B) {
			n := 0
			for b.Loop() {
				start := (n * size) % (len(pts) - size)
				if _, err := svc.Locate(ctx, geo.LocateQuery{Points: pts[start : start+size], Limit: 50}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*size), "ns/point")
		})
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// BenchmarkNearest measures nearest searches (a point and max_distance_m)
// and area searches on the 1:50m countries, per search, and Locate with a
// distance per point.
func BenchmarkNearest(b *testing.B) {
	svc, _ := newService(b)
	ctx := context.Background()
	if _, err := svc.Import(ctx, geo.ImportOptions{}, &geotest.Source{Features: geotest.Load(b, "ne_50m_countries.geojson")}); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 7))
	pts := make([]geo.Point, 10000)
	for i := range pts {
		pts[i] = geo.Point{Lat: rng.Float64()*140 - 60, Lng: rng.Float64()*360 - 180}
	}
	b.Run("contains (no distance)", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			p := pts[i%len(pts)]
			if _, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &p}, Limit: 50}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, d := range []float64{1_000, 50_000, 300_000} {
		b.Run("search within "+itoa(int(d/1000))+" km", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p := pts[i%len(pts)]
				if _, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &p, MaxDistanceM: d}, Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("locate batch 100 within 50 km", func(b *testing.B) {
		n := 0
		for b.Loop() {
			start := (n * 100) % (len(pts) - 100)
			if _, err := svc.Locate(ctx, geo.LocateQuery{Filter: geo.Filter{MaxDistanceM: 50_000}, Points: pts[start : start+100], Limit: 50}); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*100), "ns/point")
	})
	for _, size := range []float64{1, 10} {
		b.Run("bbox "+itoa(int(size))+" degrees", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p := pts[i%len(pts)]
				bb := geo.BBox{MinLng: p.Lng, MinLat: p.Lat, MaxLng: min(180, p.Lng+size), MaxLat: min(90, p.Lat+size)}
				if _, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{BBox: &bb}, Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("bbox "+itoa(int(size))+" degrees within", func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				p := pts[i%len(pts)]
				bb := geo.BBox{MinLng: p.Lng, MinLat: p.Lat, MaxLng: min(180, p.Lng+size), MaxLat: min(90, p.Lat+size)}
				if _, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{BBox: &bb, Relation: geo.Within}, Limit: 50}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
