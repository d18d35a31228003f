package geo_test

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

func TestDecodeArea(t *testing.T) {
	t.Parallel()
	square := `[[0,0],[1,0],[1,1],[0,1],[0,0]]`
	huge := `{"type":"Polygon","coordinates":[[` + strings.Repeat("[0,0],", 1_000_000-1) + `[0,0]]]}`
	tests := []struct {
		name, raw string
		want      string // "" for valid
	}{
		{"polygon", `{"type":"Polygon","coordinates":[` + square + `]}`, ""},
		{"multipolygon", `{"type":"MultiPolygon","coordinates":[[` + square + `],[[[5,5],[6,5],[6,6],[5,5]]]]}`, ""},
		{"polygon with a hole", `{"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[2,2],[3,2],[3,3],[2,2]]]}`, ""},
		{"point", `{"type":"Point","coordinates":[1,2]}`, "area type Point is not supported; want Polygon or MultiPolygon"},
		{"line", `{"type":"LineString","coordinates":[[1,2],[3,4]]}`, "area type LineString is not supported"},
		{"feature", `{"type":"Feature","geometry":null}`, `area type "Feature" is not supported`},
		{"not JSON", `{"type":`, "area is not valid GeoJSON"},
		{"empty multipolygon", `{"type":"MultiPolygon","coordinates":[]}`, "area is empty"},
		{"open ring", `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]}`, "area polygon 0 ring 0 is not closed"},
		{"short ring", `{"type":"Polygon","coordinates":[[[0,0],[1,0],[0,0]]]}`, "area polygon 0 ring 0 has 3 positions; a ring needs at least 4"},
		{"out of range", `{"type":"Polygon","coordinates":[[[0,0],[181,0],[1,1],[0,0]]]}`, "area polygon 0 ring 0 position 1: longitude 181 is outside [-180, 180]"},
		{"a million vertices", huge, "area has 1000000 vertices; the limit is 100000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := geo.DecodeArea([]byte(tt.raw))
			if tt.want == "" {
				if err != nil || a.Validate() != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if geo.ErrorCode(err) != geo.Invalid || !strings.HasPrefix(geo.ErrorMessage(err), tt.want) {
				t.Errorf("got %v, want Invalid %q", err, tt.want)
			}
		})
	}
}

