// Package geotest has test helpers for the domain: loading fixture files and
// feeding features to an import.
package geotest

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/twpayne/go-geom"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

// Testdata returns the path of name in the repository's testdata directory.
func Testdata(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", name)
}

// LoadRaw reads a GeoJSON fixture from testdata (gzip-compressed if its name
// ends in .gz), keyed by name.
func LoadRaw(t testing.TB, name string) []geo.RawFeature {
	t.Helper()
	f, err := os.Open(Testdata(name))
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("open fixture: %v", err)
		}
		r = zr
	}
	var out []geo.RawFeature
	err = geojson.Scan(r, geojson.ScanOptions{KeyProperty: "name"}, func(rf geo.RawFeature) error {
		out = append(out, rf)
		return nil
	})
	if err != nil {
		t.Fatalf("read fixture %s: %v", name, err)
	}
	return out
}

// Load reads a fixture and decodes every feature, failing the test if any
// feature is invalid.
func Load(t testing.TB, name string) []geo.Feature {
	t.Helper()
	out, err := Decode(LoadRaw(t, name))
	if err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return out
}

// Decode decodes raws as an import does (geo.DefaultLimits), failing at
// the first invalid feature.
func Decode(raws []geo.RawFeature) ([]geo.Feature, error) {
	out := make([]geo.Feature, 0, len(raws))
	for _, rf := range raws {
		f, err := geo.DecodeFeature(rf, geo.DefaultLimits)
		if err != nil {
			return nil, fmt.Errorf("feature %d (%s): %w", rf.Index, rf.Name, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// Source is a geo.FeatureSource over a slice; Err, if set, is returned after
// the features instead of io.EOF.
type Source struct {
	Features []geo.Feature
	Err      error
	next     int
}

// Next returns the next feature.
func (s *Source) Next(ctx context.Context) (geo.Feature, error) {
	if err := ctx.Err(); err != nil {
		return geo.Feature{}, err
	}
	if s.next >= len(s.Features) {
		if s.Err != nil {
			return geo.Feature{}, s.Err
		}
		return geo.Feature{}, io.EOF
	}
	s.next++
	return s.Features[s.next-1], nil
}

// Grid is n × n square cells over the whole world, named "cell I J" and
// keyed "I-J", each with props.
func Grid(n int, props map[string]any) []geo.Feature {
	var fs []geo.Feature
	for i := range n {
		for j := range n {
			x, y := -180+float64(i)*360/float64(n), -90+float64(j)*180/float64(n)
			fs = append(fs, Square(fmt.Sprintf("cell %d %d", i, j), fmt.Sprintf("%d-%d", i, j), props, x, y, x+360/float64(n), y+180/float64(n)))
		}
	}
	return fs
}

// Square is a feature named name whose geometry is the square
// [x0,x1] x [y0,y1], with key and properties.
func Square(name, key string, props map[string]any, x0, y0, x1, y1 float64) geo.Feature {
	mp := geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{{{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}}})
	return geo.Feature{Name: name, Key: key, Properties: props, Geometry: mp}
}

// FilterField gives examples for one field of geo.Filter, for the tests
// that check every field is validated, fingerprinted and turned into SQL.
type FilterField struct {
	// Narrow sets the field, on FilterBase, to a valid value that selects
	// some but not all of FilterFixture's things.
	Narrow func(*geo.Filter)
	// Invalid sets the field to a value that Validate refuses.
	Invalid func(*geo.Filter)
}

// FilterFields has an entry for every field of geo.Filter, by field name.
// A test walks geo.Filter by reflection and fails for a field missing here,
// so that a new filter cannot be added without examples.
func FilterFields() map[string]FilterField {
	return map[string]FilterField{
		"Query": {
			Narrow:  func(f *geo.Filter) { f.Query = "x" },
			Invalid: func(f *geo.Filter) { f.Query = strings.Repeat("x", geo.MaxQueryLength+1) },
		},
		"Point": {
			Narrow:  func(f *geo.Filter) { f.Point = &geo.Point{Lat: 5, Lng: 5} },
			Invalid: func(f *geo.Filter) { f.Point = &geo.Point{Lat: 91} },
		},
		"MaxDistanceM": {
			// 2 degrees of longitude (221 km) east of the 0..10 squares.
			Narrow: func(f *geo.Filter) {
				f.Point = &geo.Point{Lat: 5, Lng: 12}
				f.MaxDistanceM = 500_000
			},
			Invalid: func(f *geo.Filter) {
				f.Point = &geo.Point{Lat: 5, Lng: 12}
				f.MaxDistanceM = -1
			},
		},
		"Area": {
			Narrow: func(f *geo.Filter) {
				a, err := geo.DecodeArea([]byte(`{"type":"Polygon","coordinates":[[[-5,-5],[15,-5],[15,15],[-5,15],[-5,-5]]]}`))
				if err != nil {
					panic(err)
				}
				f.Area = &a
			},
			Invalid: func(f *geo.Filter) { f.Area = &geo.Area{} },
		},
		"Relation": {
			// Intersecting, the box would also keep the 20..30 square.
			Narrow: func(f *geo.Filter) {
				f.BBox = &geo.BBox{MinLng: -5, MinLat: -5, MaxLng: 25, MaxLat: 25}
				f.Relation = geo.Within
			},
			Invalid: func(f *geo.Filter) { f.Relation = geo.Contains },
		},
		"BBox": {
			Narrow:  func(f *geo.Filter) { f.BBox = &geo.BBox{MinLng: -5, MinLat: -5, MaxLng: 15, MaxLat: 15} },
			Invalid: func(f *geo.Filter) { f.BBox = &geo.BBox{MinLng: 0, MinLat: 10, MaxLng: 1, MaxLat: 5} },
		},
		"Collections": {
			Narrow:  func(f *geo.Filter) { f.Collections = []string{"a"} },
			Invalid: func(f *geo.Filter) { f.Collections = []string{"Not A Name"} },
		},
		"Properties": {
			Narrow: func(f *geo.Filter) {
				f.Properties = []geo.PropertyFilter{{Key: "kind", Values: []any{"park", "road"}}}
			},
			Invalid: func(f *geo.Filter) { f.Properties = []geo.PropertyFilter{{Key: "a.b", Values: []any{1.0}}} },
		},
		"Where": {
			// rank >= 2 AND NOT kind = 'road': Ya2 and Xb1.
			Narrow: func(f *geo.Filter) {
				f.Where = &geo.Expr{And: []geo.Expr{
					{Compare: &geo.Comparison{Property: "rank", Op: geo.OpGe, Value: 2.0}},
					{Not: &geo.Expr{Compare: &geo.Comparison{Property: "kind", Op: geo.OpEq, Value: "road"}}},
				}}
			},
			Invalid: func(f *geo.Filter) {
				f.Where = &geo.Expr{Compare: &geo.Comparison{Property: "open", Op: geo.OpLt, Value: true}}
			},
		},
	}
}

// FilterBase is a valid filter that selects every thing of FilterFixture.
func FilterBase() geo.Filter { return geo.Filter{Collections: []string{"a", "b"}} }

// FilterFixture is four things in collections "a" and "b" that the
// FilterFields examples split in different ways.
func FilterFixture() map[string][]geo.Feature {
	return map[string][]geo.Feature{
		"a": {
			Square("Xa1", "1", map[string]any{"kind": "lake", "rank": 1.0, "open": true}, 0, 0, 10, 10),
			Square("Ya2", "2", map[string]any{"kind": "park", "rank": 2.0}, 20, 20, 30, 30),
		},
		"b": {
			Square("Xb1", "1", map[string]any{"kind": "lake", "rank": 2.0}, 0, 0, 10, 10),
			Square("Yb2", "2", map[string]any{"kind": "road"}, 40, 40, 50, 50),
		},
	}
}
