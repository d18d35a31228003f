package geo_test

import (
	"math"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

// FuzzDecodeFeature feeds arbitrary geometry text to the decoder: it must
// never panic, must reject with Invalid, and what it accepts must be
// storable: a non-empty 2-D MultiPolygon of closed rings of at least four
// positions, every coordinate finite and on the globe.
func FuzzDecodeFeature(f *testing.F) {
	for _, seed := range []string{
		`{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`,
		`{"type":"MultiPolygon","coordinates":[[[[0,0,1],[1,0,1],[1,1,1]]],[[[5,5],[6,6],[5,5]]]]}`,
		`{"type":"Polygon","coordinates":[[[0,0],[1,0,2],[1,1],[0,0]]]}`,
		`{"type":"Polygon","coordinates":[[[0],[1],[1],[0]]]}`,
		`{"type":"Polygon","coordinates":[[]]}`,
		`{"type":"Point","coordinates":[1,2]}`,
		`{"type":"GeometryCollection","geometries":[{"type":"Polygon"}]}`,
		`{"type":"Polygon","coordinates":[[[1e308,0],[1,0],[1,1],[1e308,0]]]}`,
		`null`, `[]`, `{}`, ``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, geometry string) {
		feat, err := geo.DecodeFeature(geo.RawFeature{Name: "fuzz", GeometryJSON: []byte(geometry)}, geo.Limits{MaxVertices: 10000})
		if err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			return
		}
		mp := feat.Geometry
		if mp == nil || mp.NumPolygons() == 0 || mp.Stride() != 2 {
			t.Fatalf("accepted an empty or non-2-D geometry: %v", mp)
		}
		for i := range mp.NumPolygons() {
			p := mp.Polygon(i)
			for j := range p.NumLinearRings() {
				ring := p.LinearRing(j).Coords()
				if len(ring) < 4 || !ring[0].Equal(mp.Layout(), ring[len(ring)-1]) {
					t.Fatalf("accepted ring %d of polygon %d: %v", j, i, ring)
				}
				for _, c := range ring {
					if math.IsNaN(c[0]) || math.IsNaN(c[1]) || c[0] < -180 || c[0] > 180 || c[1] < -90 || c[1] > 90 {
						t.Fatalf("accepted coordinate %v", c)
					}
				}
			}
		}
	})
}

// FuzzFilterValidate feeds arbitrary queries and points to request
// validation: it must never panic, and what it accepts must be searchable.
func FuzzFilterValidate(f *testing.F) {
	f.Add("fran", 48.85, 2.35, true)
	f.Add("", math.NaN(), 0.0, true)
	f.Add("\x00", 91.0, 181.0, true)
	f.Add("\xff", 0.0, 0.0, false)
	f.Fuzz(func(t *testing.T, query string, lat, lng float64, hasPoint bool) {
		filter := geo.Filter{Query: query}
		if hasPoint {
			filter.Point = &geo.Point{Lat: lat, Lng: lng}
		}
		if err := filter.Validate(); err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			return
		}
		if hasPoint && (math.IsNaN(lat) || math.IsNaN(lng) || lat < -90 || lat > 90 || lng < -180 || lng > 180) {
			t.Fatalf("accepted point %v, %v", lat, lng)
		}
	})
}
