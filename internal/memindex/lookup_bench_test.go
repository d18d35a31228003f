package memindex

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo/geotest"
)

// BenchmarkLookupCountries is BenchmarkLookup's memory half without a
// database: the 1:10m countries indexed from the GeoJSON file, random
// points over the globe.
func BenchmarkLookupCountries(b *testing.B) {
	features := geotest.Load(b, "ne_10m_countries.geojson.gz")
	things := make([]Thing, len(features))
	for i, f := range features {
		things[i] = Thing{ID: int64(i + 1), Geometry: f.Geometry}
	}
	ix, err := Build(Version{}, things)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	pts := make([][2]float64, 1<<16)
	for i := range pts {
		pts[i] = [2]float64{rng.Float64()*360 - 180, rng.Float64()*180 - 90}
	}
	var buf [8]int64
	b.ReportAllocs()
	cpu0 := threadCPU(b)
	for i := 0; b.Loop(); i++ {
		p := pts[i&(len(pts)-1)]
		if _, certain := ix.Lookup(buf[:0], p[0], p[1]); !certain {
			b.Fatalf("point %v left to PostGIS", p)
		}
	}
	b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// threadCPU is the process's CPU time so far.
func threadCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
