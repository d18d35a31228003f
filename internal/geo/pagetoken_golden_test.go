package geo_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
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

// readGolden reads testdata/name: a case's name -> its token.
func readGolden(t *testing.T, name string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var tokens map[string]string
	if err := json.Unmarshal(b, &tokens); err != nil {
		t.Fatal(err)
	}
	return tokens
}

// TestFirstReleasePageTokensKeepWorking: the tokens the first release
// issued (testdata/pagetokens-v1.json, written by main's code at 00ae2d5,
// whose fingerprint was the JSON of the whole filter) still page through
// their searches, and are issued again as they were, so that instances of
// that release read this one's during a rolling deploy.
func TestFirstReleasePageTokensKeepWorking(t *testing.T) {
	t.Parallel()
	checkGolden(t, readGolden(t, "pagetokens-v1.json"), geo.EncodePageToken)
}

// TestStablePageTokensKeepWorking: the tokens of the stable encoding
// (versions 3 and 4, testdata/pagetokens-stable.json) decode, and are
// encoded the same, forever.
func TestStablePageTokensKeepWorking(t *testing.T) {
	t.Parallel()
	checkGolden(t, readGolden(t, "pagetokens-stable.json"), geo.EncodeStablePageToken)
}

func checkGolden(t *testing.T, golden map[string]string, encode func(geo.Filter, geo.Cursor) string) {
	t.Helper()
	cases := goldenCases()
	if len(golden) != len(cases) {
		t.Errorf("%d golden tokens for %d cases", len(golden), len(cases))
	}
	other := geo.Filter{Query: "another search"}
	for _, c := range cases {
		tok, ok := golden[c.name]
		if !ok {
			// Golden files are written once, when their encoding is
			// released, and only grow: a new case's token is added by hand.
			t.Errorf("%s: no golden token; this code encodes it as %q", c.name, encode(c.filter(t), c.cursor))
			continue
		}
		f := c.filter(t)
		got, err := geo.DecodePageToken(tok, f, "page_token")
		if err != nil || !reflect.DeepEqual(got, c.cursor) {
			t.Errorf("%s: golden token decoded to %+v, %v; want %+v", c.name, got, err, c.cursor)
		}
		if enc := encode(f, c.cursor); enc != tok {
			t.Errorf("%s: encoded %s, golden %s", c.name, enc, tok)
		}
		if _, err := geo.DecodePageToken(tok, other, "page_token"); err == nil {
			t.Errorf("%s: golden token accepted for another search", c.name)
		}
	}
}
