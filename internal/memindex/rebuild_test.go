package memindex

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/twpayne/go-geom"
)

// randomThings returns n random (multi)polygons with holes, ids from id0.
func randomThings(t *testing.T, rng *rand.Rand, id0, n int) []Thing {
	var things []Thing
	for id := id0; id < id0+n; id++ {
		cx, cy := rng.Float64()*300-150, rng.Float64()*160-80
		var polys [][][]geom.Coord
		for p := range 1 + rng.IntN(3) {
			px, py := cx+float64(p)*7, cy
			poly := [][]geom.Coord{randomRing(rng, px, py, 3, 5+rng.IntN(300), 0.01)}
			if rng.IntN(2) == 0 {
				poly = append(poly, randomRing(rng, px, py, 0.8, 4+rng.IntN(60), 0.01))
			}
			polys = append(polys, poly)
		}
		things = append(things, Thing{ID: int64(id), Geometry: mpoly(t, polys...)})
	}
	return things
}

// TestRebuildAnswersAsBuild: an index rebuilt from another (some things
// kept, some dropped, some replaced under the same id, some added) holds
// exactly the arrays Build makes of the same things in the same order, so
// it answers the same; and its lookups agree at random points, vertices
// and points either side of them. Things with an empty polygon and with a
// degenerate segment are among those kept.
func TestRebuildAnswersAsBuild(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 5))
	things := randomThings(t, rng, 0, 40)
	empty := geom.NewMultiPolygonFlat(geom.XY, []float64{0, 0, 1, 0, 1, 1, 0, 0}, [][]int{{8}, {}})
	things = append(things, Thing{ID: 40, Geometry: empty})
	degenerate := mpoly(t, [][]geom.Coord{closed(10, 10, 12, 10, 12, 10+1e-13, 12, 12, 10, 12)})
	things = append(things, Thing{ID: 41, Geometry: degenerate})
	old, err := Build(Version{}, things)
	if err != nil {
		t.Fatal(err)
	}
	added := randomThings(t, rng, 100, 10)
	replaced := randomThings(t, rng, 0, 1)[0] // id 0 again, a new shape
	replaced.ID = 3
	added = append(added, replaced)
	keep := func(id int64) bool { return id%4 != 0 && id != 3 }
	got, err := Rebuild(Version{LSN: 7}, old, keep, added)
	if err != nil {
		t.Fatal(err)
	}
	var same []Thing
	for _, th := range things {
		if keep(th.ID) {
			same = append(same, th)
		}
	}
	want, err := Build(Version{LSN: 7}, append(same, added...))
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]any{
		"things": {got.things, want.things}, "polys": {got.polys, want.polys}, "rings": {got.rings, want.rings},
		"coords": {got.coords, want.coords}, "bandStart": {got.bandStart, want.bandStart}, "segs": {got.segs, want.segs},
		"vertices": {got.vertices, want.vertices}, "version": {got.version, want.version},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differ from Build's", name)
		}
	}
	if got.Bytes() != want.Bytes() {
		t.Errorf("Bytes %d, Build's %d", got.Bytes(), want.Bytes())
	}
	var pts [][2]float64
	for range 5000 {
		pts = append(pts, [2]float64{rng.Float64()*320 - 160, rng.Float64()*170 - 85})
	}
	for _, th := range append(things, added...) {
		flat := th.Geometry.FlatCoords()
		for i := 0; i+1 < len(flat); i += 2 {
			x, y := flat[i], flat[i+1]
			pts = append(pts, [2]float64{x, y}, [2]float64{x + 1e-9, y}, [2]float64{x, y - 1e-9})
		}
	}
	for _, p := range pts {
		g, gs := got.Lookup(nil, p[0], p[1])
		w, ws := want.Lookup(nil, p[0], p[1])
		if gs != ws || !slices.Equal(g, w) {
			t.Fatalf("point %v: rebuilt %v (sure %v), built %v (sure %v)", p, g, gs, w, ws)
		}
	}
}
