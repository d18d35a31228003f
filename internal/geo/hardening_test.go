package geo_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/geojson"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

func TestCountPositionsMatchesTheDecodedGeometry(t *testing.T) {
	t.Parallel()
	docs := map[string]string{
		"polygon":              `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`,
		"spaces and negatives": `{ "type" : "Polygon" , "coordinates" : [ [ [ -1.5 , 0 ] , [1,0] , [ 1 , -1e3 ] , [-1.5,0] ] ] }`,
		"bbox and members":     `{"type":"Polygon","bbox":[0,0,1,1],"coordinates":[[[0,0],[1,0],[1,1],[0,0]]],"x":{"coordinates":[[1,2]]},"s":"[[1,2]]"}`,
		"escaped key":          `{"type":"Polygon","coordin\"ates":[[9,9]],"coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`,
		"multipolygon":         `{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,5],[6,6],[5,5]],[[5.1,5.1],[5.2,5.1],[5.2,5.2],[5.1,5.1]]]]}`,
		"z values":             `{"type":"Polygon","coordinates":[[[0,0,1],[1,0,1],[1,1,1],[0,0,1]]]}`,
	}
	for name, doc := range docs {
		var g geom.T
		if err := geojson.Unmarshal([]byte(doc), &g); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want, got := g.(interface{ NumCoords() int }).NumCoords(), geo.CountPositions([]byte(doc)); got != want {
			t.Errorf("%s: counted %d positions, the decoded geometry has %d", name, got, want)
		}
	}
	for _, file := range []string{"ne_110m_countries.geojson", "ne_50m_countries.geojson"} {
		for _, rf := range geotest.LoadRaw(t, file) {
			var g geom.T
			if err := geojson.Unmarshal(rf.GeometryJSON, &g); err != nil {
				t.Fatalf("%s %s: %v", file, rf.Name, err)
			}
			want := len(g.FlatCoords()) / g.Stride()
			if got := geo.CountPositions(rf.GeometryJSON); got != want {
				t.Errorf("%s %s: counted %d positions, the decoded geometry has %d", file, rf.Name, got, want)
			}
		}
	}
}

// TestAGeometryOverTheVertexLimitIsNotDecoded: the limit is checked before
// the JSON is decoded, so a huge geometry costs no allocation for its
// coordinates (counted, not timed).
func TestAGeometryOverTheVertexLimitIsNotDecoded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"Polygon","coordinates":[[`)
	for i := range 20000 {
		fmt.Fprintf(&b, "[%d.5,%d.25],", i%180, i%90)
	}
	b.WriteString(`[0.5,0.25]]]}`)
	raw := geo.RawFeature{Name: "huge", GeometryJSON: []byte(b.String())}
	var err error
	allocs := testing.AllocsPerRun(5, func() {
		_, err = geo.DecodeFeature(raw, geo.Limits{MaxVertices: 1000})
	})
	if geo.ErrorCode(err) != geo.Invalid || geo.ErrorMessage(err) != "geometry has 20001 vertices; the limit is 1000" {
		t.Fatalf("got %v, want the vertex limit", err)
	}
	if allocs > 10 {
		t.Errorf("refusing a 20,001-vertex geometry made %v allocations, want a handful (it was decoded first)", allocs)
	}
}

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
	err := geo.ScanFeatureCollection(strings.NewReader(doc), geo.ScanOptions{}, func(rf geo.RawFeature) error {
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