// TestAreaSpellingsShareAFingerprint: a Polygon and the MultiPolygon of it,
// spelled with other whitespace, are one area, and another area is not.
func TestAreaSpellingsShareAFingerprint(t *testing.T) {
	t.Parallel()
	decode := func(raw string) *geo.Area {
		a, err := geo.DecodeArea([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return &a
	}
	a := decode(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`)
	b := decode(`{ "coordinates" : [ [ [ [0, 0.0], [1,0], [1,1], [0,0] ] ] ], "type": "MultiPolygon" }`)
	c := decode(`{"type":"Polygon","coordinates":[[[0,0],[2,0],[1,1],[0,0]]]}`)
	if geo.FilterFingerprint(geo.Filter{Area: a}) != geo.FilterFingerprint(geo.Filter{Area: b}) {
		t.Errorf("two spellings of one area differ:\n%s\n%s", a.GeoJSON(), b.GeoJSON())
	}
	if geo.FilterFingerprint(geo.Filter{Area: a}) == geo.FilterFingerprint(geo.Filter{Area: c}) {
		t.Error("two areas share a fingerprint")
	}
	if geo.FilterFingerprint(geo.Filter{Area: a}) == geo.FilterFingerprint(geo.Filter{Area: a, Relation: geo.Within}) {
		t.Error("two relations share a fingerprint")
	}
}

func TestSpatialFilterValidation(t *testing.T) {
	t.Parallel()
	p := &geo.Point{Lat: 1, Lng: 2}
	box := &geo.BBox{MinLng: 0, MinLat: 0, MaxLng: 1, MaxLat: 1}
	area, err := geo.DecodeArea([]byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter geo.Filter
		want   string // "" for valid
	}{
		{"nearest", geo.Filter{Point: p, MaxDistanceM: 5000}, ""},
		{"at the cap", geo.Filter{Point: p, MaxDistanceM: geo.MaxDistanceM}, ""},
		{"antimeridian box within", geo.Filter{BBox: &geo.BBox{MinLng: 170, MinLat: -20, MaxLng: -170, MaxLat: 0}, Relation: geo.Within}, ""},
		{"area contains", geo.Filter{Area: &area, Relation: geo.Contains}, ""},
		{"negative distance", geo.Filter{Point: p, MaxDistanceM: -1}, "max_distance_m must not be negative, got -1"},
		{"NaN distance", geo.Filter{Point: p, MaxDistanceM: math.NaN()}, "max_distance_m must be a finite number, got NaN"},
		{"infinite distance", geo.Filter{Point: p, MaxDistanceM: math.Inf(1)}, "max_distance_m must be a finite number, got +Inf"},
		{"over the cap", geo.Filter{Point: p, MaxDistanceM: 1e12}, "max_distance_m is 1e+12; the limit is 1000000 (1000 km)"},
		{"distance without a point", geo.Filter{Collections: []string{"a"}, MaxDistanceM: 10}, "max_distance_m needs a point to measure from"},
		{"distance with a box", geo.Filter{BBox: box, MaxDistanceM: 10}, "max_distance_m needs a point to measure from"},
		{"bbox upside down", geo.Filter{BBox: &geo.BBox{MinLng: 0, MinLat: 10, MaxLng: 1, MaxLat: 5}}, "bbox min lat (10) must not be greater than max lat (5)"},
		{"point and area", geo.Filter{Point: p, Area: &area}, "a search takes one of a point, a bbox and an area, not several"},
		{"bbox and area", geo.Filter{BBox: box, Area: &area}, "a search takes one of a point, a bbox and an area, not several"},
		{"point and bbox", geo.Filter{Point: p, BBox: box}, "a search takes a point or a bbox, not both"},
		{"empty area", geo.Filter{Area: &geo.Area{}}, "area is empty"},
		{"relation without an area", geo.Filter{Point: p, Relation: geo.Within}, "relation within needs a bbox or an area"},
		{"unknown relation", geo.Filter{BBox: box, Relation: 7}, "unknown relation 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.filter.Validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if geo.ErrorCode(err) != geo.Invalid || geo.ErrorMessage(err) != tt.want {
				t.Errorf("got %v, want Invalid %q", err, tt.want)
			}
		})
	}
}

// TestNearestPageTokensCarryTheDistance: a nearest search's token holds the
// last distance, exactly; a token of the other kind is refused.
func TestNearestPageTokensCarryTheDistance(t *testing.T) {
	t.Parallel()
	near := geo.Filter{Point: &geo.Point{Lat: 1, Lng: 2}, MaxDistanceM: 5000}
	c := geo.Cursor{DistanceM: 1234.5678901234567, Name: "Étang", ID: 42}
	got, err := geo.DecodePageToken(geo.EncodePageToken(near, c), near, "page_token")
	if err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, c)
	}
	plain := geo.Filter{Point: near.Point}
	got, err = geo.DecodePageToken(geo.EncodePageToken(plain, geo.Cursor{Name: "a", ID: 1}), plain, "page_token")
	if err != nil || !reflect.DeepEqual(got, geo.Cursor{Name: "a", ID: 1}) {
		t.Errorf("plain round trip: %+v, %v", got, err)
	}
	if _, err := geo.DecodePageToken(geo.EncodePageToken(plain, c), near, "page_token"); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("a plain search's token for a nearest search: %v, want Invalid", err)
	}
}

func TestParseRelation(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]geo.Relation{"": geo.Intersects, "intersects": geo.Intersects, "within": geo.Within, "contains": geo.Contains} {
		if got, err := geo.ParseRelation(s); err != nil || got != want {
			t.Errorf("ParseRelation(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := geo.ParseRelation("touches"); geo.ErrorCode(err) != geo.Invalid {
		t.Errorf("ParseRelation(touches): %v, want Invalid", err)
	}
}
