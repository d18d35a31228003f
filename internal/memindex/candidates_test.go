package memindex

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/golang/geo/r1"
	"github.com/golang/geo/s1"
	"github.com/golang/geo/s2"
	"github.com/tidwall/rtree"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// The spatial index that finds candidate polygons was chosen by this
// benchmark: an R-tree (github.com/tidwall/rtree) against a cell cover
// (github.com/golang/geo's S2 RegionCoverer over each polygon's box, cells
// in a map, a point looked up at every level in use), on the boxes the
// index holds (each polygon of the 1:10m countries, and a 100,000-cell
// grid). Both answer the same candidates (checked); the box test after the
// lookup is the same for both and included.

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

type candidateIndex interface {
	search(lng, lat float64, dst []int32) []int32
}

type rtreeCandidates struct {
	tree  rtree.RTreeG[int32]
	boxes []box
}

func newRtreeCandidates(boxes []box) *rtreeCandidates {
	c := &rtreeCandidates{boxes: boxes}
	for i, b := range boxes {
		c.tree.Insert([2]float64{b.minX, b.minY}, [2]float64{b.maxX, b.maxY}, int32(i))
	}
	return c
}

func (c *rtreeCandidates) search(lng, lat float64, dst []int32) []int32 {
	c.tree.Search([2]float64{lng, lat}, [2]float64{lng, lat}, func(_, _ [2]float64, i int32) bool {
		dst = append(dst, i)
		return true
	})
	return dst
}

type s2Candidates struct {
	cells  map[s2.CellID][]int32
	levels []int // levels that hold cells, finest first
	boxes  []box
}

func newS2Candidates(boxes []box) *s2Candidates {
	c := &s2Candidates{cells: map[s2.CellID][]int32{}, boxes: boxes}
	coverer := &s2.RegionCoverer{MinLevel: 0, MaxLevel: 20, LevelMod: 1, MaxCells: 8}
	used := map[int]bool{}
	for i, b := range boxes {
		// The box widened by 1e-7 degrees: far more than the rounding of
		// a point's conversion to a cell (about 1e-15 radians).
		const pad = 1e-7
		rad := func(d float64) float64 { return d * math.Pi / 180 }
		rect := s2.Rect{
			Lat: r1.Interval{Lo: rad(max(b.minY-pad, -90)), Hi: rad(min(b.maxY+pad, 90))},
			Lng: s1.IntervalFromEndpoints(rad(max(b.minX-pad, -180)), rad(min(b.maxX+pad, 180))),
		}
		for _, id := range coverer.Covering(rect) {
			c.cells[id] = append(c.cells[id], int32(i))
			used[id.Level()] = true
		}
	}
	for l := 30; l >= 0; l-- {
		if used[l] {
			c.levels = append(c.levels, l)
		}
	}
	return c
}

func (c *s2Candidates) search(lng, lat float64, dst []int32) []int32 {
	leaf := s2.CellIDFromLatLng(s2.LatLngFromDegrees(lat, lng))
	for _, l := range c.levels {
		for _, i := range c.cells[leaf.Parent(l)] {
			b := c.boxes[i]
			if lng >= b.minX && lng <= b.maxX && lat >= b.minY && lat <= b.maxY {
				dst = append(dst, i)
			}
		}
	}
	return dst
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
		builders := []struct {
			name  string
			build func([]box) candidateIndex
		}{
			{"tidwall-rtree", func(bx []box) candidateIndex { return newRtreeCandidates(bx) }},
			{"s2-cellcover", func(bx []box) candidateIndex { return newS2Candidates(bx) }},
		}
		// Both must find the same candidates.
		rt, cc := newRtreeCandidates(boxes), newS2Candidates(boxes)
		for _, p := range pts[:2000] {
			a, c := rt.search(p[0], p[1], nil), cc.search(p[0], p[1], nil)
			if len(a) != len(c) {
				b.Fatalf("%s: point %v: rtree %d candidates, s2 %d", name, p, len(a), len(c))
			}
		}
		for _, bl := range builders {
			b.Run(fmt.Sprintf("%s/%s/lookup", name, bl.name), func(b *testing.B) {
				ix := bl.build(boxes)
				var buf [16]int32
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					p := pts[i&(len(pts)-1)]
					_ = ix.search(p[0], p[1], buf[:0])
				}
			})
			b.Run(fmt.Sprintf("%s/%s/build", name, bl.name), func(b *testing.B) {
				var before, after runtime.MemStats
				var ix candidateIndex
				for b.Loop() {
					runtime.GC()
					runtime.ReadMemStats(&before)
					ix = bl.build(boxes)
					runtime.GC()
					runtime.ReadMemStats(&after)
				}
				runtime.KeepAlive(ix)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(boxes)), "bytes/box")
			})
		}
	}
}
