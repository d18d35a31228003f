package memindex

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// The candidate finder (cells.go, golang/geo's s2.CellIndex) against the
// truth, a scan of every box: it must find exactly the boxes that hold a
// point, on the boxes the index holds (each polygon of the 1:10m
// countries, and a 100,000-cell grid), including points on and 1e-9
// degrees either side of box edges. BenchmarkCandidateIndex measures its
// lookups and its build (docs/INDEX.md, "Library choice").

type box struct{ minX, minY, maxX, maxY float64 }

func polygonBoxes(tb testing.TB, features []geo.Feature) []box {
	tb.Helper()
	var out []box
	for _, f := range features {
		mp := f.Geometry
		for i := range mp.NumPolygons() {
			b := mp.Polygon(i).Bounds()
			out = append(out, box{b.Min(0) - pruneMargin, b.Min(1), b.Max(0), b.Max(1)})
		}
	}
	return out
}

func gridBoxes(rows int) []box {
	cols := 2 * rows
	w, h := 360/float64(cols), 180/float64(rows)
	var out []box
	for r := range rows {
		for c := range cols {
			x0, y0 := -180+float64(c)*w, -90+float64(r)*h
			out = append(out, box{x0 - pruneMargin, y0, x0 + w, y0 + h})
		}
	}
	return out
}

type scanCandidates struct{ boxes []box }

func (c scanCandidates) search(lng, lat float64, dst []int32) []int32 {
	for i, b := range c.boxes {
		if lng >= b.minX && lng <= b.maxX && lat >= b.minY && lat <= b.maxY {
			dst = append(dst, int32(i))
		}
	}
	return dst
}

type cellCoverCandidates struct{ c cellCover }

func newCellCoverCandidates(boxes []box) *cellCoverCandidates {
	cc := &cellCoverCandidates{}
	for i, b := range boxes {
		cc.c.add(b.minX, b.minY, b.maxX, b.maxY, int32(i))
	}
	cc.c.build()
	return cc
}

func (cc *cellCoverCandidates) search(lng, lat float64, dst []int32) []int32 {
	return cc.c.search(lng, lat, dst)
}

// edgePoints are random points plus, for some boxes, their corners and
// points on, just inside and just outside their edges.
func edgePoints(boxes []box, n int) [][2]float64 {
	rng := rand.New(rand.NewPCG(3, 4))
	pts := make([][2]float64, 0, n)
	for len(pts) < n/2 {
		pts = append(pts, [2]float64{rng.Float64()*360 - 180, rng.Float64()*180 - 90})
	}
	for len(pts) < n {
		b := boxes[rng.IntN(len(boxes))]
		mx, my := (b.minX+b.maxX)/2, (b.minY+b.maxY)/2
		for _, d := range []float64{0, 1e-9, -1e-9} {
			pts = append(pts,
				[2]float64{b.minX + d, my}, [2]float64{b.maxX + d, my},
				[2]float64{mx, b.minY + d}, [2]float64{mx, b.maxY + d},
				[2]float64{b.minX + d, b.minY + d}, [2]float64{b.maxX + d, b.maxY + d})
		}
	}
	return pts
}

func TestCellCoverFindsExactlyTheBoxesHoldingAPoint(t *testing.T) {
	sets := map[string][]box{
		"countries": polygonBoxes(t, geotest.Load(t, "ne_10m_countries.geojson.gz")),
		"grid":      gridBoxes(40),
		"edges": {{-180, -90, 180, 90}, {-180, 89.9, 180, 90}, {179.9, -10, 180, 10},
			{-180, -10, -179.9, 10}, {0, 0, 0, 0}, {10, 10, 10, 20}, {-1e-9, -1e-9, 1e-9, 1e-9}},
	}
	for name, boxes := range sets {
		scan, cover := scanCandidates{boxes}, newCellCoverCandidates(boxes)
		pts := edgePoints(boxes, 20000)
		pts = append(pts, [2]float64{180, 90}, [2]float64{-180, -90}, [2]float64{180, 0}, [2]float64{-180, 0})
		for _, p := range pts {
			want := scan.search(p[0], p[1], nil)
			got := cover.search(p[0], p[1], nil)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: point %v: cover finds %v, the scan %v", name, p, got, want)
			}
		}
	}
}

func benchmarkSets(b *testing.B) map[string][]box {
	return map[string][]box{
		"countries": polygonBoxes(b, geotest.Load(b, "ne_10m_countries.geojson.gz")),
		"grid100k":  gridBoxes(224),
	}
}

func BenchmarkCandidateIndex(b *testing.B) {
	for name, boxes := range benchmarkSets(b) {
		rng := rand.New(rand.NewPCG(1, 2))
		pts := make([][2]float64, 1<<14)
		for i := range pts {
			pts[i] = [2]float64{rng.Float64()*360 - 180, rng.Float64()*180 - 90}
		}
		b.Run(name+"/lookup", func(b *testing.B) {
			ix := newCellCoverCandidates(boxes)
			var buf [16]int32
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := pts[i&(len(pts)-1)]
				_ = ix.search(p[0], p[1], buf[:0])
			}
		})
		b.Run(name+"/build", func(b *testing.B) {
			var before, after runtime.MemStats
			var ix *cellCoverCandidates
			for b.Loop() {
				runtime.GC()
				runtime.ReadMemStats(&before)
				ix = newCellCoverCandidates(boxes)
				runtime.GC()
				runtime.ReadMemStats(&after)
			}
			runtime.KeepAlive(ix)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(boxes)), "bytes/box")
			b.ReportMetric(float64(ix.c.bytes())/float64(len(boxes)), "estimated-bytes/box")
		})
	}
}
