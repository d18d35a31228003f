package geo_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/geosearch/search/internal/geo"
)

// goldenCase is a search and a position in it whose page token a release
// issued.
type goldenCase struct {
	name   string
	filter func(t *testing.T) geo.Filter
	cursor geo.Cursor
}

// goldenCases cover every filter field, alone and together, in orders the
// canonical form folds. Their tokens are in testdata: a case's token must
// keep decoding to its cursor, with its filter, in every later version.
func goldenCases() []goldenCase {
	area := func(t *testing.T) *geo.Area {
		t.Helper()
		a, err := geo.DecodeArea([]byte(`{"type":"Polygon","coordinates":[[[-5,-5],[15,-5],[15,15],[-5,15],[-5,-5]]]}`))
		if err != nil {
			t.Fatal(err)
		}
		return &a
	}
	where := &geo.Expr{And: []geo.Expr{
		{Compare: &geo.Comparison{Property: "rank", Op: geo.OpGe, Value: 2.0}},
		{Not: &geo.Expr{Compare: &geo.Comparison{Property: "kind", Op: geo.OpEq, Value: "road"}}},
		{Or: []geo.Expr{
			{In: &geo.InList{Property: "zone", Values: []any{"a", 1.0, true}}},
			{Like: &geo.LikePattern{Property: "name", Pattern: "Ber%"}},
			{Between: &geo.Range{Property: "pop", Low: 1, High: 1e6}},
			{IsNull: "closed"},
			{Intersects: `{"type":"Point","coordinates":[1,2]}`},
		}},
	}}
	cur := geo.Cursor{ID: 42, Name: "Berlin"}
	return []goldenCase{
		{"query", func(*testing.T) geo.Filter { return geo.Filter{Query: "ber"} }, cur},
		{"point", func(*testing.T) geo.Filter { return geo.Filter{Point: &geo.Point{Lat: 52.5, Lng: 13.4}} }, cur},
		{"nearest", func(*testing.T) geo.Filter {
			return geo.Filter{Point: &geo.Point{Lat: 52.5, Lng: 13.4}, MaxDistanceM: 10_000}
		}, geo.Cursor{ID: 7, Name: "Potsdam", DistanceM: 1234.5}},
		{"bbox", func(*testing.T) geo.Filter {
			return geo.Filter{BBox: &geo.BBox{MinLng: 170, MinLat: -20, MaxLng: -170, MaxLat: -10}}
		}, cur},
		{"bbox within", func(*testing.T) geo.Filter {
			return geo.Filter{BBox: &geo.BBox{MinLng: -5, MinLat: -5, MaxLng: 25, MaxLat: 25}, Relation: geo.Within}
		}, cur},
		{"area contains", func(t *testing.T) geo.Filter { return geo.Filter{Area: area(t), Relation: geo.Contains} }, cur},
		{"collections", func(*testing.T) geo.Filter { return geo.Filter{Collections: []string{"roads", "parks", "roads"}} }, cur},
		{"properties", func(*testing.T) geo.Filter {
			return geo.Filter{Properties: []geo.PropertyFilter{
				{Key: "z", Values: []any{"y", "x", 2.0, true}}, {Key: "k", Values: []any{1.0}}}}
		}, cur},
		{"where", func(*testing.T) geo.Filter { return geo.Filter{Where: where} }, cur},
		{"everything", func(t *testing.T) geo.Filter {
			return geo.Filter{Query: "ber", Area: area(t), Relation: geo.Within, Collections: []string{"b", "a"},
				Properties: []geo.PropertyFilter{{Key: "kind", Values: []any{"park", "road"}}}, Where: where}
		}, geo.Cursor{ID: 1 << 40, Name: "Ünïcode name"}},
	}
}

// TestWriteGoldenPageTokens writes the tokens of the code it runs with into
// testdata/pagetokens-v1.json when GOLDEN_PAGE_TOKENS names that file: the
// release's tokens were written so, by the code of the release.
func TestWriteGoldenPageTokens(t *testing.T) {
	path := os.Getenv("GOLDEN_PAGE_TOKENS")
	if path == "" {
		t.Skip("GOLDEN_PAGE_TOKENS is not set: nothing to write")
	}
	out := map[string]string{}
	for _, c := range goldenCases() {
		out[c.name] = geo.EncodePageToken(c.filter(t), c.cursor)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", path), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
