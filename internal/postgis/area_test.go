package postgis_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// areaCase is one bbox or area to search with every relation.
type areaCase struct {
	name string
	bbox *geo.BBox
	area *geo.Area
}

func (c areaCase) filter(r geo.Relation) geo.Filter {
	return geo.Filter{BBox: c.bbox, Area: c.area, Relation: r}
}

// areaCases returns boxes and areas over the 1:50m countries: random boxes
// of every size, boxes across the antimeridian and around the poles, each
// country's own bounding box (within it, the country touches all four
// edges), tiny boxes inside countries (contained), star-shaped polygons,
// multipolygons of two, and the 1:110m outlines of countries as areas.
func areaCases(t *testing.T, countries []geo.Feature, rng *rand.Rand) []areaCase {
	var cs []areaCase
	box := func(name string, w, s, e, n float64) {
		cs = append(cs, areaCase{name: name, bbox: &geo.BBox{MinLng: w, MinLat: s, MaxLng: e, MaxLat: n}})
	}
	for i := range 60 {
		size := []float64{0.5, 3, 15, 60}[i%4]
		w, s := rng.Float64()*(360-size)-180, rng.Float64()*(180-size)-90
		box(fmt.Sprintf("random %g", size), w, s, w+size, s+size*rng.Float64())
	}
	for i := range 10 {
		w, e := 170+rng.Float64()*9.9, -180+rng.Float64()*10
		s := rng.Float64()*120 - 70
		box(fmt.Sprintf("antimeridian %d", i), w, s, e, s+5+rng.Float64()*20)
	}
	box("Fiji across the antimeridian", 176, -21, -178, -12)
	box("arctic", -180, 75, 180, 90)
	box("antarctic", -180, -90, 180, -60)
	box("antarctic across the antimeridian", 90, -90, -90, -70)
	box("everything", -180, -90, 180, 90)
	for i := range 30 {
		c := countries[rng.IntN(len(countries))]
		b := c.Geometry.Bounds() // past +-180 for a country unwrapped across it
		box("bbox of "+c.Name, max(b.Min(0), -180), b.Min(1), min(b.Max(0), 180), b.Max(1))
		// A tiny box around a vertex's neighbourhood, mostly inside.
		flat := c.Geometry.FlatCoords()
		v := rng.IntN(len(flat) / 2)
		x, y := geotest.WrapLng(flat[2*v]), flat[2*v+1]
		if i%2 == 0 {
			x, y = (b.Min(0)+b.Max(0))/2, (b.Min(1)+b.Max(1))/2
		}
		box(fmt.Sprintf("tiny in %s %d", c.Name, i), x-0.01, y-0.01, x+0.01, y+0.01)
	}
	area := func(name string, g geom.T) {
		b, err := geojson.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		a, err := geo.DecodeArea(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cs = append(cs, areaCase{name: name, area: &a})
	}
	star := func(cx, cy, r float64) [][]geom.Coord {
		n := 5 + rng.IntN(20)
		ring := make([]geom.Coord, 0, n+1)
		for k := range n {
			a := 2 * math.Pi * float64(k) / float64(n)
			rr := r * (0.4 + 0.6*rng.Float64())
			ring = append(ring, geom.Coord{
				max(-180, min(180, cx+rr*math.Cos(a))),
				max(-90, min(90, cy+rr*math.Sin(a))),
			})
		}
		return [][]geom.Coord{append(ring, ring[0])}
	}
	for i := range 30 {
		r := []float64{0.2, 2, 10}[i%3]
		cx, cy := rng.Float64()*(360-2*r)-180+r, rng.Float64()*(180-2*r)-90+r
		area(fmt.Sprintf("star %g", r), geom.NewPolygon(geom.XY).MustSetCoords(star(cx, cy, r)))
	}
	for i := range 10 {
		area(fmt.Sprintf("two stars %d", i), geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{
			star(-100+rng.Float64()*60, -30+rng.Float64()*60, 5),
			star(20+rng.Float64()*60, -30+rng.Float64()*60, 5),
		}))
	}
	for i, rf := range geotest.LoadRaw(t, "ne_110m_countries.geojson") {
		if i%12 == 0 {
			a, err := geo.DecodeArea(rf.GeometryJSON)
			if err != nil {
				t.Fatalf("1:110m %s: %v", rf.Name, err)
			}
			cs = append(cs, areaCase{name: "1:110m " + rf.Name, area: &a})
		}
	}
	return cs
}

