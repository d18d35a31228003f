package memindex

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twpayne/go-geom"
)

// referenceContains is PostGIS 3.3's contains() for a multipolygon and a
// point transcribed without any index: the float box, then
// point_in_multipolygon over every polygon and every segment (the plain
// path, or the cached path's zero-length rule).
func referenceContains(mp *geom.MultiPolygon, px, py float64, v variant) bool {
	minX, minY := math.Inf(1), math.Inf(1)
	maxX, maxY := math.Inf(-1), math.Inf(-1)
	flat := mp.FlatCoords()
	for i := 0; i < len(flat); i += mp.Stride() {
		minX, maxX = min(minX, flat[i]), max(maxX, flat[i])
		minY, maxY = min(minY, flat[i+1]), max(maxY, flat[i+1])
	}
	if !newFloatBox(minX, minY, maxX, maxY).contains(px, py) {
		return false
	}
	pointInRing := func(r *geom.LinearRing) int {
		c := r.FlatCoords()
		s := r.Stride()
		wn := 0
		for i := 0; i+s < len(c); i += s {
			if segmentStep(c[i], c[i+1], c[i+s], c[i+s+1], px, py, v, &wn) {
				return 0
			}
		}
		if wn == 0 {
			return -1
		}
		return 1
	}
	result := -1
	for j := 0; j < mp.NumPolygons(); j++ {
		p := mp.Polygon(j)
		if p.NumLinearRings() == 0 {
			continue
		}
		in := pointInRing(p.LinearRing(0))
		if in == -1 {
			continue
		}
		if in == 0 {
			return false
		}
		result = in
		for i := 1; i < p.NumLinearRings(); i++ {
			in := pointInRing(p.LinearRing(i))
			if in == 1 {
				result = -1
				break
			}
			if in == 0 {
				return false
			}
		}
		if result != -1 {
			return result == 1
		}
	}
	return result == 1
}

func mpoly(t testing.TB, polys ...[][]geom.Coord) *geom.MultiPolygon {
	t.Helper()
	mp, err := geom.NewMultiPolygon(geom.XY).SetCoords(polys)
	if err != nil {
		t.Fatal(err)
	}
	return mp
}

func closed(coords ...float64) []geom.Coord {
	var r []geom.Coord
	for i := 0; i < len(coords); i += 2 {
		r = append(r, geom.Coord{coords[i], coords[i+1]})
	}
	return append(r, r[0])
}

func TestLookupKnownAnswers(t *testing.T) {
	t.Parallel()
	// A 10x10 square with a 2x2 hole, and a separate triangle.
	square := mpoly(t,
		[][]geom.Coord{closed(0, 0, 10, 0, 10, 10, 0, 10), closed(4, 4, 6, 4, 6, 6, 4, 6)},
		[][]geom.Coord{closed(20, 0, 30, 0, 25, 5)},
	)
	other := mpoly(t, [][]geom.Coord{closed(10, 0, 20, 0, 20, 10, 10, 10)})
	ix, err := Build(Version{}, []Thing{{ID: 1, Geometry: square}, {ID: 2, Geometry: other}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		lng, lat float64
		want     []int64
	}{
		{"inside", 1, 1, []int64{1}},
		{"in the hole", 5, 5, nil},
		{"on the hole's edge", 4, 5, nil},
		{"on the hole's vertex", 6, 6, nil},
		{"between hole and outline", 3, 5, []int64{1}},
		{"on the shared edge", 10, 5, nil},
		{"just right of the shared edge", 10 + 1e-9, 5, []int64{2}},
		{"just left of the shared edge", 10 - 1e-9, 5, []int64{1}},
		{"on an outer vertex", 0, 0, nil},
		{"on the bottom edge", 5, 0, nil},
		{"in the second polygon", 25, 1, []int64{1}},
		{"on the triangle's slanted edge", 22.5, 2.5, nil},
		{"outside everything", -1, -1, nil},
		{"far away", 100, 50, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, certain := ix.Lookup(nil, tt.lng, tt.lat)
			if !certain {
				t.Fatalf("Lookup(%v, %v) is not certain", tt.lng, tt.lat)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%v, %v) (-want +got):\n%s", tt.lng, tt.lat, diff)
			}
		})
	}
	if _, certain := ix.Lookup(nil, math.NaN(), 0); certain {
		t.Error("a NaN longitude is answered as certain")
	}
}

