package geo_test

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
)

func TestDecodeFeature(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		raw      geo.RawFeature
		wantErr  string
		wantPoly [][][][2]float64
		repairs  []string
		limit    int // 0: geo.DefaultLimits
	}{
		{
			name:     "polygon becomes a multipolygon",
			raw:      geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`)},
			wantPoly: [][][][2]float64{{{{0, 0}, {1, 0}, {1, 1}, {0, 0}}}},
		},
		{
			name:     "Z values are dropped",
			raw:      geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"MultiPolygon","coordinates":[[[[0,0,5],[1,0,5],[1,1,5],[0,0,5]]]]}`)},
			wantPoly: [][][][2]float64{{{{0, 0}, {1, 0}, {1, 1}, {0, 0}}}},
			repairs:  []string{"dropped coordinates beyond longitude and latitude"},
		},
		{
			name:     "open ring is closed",
			raw:      geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]}`)},
			wantPoly: [][][][2]float64{{{{0, 0}, {1, 0}, {1, 1}, {0, 0}}}},
			repairs:  []string{"closed ring 0 of polygon 0"},
		},
		{
			name: "degenerate hole and polygon are dropped",
			raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"MultiPolygon","coordinates":[
				[[[0,0],[4,0],[4,4],[0,0]], [[1,1],[2,1],[1,1]]],
				[[[9,9],[9,10],[9,9]]]]}`)},
			wantPoly: [][][][2]float64{{{{0, 0}, {4, 0}, {4, 4}, {0, 0}}}},
			repairs: []string{
				"dropped ring 1 of polygon 0: 3 positions, fewer than 4",
				"dropped polygon 1: its outer ring has 3 positions, fewer than 4",
			},
		},
		{name: "only degenerate rings", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,1],[0,0]]]}`)},
			wantErr: "geometry has no polygon left after repair: dropped polygon 0"},
		{name: "not JSON", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`POLYGON((0 0,1 0,1 1,0 0))`)}, wantErr: "geometry is not valid GeoJSON"},
		{name: "NaN is not JSON", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[NaN,0],[1,0],[1,1],[0,0]]]}`)}, wantErr: "geometry is not valid GeoJSON"},
		{name: "mixed dimensions", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0,1],[1,1],[0,0]]]}`)}, wantErr: "geometry is not valid GeoJSON"},
		{name: "one-number position", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0],[1],[1],[0]]]}`)}, wantErr: "geometry is not valid GeoJSON"},
		{name: "geometry collection", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"GeometryCollection","geometries":[]}`)}, wantErr: "geometry type GeometryCollection is not supported"},
		{name: "unknown type", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Circle"}`)}, wantErr: `geometry type "Circle" is not supported`},
		{name: "empty polygon", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[]}`)}, wantErr: "geometry is empty"},
		{name: "null coordinates", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon"}`)}, wantErr: "geometry is empty"},
		{name: "latitude out of range", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,-90.5],[0,0]]]}`)}, wantErr: "polygon 0 ring 0 position 2: latitude -90.5 is outside [-90, 90]"},
		{name: "huge number", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1e400,0],[1,1],[0,0]]]}`)}, wantErr: "geometry is not valid GeoJSON"},
		{name: "no name", raw: geo.RawFeature{GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`)}, wantErr: "name is required"},
		{name: "name too long", raw: geo.RawFeature{Name: strings.Repeat("é", geo.MaxNameLength+1)}, wantErr: "name is 1001 characters long; the limit is 1000"},
		{name: "key with NUL", raw: geo.RawFeature{Name: "a", Key: "k\x00"}, wantErr: "key must not contain NUL characters"},
		{name: "too many vertices", raw: geo.RawFeature{Name: "a", GeometryJSON: []byte(`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}`)}, wantErr: "geometry has 5 vertices; the limit is 4", limit: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := geo.DefaultLimits
			if tt.limit > 0 {
				lim.MaxVertices = tt.limit
			}
			f, err := geo.DecodeFeature(tt.raw, lim)
			if tt.wantErr != "" {
				if geo.ErrorCode(err) != geo.Invalid || !strings.HasPrefix(geo.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("error %v, want invalid: %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got [][][][2]float64
			for i := range f.Geometry.NumPolygons() {
				var rings [][][2]float64
				p := f.Geometry.Polygon(i)
				for j := range p.NumLinearRings() {
					var ring [][2]float64
					for _, c := range p.LinearRing(j).Coords() {
						ring = append(ring, [2]float64{c[0], c[1]})
					}
					rings = append(rings, ring)
				}
				got = append(got, rings)
			}
			if diff := cmp.Diff(tt.wantPoly, got); diff != "" {
				t.Errorf("geometry (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.repairs, f.Repairs); diff != "" {
				t.Errorf("repairs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	ok := []geo.Filter{
		{Query: "a"}, {Collections: []string{"default"}}, {Point: &geo.Point{Lat: 90, Lng: -180}}, {Query: strings.Repeat("ü", geo.MaxQueryLength)},
		{BBox: &geo.BBox{MinLng: -180, MinLat: -90, MaxLng: 180, MaxLat: 90}},
		{BBox: &geo.BBox{MinLng: 170, MinLat: -20, MaxLng: -170, MaxLat: -10}}, // across the antimeridian
		{BBox: &geo.BBox{MinLng: 2, MinLat: 48, MaxLng: 2, MaxLat: 48}},        // a point
	}
	for _, f := range ok {
		if err := f.Validate(); err != nil {
			t.Errorf("%+v: %v", f, err)
		}
	}
	bad := map[string]geo.Filter{
		"empty: selects nothing in particular": {},
		"bbox lat > 90":                        {BBox: &geo.BBox{MinLat: 0, MaxLat: 91}},
		"bbox lng < -180":                      {BBox: &geo.BBox{MinLng: -181}},
		"bbox NaN":                             {BBox: &geo.BBox{MaxLng: math.NaN()}},
		"bbox south above north":               {BBox: &geo.BBox{MinLat: 10, MaxLat: 5}},
		"long query":                           {Query: strings.Repeat("ü", geo.MaxQueryLength+1)},
		"invalid utf8":                         {Query: "\xff"},
		"lat > 90":                             {Point: &geo.Point{Lat: 90.1}},
	}
	for name, f := range bad {
		if err := f.Validate(); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}
