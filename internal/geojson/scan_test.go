package geojson_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geojson"
)

func TestScan(t *testing.T) {
	t.Parallel()
	type got struct {
		Index         int
		Name, Key     string
		Props         map[string]any
		Geometry      string
		ScanErrPrefix string
	}
	tests := []struct {
		name    string
		doc     string
		opts    geojson.ScanOptions
		want    []got
		wantErr string
	}{
		{
			name: "collection, key from id",
			doc: `{"type":"FeatureCollection","features":[
				{"type":"Feature","id":250,"properties":{"name":"France","pop":67.5},"geometry":{"type":"Polygon"}},
				{"type":"Feature","id":"x","properties":{"name":"Elsewhere"},"geometry":null}]}`,
			want: []got{
				{Index: 0, Name: "France", Key: "250", Props: map[string]any{"name": "France", "pop": 67.5}, Geometry: `{"type":"Polygon"}`},
				{Index: 1, Name: "Elsewhere", Key: "x", Props: map[string]any{"name": "Elsewhere"}, Geometry: `null`},
			},
		},
		{
			name: "key and name properties",
			doc:  `{"features":[{"properties":{"n":"A","code":12345678901234567890}}],"type":"FeatureCollection"}`,
			opts: geojson.ScanOptions{NameProperty: "n", KeyProperty: "code"},
			want: []got{{Index: 0, Name: "A", Key: "12345678901234567890", Props: map[string]any{"n": "A", "code": 1.2345678901234567e19}}},
		},
		{
			name: "single feature, members in any order",
			doc:  `{"geometry":{"type":"Polygon"},"properties":{"name":"One"},"type":"Feature","id":"k"}`,
			want: []got{{Index: 0, Name: "One", Key: "k", Props: map[string]any{"name": "One"}, Geometry: `{"type":"Polygon"}`}},
		},
		{name: "CSV", doc: "id,name\n1,France\n", wantErr: "not a GeoJSON document"},
		{name: "array", doc: `[1,2]`, wantErr: "not a GeoJSON document: it does not start with an object"},
		{name: "geometry, not a feature", doc: `{"type":"Polygon","coordinates":[]}`, wantErr: `GeoJSON type "Polygon" is not supported`},
		{name: "no type", doc: `{"features":[]}`, wantErr: "not a GeoJSON document: no type member"},
		{name: "features not an array", doc: `{"type":"FeatureCollection","features":{}}`, wantErr: "not a GeoJSON FeatureCollection: features is not an array"},
		{name: "truncated", doc: `{"type":"FeatureCollection","features":[{"properties":{"name":"A"}},{"prop`, wantErr: "feature 1: not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var gotFeatures []got
			err := geojson.Scan(strings.NewReader(tt.doc), tt.opts, func(f geo.RawFeature) error {
				gotFeatures = append(gotFeatures, got{Index: f.Index, Name: f.Name, Key: f.Key, Props: f.Properties, Geometry: string(f.GeometryJSON)})
				return nil
			})
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, gotFeatures); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}
}
