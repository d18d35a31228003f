package postgis_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/twpayne/go-geom"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// circle is a feature whose geometry is a 720-vertex polygon around
// (lng, lat), with properties and a key.
func circle(name string, lng, lat, r float64) geo.Feature {
	ring := make([]geom.Coord, 0, 721)
	for i := range 720 {
		a := float64(i) * math.Pi / 360
		ring = append(ring, geom.Coord{lng + r*math.Cos(a), lat + r*math.Sin(a)})
	}
	ring = append(ring, ring[0])
	mp := geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{{ring}})
	return geo.Feature{Name: name, Key: name, Geometry: mp, Properties: map[string]any{"kind": "round", "n": 1.0}}
}

// coordinates returns the positions of a GeoJSON MultiPolygon.
func coordinates(t *testing.T, geojson string) [][2]json.Number {
	t.Helper()
	var g struct {
		Coordinates [][][][2]json.Number
	}
	d := json.NewDecoder(strings.NewReader(geojson))
	d.UseNumber()
	if err := d.Decode(&g); err != nil {
		t.Fatalf("geometry %q: %v", geojson, err)
	}
	var out [][2]json.Number
	for _, poly := range g.Coordinates {
		for _, ring := range poly {
			out = append(out, ring...)
		}
	}
	return out
}

func TestOutputShapesWhatIsRead(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	mustImport(t, svc, []geo.Feature{circle("round", 10, 10, 1)})
	point := geo.Filter{Point: &geo.Point{Lat: 10, Lng: 10}}
	ctx := context.Background()

	full, err := svc.Search(ctx, geo.Query{Filter: point, Limit: 10, IncludeGeometry: true})
	if err != nil || len(full.Things) != 1 {
		t.Fatalf("default output: %+v, %v", full, err)
	}
	th := full.Things[0]
	if th.Key != "round" || th.Collection != geo.DefaultCollection || th.Properties["kind"] != "round" || th.BBox.MaxLng != 11 {
		t.Errorf("default output lacks a field: %+v", th)
	}
	stored := coordinates(t, th.GeometryGeoJSON)
	if len(stored) != 721 {
		t.Fatalf("stored geometry has %d positions, want 721", len(stored))
	}

	// Every field that can be left out is, and the statement reads none of
	// them: their columns are constants.
	omitAll := geo.Output{Omit: geo.FieldKey | geo.FieldCollection | geo.FieldProperties | geo.FieldBBox}
	q := geo.Query{Filter: point, Limit: 10, Output: omitAll}
	sql, _ := postgis.SearchStatement(q)
	for _, col := range []string{"t.properties,", "t.key", "t.collection,", "t.min_lng", "ST_AsGeoJSON"} {
		if strings.Contains(sql, col) {
			t.Errorf("a statement leaving every field out still selects %s:\n%s", col, sql)
		}
	}
	page, err := svc.Search(ctx, q)
	if err != nil || len(page.Things) != 1 {
		t.Fatalf("nothing but id and name: %+v, %v", page, err)
	}
	if got, want := page.Things[0], (geo.Thing{ID: th.ID, Name: "round"}); got.ID != want.ID || got.Name != want.Name ||
		got.Key != "" || got.Collection != "" || got.Properties != nil || got.BBox != (geo.BBox{}) || got.GeometryGeoJSON != "" {
		t.Errorf("got %+v, want only id and name", got)
	}

	// Simplified, and with 2 decimal digits: fewer positions, each rounded.
	two := 2
	page, err = svc.Search(ctx, geo.Query{Filter: point, Limit: 10, IncludeGeometry: true,
		Output: geo.Output{SimplifyTolerance: 0.05, CoordinateDigits: &two}})
	if err != nil || len(page.Things) != 1 {
		t.Fatalf("shaped geometry: %+v, %v", page, err)
	}
	shaped := coordinates(t, page.Things[0].GeometryGeoJSON)
	if len(shaped) < 4 || len(shaped) >= len(stored)/4 {
		t.Errorf("simplified with 0.05 degrees: %d positions of %d", len(shaped), len(stored))
	}
	for _, c := range shaped {
		for _, n := range c {
			if _, frac, ok := strings.Cut(n.String(), "."); ok && len(frac) > 2 {
				t.Fatalf("coordinate %s has more than 2 decimal digits", n)
			}
		}
	}
	// Locate and Get shape the same way.
	located, err := svc.Locate(ctx, geo.LocateQuery{Points: []geo.Point{{Lat: 10, Lng: 10}}, Limit: 10, IncludeGeometry: true,
		Output: geo.Output{Omit: geo.FieldProperties, SimplifyTolerance: 0.05, CoordinateDigits: &two}})
	if err != nil || len(located) != 1 || len(located[0]) != 1 {
		t.Fatalf("locate: %v, %v", located, err)
	}
	if l := located[0][0]; l.Properties != nil || l.Key != "round" || l.GeometryGeoJSON != page.Things[0].GeometryGeoJSON {
		t.Errorf("located %+v, want no properties and Search's shaped geometry", l)
	}
	got, err := svc.Get(ctx, geo.ThingRef{ID: th.ID}, true, geo.Output{Omit: geo.FieldProperties | geo.FieldBBox, SimplifyTolerance: 0.05, CoordinateDigits: &two})
	if err != nil || got.Properties != nil || got.BBox != (geo.BBox{}) || got.Key != "round" || got.GeometryGeoJSON != page.Things[0].GeometryGeoJSON {
		t.Errorf("get: %+v, %v; want no properties or bbox and Search's shaped geometry", got, err)
	}

	// Bad settings are Invalid for each method.
	sixteen := 16
	for name, out := range map[string]geo.Output{
		"negative tolerance": {SimplifyTolerance: -1},
		"NaN tolerance":      {SimplifyTolerance: math.NaN()},
		"huge tolerance":     {SimplifyTolerance: math.Inf(1)},
		"16 digits":          {CoordinateDigits: &sixteen},
	} {
		_, errS := svc.Search(ctx, geo.Query{Filter: point, Limit: 1, IncludeGeometry: true, Output: out})
		_, errL := svc.Locate(ctx, geo.LocateQuery{Points: []geo.Point{{}}, Limit: 1, Output: out})
		_, errG := svc.Get(ctx, geo.ThingRef{ID: th.ID}, true, out)
		for method, err := range map[string]error{"search": errS, "locate": errL, "get": errG} {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Errorf("%s with %s: %v, want Invalid", method, name, err)
			}
		}
	}
}