// randomPolygon is a star-shaped ring around (cx, cy) with n vertices on
// a grid of step, so that many test points fall exactly on vertices and
// edges, and some segments repeat a vertex.
func randomRing(rng *rand.Rand, cx, cy, radius float64, n int, step float64) []geom.Coord {
	var r []geom.Coord
	for i := range n {
		a := 2 * math.Pi * float64(i) / float64(n)
		d := radius * (0.3 + 0.7*rng.Float64())
		x := math.Round((cx+d*math.Cos(a))/step) * step
		y := math.Round((cy+d*math.Sin(a))/step) * step
		r = append(r, geom.Coord{x, y})
	}
	return append(r, r[0])
}

// TestLookupMatchesUnindexedArithmetic compares Lookup (cell cover, bands,
// pruning) with the same arithmetic run over every segment, on random
// shapes with holes and several polygons, at random points, every vertex,
// edge midpoints and points 1e-9 and 1e-13 either side of vertices.
func TestLookupMatchesUnindexedArithmetic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	var things []Thing
	var mps []*geom.MultiPolygon
	for id := range 30 {
		cx, cy := rng.Float64()*300-150, rng.Float64()*160-80
		var polys [][][]geom.Coord
		for p := range 1 + rng.IntN(3) {
			px, py := cx+float64(p)*7, cy
			n := 5 + rng.IntN(300)
			outer := randomRing(rng, px, py, 3, n, 0.01)
			poly := [][]geom.Coord{outer}
			if rng.IntN(2) == 0 {
				poly = append(poly, randomRing(rng, px, py, 0.8, 4+rng.IntN(60), 0.01))
			}
			polys = append(polys, poly)
		}
		mp := mpoly(t, polys...)
		mps = append(mps, mp)
		things = append(things, Thing{ID: int64(id), Geometry: mp})
	}
	ix, err := Build(Version{}, things)
	if err != nil {
		t.Fatal(err)
	}
	var pts [][2]float64
	for range 10000 {
		mp := mps[rng.IntN(len(mps))]
		b := mp.Bounds()
		pts = append(pts, [2]float64{
			b.Min(0) + rng.Float64()*(b.Max(0)-b.Min(0)),
			b.Min(1) + rng.Float64()*(b.Max(1)-b.Min(1)),
		})
	}
	for _, mp := range mps {
		flat := mp.FlatCoords()
		for i := 0; i+3 < len(flat); i += 2 {
			x, y, x2, y2 := flat[i], flat[i+1], flat[i+2], flat[i+3]
			pts = append(pts, [2]float64{x, y}, [2]float64{(x + x2) / 2, (y + y2) / 2})
			for _, d := range []float64{1e-9, 1e-13} {
				pts = append(pts, [2]float64{x - d, y}, [2]float64{x + d, y}, [2]float64{x, y - d}, [2]float64{x, y + d})
			}
		}
	}
	bounds := make([]*geom.Bounds, len(mps))
	for i, mp := range mps {
		bounds[i] = mp.Bounds()
	}
	diffs := 0
	for _, p := range pts {
		got, certain := ix.Lookup(nil, p[0], p[1])
		if !certain {
			t.Fatalf("point %v: not certain on shapes without degenerate segments", p)
		}
		var want []int64
		for id, mp := range mps {
			// referenceContains starts with the same box test; skipping
			// here only saves time.
			if b := bounds[id]; p[0] < b.Min(0)-1 || p[0] > b.Max(0)+1 || p[1] < b.Min(1)-1 || p[1] > b.Max(1)+1 {
				continue
			}
			if referenceContains(mp, p[0], p[1], plainPath) {
				want = append(want, int64(id))
			}
		}
		if !slices.Equal(got, want) {
			diffs++
			if diffs < 10 {
				t.Errorf("point %v: Lookup %v, every segment %v", p, got, want)
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d points differ", diffs, len(pts))
	}
	t.Logf("%d points over %d things, %d vertices", len(pts), ix.Len(), ix.Vertices())
}

// TestLookupDegenerateSegment: a ring with a segment shorter than 1e-12
// is where PostGIS's plain and cached paths disagree; Lookup says so
// rather than pick one.
func TestLookupDegenerateSegment(t *testing.T) {
	t.Parallel()
	// The right edge of the square has a 1e-13 step at y = 5.
	mp := mpoly(t, [][]geom.Coord{{
		{0, 0}, {10, 0}, {10, 5}, {10 + 1e-13, 5 + 1e-13}, {10 + 1e-13, 10}, {0, 10}, {0, 0},
	}})
	ix, err := Build(Version{}, []Thing{{ID: 1, Geometry: mp}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][2]float64{{5, 5}, {5, 5 + 5e-14}, {10, 5}, {-1, 5}, {5, 9}} {
		got, certain := ix.Lookup(nil, p[0], p[1])
		plain, cached := referenceContains(mp, p[0], p[1], plainPath), referenceContains(mp, p[0], p[1], cachedPath)
		if certain != (plain == cached) {
			t.Errorf("point %v: certain %v, but the paths give %v and %v", p, certain, plain, cached)
		}
		if certain && (len(got) == 1) != plain {
			t.Errorf("point %v: Lookup %v, PostGIS %v", p, got, plain)
		}
	}
	// Inside, the slanted step makes the paths differ at y in [5, 5+1e-13).
	if _, certain := ix.Lookup(nil, 5, 5+5e-14); certain {
		t.Error("a point whose answer depends on PostGIS's path is answered as certain")
	}
}

func TestFloatBox(t *testing.T) {
	t.Parallel()
	b := newFloatBox(0.1, -0.1, 179.99999999, 1)
	if !(b.minX <= 0.1 && b.minY <= -0.1 && b.maxX >= 179.99999999 && b.maxY == 1) {
		t.Errorf("float box %+v does not hold the double box", b)
	}
	if float64(float32(b.minX)) != b.minX || b.minX == 0.1 {
		t.Errorf("minX %v is not the float below 0.1", b.minX)
	}
}

func TestParseSnapshot(t *testing.T) {
	t.Parallel()
	s, err := ParseSnapshot("10:20:12,15")
	if err != nil {
		t.Fatal(err)
	}
	if s.String() != "10:20:12,15" {
		t.Errorf("String() = %q", s.String())
	}
	for xid, want := range map[uint64]bool{9: true, 10: true, 12: false, 14: true, 15: false, 19: true, 20: false, 30: false} {
		if got := s.Completed(xid); got != want {
			t.Errorf("Completed(%d) = %v, want %v", xid, got, want)
		}
	}
	for _, bad := range []string{"", "1:2", "a:2:", "3:2:", "1:5:x"} {
		if _, err := ParseSnapshot(bad); err == nil {
			t.Errorf("ParseSnapshot(%q) accepted", bad)
		}
	}
}

// TestLookupEmptyPolygon: PostGIS 3.3's cached path misreads a
// multipolygon with an empty polygon (it indexes rings by polygon and
// reads the next polygon's ring), so points in such a thing's box are
// left to PostGIS.
func TestLookupEmptyPolygon(t *testing.T) {
	t.Parallel()
	mp := mpoly(t, [][]geom.Coord{}, [][]geom.Coord{closed(0, 0, 10, 0, 10, 10, 0, 10)})
	ix, err := Build(Version{}, []Thing{{ID: 1, Geometry: mp}})
	if err != nil {
		t.Fatal(err)
	}
	if _, certain := ix.Lookup(nil, 5, 5); certain {
		t.Error("a point in a multipolygon with an empty polygon is answered as certain")
	}
	if got, certain := ix.Lookup(nil, 50, 5); !certain || len(got) != 0 {
		t.Errorf("a point outside its box: %v, certain %v", got, certain)
	}
}
