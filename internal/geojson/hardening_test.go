package geojson_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

func TestAFeatureThatIsNotAFeatureIsRejectedAlone(t *testing.T) {
	t.Parallel()
	doc := `{"type":"FeatureCollection","features":[
		{"type":"Feature","properties":{"name":"a"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
		{"type":"Feature","properties":["name","b"],"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
		"not a feature",
		{"type":"Feature","properties":null,"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
		{"type":"Feature","properties":{"name":"e"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}
	]}`
	var got []string
	err := geojson.Scan(strings.NewReader(doc), geojson.ScanOptions{}, func(rf geo.RawFeature) error {
		_, err := geo.DecodeFeature(rf, geo.DefaultLimits)
		got = append(got, fmt.Sprintf("%d %s: %v", rf.Index, rf.Name, err))
		return nil
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	want := []string{
		"0 a: <nil>",
		"1 : properties must be a JSON object or null, got an array",
		"2 : not a GeoJSON Feature: want a JSON object",
		"3 : name is required",
		"4 e: <nil>",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