// TestTotalIsCountedOnlyWhenAsked counts the statements that count: none for
// searches that do not ask for a total, one per search that does, whose
// total is every match across all pages.
func TestTotalIsCountedOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	svc, tracer := tracedService(t, "SELECT count(*)\nFROM")
	var fs []geo.Feature
	for i := range 7 {
		fs = append(fs, square("sq"+string(rune('a'+i)), float64(i), 0, float64(i)+0.5, 1))
	}
	fs = append(fs, square("other", 0, 0, 10, 10))
	mustImport(t, svc, fs)
	ctx := context.Background()

	filters := map[string]struct {
		f    geo.Filter
		want int64
	}{
		"name":       {geo.Filter{Query: "sq"}, 7},
		"point":      {geo.Filter{Point: &geo.Point{Lat: 0.5, Lng: 0.25}}, 2},
		"box":        {geo.Filter{BBox: &geo.BBox{MinLng: 2.1, MinLat: 0.1, MaxLng: 3.2, MaxLat: 0.2}}, 3},
		"collection": {geo.Filter{Collections: []string{geo.DefaultCollection}}, 8},
		"nothing":    {geo.Filter{Query: "absent"}, 0},
	}
	for name, tt := range filters {
		q := geo.Query{Filter: tt.f, Limit: 2}
		for pages := 0; ; pages++ {
			page, err := svc.Search(ctx, q)
			if err != nil || page.Total != 0 {
				t.Fatalf("%s without a total: total %d, %v", name, page.Total, err)
			}
			if page.Next == nil {
				break
			}
			q.After = page.Next
		}
	}
	if n := tracer.n.Load(); n != 0 {
		t.Fatalf("searches that asked for no total counted %d times", n)
	}

	counted := int64(0)
	for name, tt := range filters {
		q := geo.Query{Filter: tt.f, Limit: 2, WithTotal: true}
		seen := 0
		for {
			page, err := svc.Search(ctx, q)
			counted++
			if err != nil || page.Total != tt.want {
				t.Errorf("%s: total %d, %v; want %d", name, page.Total, err, tt.want)
			}
			seen += len(page.Things)
			if page.Next == nil {
				break
			}
			q.After = page.Next // the total stays that of every page
		}
		if int64(seen) != tt.want {
			t.Errorf("%s: paging saw %d things, the total says %d", name, seen, tt.want)
		}
	}
	if n := tracer.n.Load(); n != counted {
		t.Errorf("%d searches asking for a total counted %d times", counted, n)
	}
}