// TestAreaSearchMatchesWholeGeometry compares every relation of many boxes
// and areas with PostGIS ST_Intersects, ST_Within and ST_Contains on the
// whole geometries of the 1:50m countries (the naive statement), and walks
// a few in pages.
func TestAreaSearchMatchesWholeGeometry(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	countries := geotest.Load(t, "ne_50m_countries.geojson")
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, countries)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(14, 9))
	counts := map[geo.Relation]int{}
	invalid := 0
	for i, c := range areaCases(t, countries, rng) {
		for _, r := range []geo.Relation{geo.Intersects, geo.Within, geo.Contains} {
			f := c.filter(r)
			page, err := svc.Search(ctx, geo.Query{Filter: f, Limit: 1000})
			if c.area != nil && geo.ErrorCode(err) == geo.Invalid && strings.HasPrefix(geo.ErrorMessage(err), "area is not a valid polygon") {
				invalid++ // a 1:110m outline or a star that is not valid
				break
			}
			if err != nil {
				t.Fatalf("%s %s: %v", c.name, r, err)
			}
			want := wholeGeometryThings(t, pool, geo.Query{Filter: f, Limit: 1000})
			if diff := cmp.Diff(names(want), names(page.Things)); diff != "" {
				t.Errorf("%s %s: differs from the whole geometries (-whole +search):\n%s", c.name, r, diff)
			}
			counts[r] += len(page.Things)
			if i%10 == 0 && len(page.Things) > 3 {
				var walked []geo.Thing
				q := geo.Query{Filter: f, Limit: 3}
				for {
					p, err := svc.Search(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					walked = append(walked, p.Things...)
					if p.Next == nil {
						break
					}
					q.After = p.Next
				}
				if diff := cmp.Diff(names(page.Things), names(walked)); diff != "" {
					t.Errorf("%s %s: pages of 3 differ from one page (-one +pages):\n%s", c.name, r, diff)
				}
			}
		}
	}
	t.Logf("things found: %d intersecting, %d within, %d containing; %d areas refused as invalid", counts[geo.Intersects], counts[geo.Within], counts[geo.Contains], invalid)
	for _, r := range []geo.Relation{geo.Intersects, geo.Within, geo.Contains} {
		if counts[r] < 10 {
			t.Errorf("only %d things %s: the comparison proves little", counts[r], r)
		}
	}
	if invalid > 5 {
		t.Errorf("%d areas refused as invalid: the cases should be valid", invalid)
	}
}

// TestAreaSearchRefusesBadAreas: an invalid polygon is refused with
// PostGIS's reason and place, not repaired.
func TestAreaSearchRefusesBadAreas(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	bowtie, err := geo.DecodeArea([]byte(`{"type":"Polygon","coordinates":[[[0,0],[10,10],[10,0],[0,10],[0,0]]]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Area: &bowtie}, Limit: 10})
	if want := "area is not a valid polygon: Self-intersection at (5 5)"; geo.ErrorCode(err) != geo.Invalid || geo.ErrorMessage(err) != want {
		t.Errorf("bow-tie area: %v, want Invalid %q", err, want)
	}
	_, err = svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Area: &geo.Area{}}, Limit: 10})
	if geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("empty area: %v, want Invalid", err)
	}
}

// TestFlatBoxesAndAreasAreThePointOrLineTheyCover: a bbox without width or
// height, and an area whose rings all collapse, are searched as the point
// or line they cover (the rule both edges share), not refused and not
// answered with nothing.
func TestFlatBoxesAndAreasAreThePointOrLineTheyCover(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importRaw(t, svc, geotest.LoadRaw(t, "ne_50m_countries.geojson"))
	decode := func(s string) *geo.Area {
		a, err := geo.DecodeArea([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return &a
	}
	tests := []struct {
		name   string
		filter geo.Filter
		want   []string
	}{
		{"a point box in Paris", geo.Filter{BBox: &geo.BBox{MinLng: 2.35, MinLat: 48.85, MaxLng: 2.35, MaxLat: 48.85}}, []string{"France"}},
		{"a point box in Paris, contained", geo.Filter{BBox: &geo.BBox{MinLng: 2.35, MinLat: 48.85, MaxLng: 2.35, MaxLat: 48.85}, Relation: geo.Contains}, []string{"France"}},
		{"a point box in Paris, nothing within it", geo.Filter{BBox: &geo.BBox{MinLng: 2.35, MinLat: 48.85, MaxLng: 2.35, MaxLat: 48.85}, Relation: geo.Within}, nil},
		{"a line box along 180 through Fiji", geo.Filter{BBox: &geo.BBox{MinLng: 180, MinLat: -20, MaxLng: 180, MaxLat: -10}}, []string{"Fiji"}},
		{"a line box from Paris to Strasbourg", geo.Filter{BBox: &geo.BBox{MinLng: 2.35, MinLat: 48.58, MaxLng: 7.75, MaxLat: 48.58}}, []string{"France"}},
		{"a point area in Paris", geo.Filter{Area: decode(`{"type":"Polygon","coordinates":[[[2.35,48.85],[2.35,48.85],[2.35,48.85],[2.35,48.85]]]}`)}, []string{"France"}},
		{"a line area from Paris to Berlin", geo.Filter{Area: decode(`{"type":"Polygon","coordinates":[[[2.35,48.85],[13.4,52.52],[2.35,48.85],[2.35,48.85]]]}`)}, []string{"Belgium", "France", "Germany", "Luxembourg"}},
		{"a line area from Paris to Berlin, contained by neither", geo.Filter{Area: decode(`{"type":"Polygon","coordinates":[[[2.35,48.85],[13.4,52.52],[2.35,48.85],[2.35,48.85]]]}`), Relation: geo.Contains}, nil},
	}
	for _, tt := range tests {
		page, err := svc.Search(context.Background(), geo.Query{Filter: tt.filter, Limit: 50})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, names(page.Things), emptyIsNil); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}
