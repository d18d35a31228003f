package cql2_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/geosearch/search/internal/cql2"
	"github.com/geosearch/search/internal/geo"
)

func cmpExpr(p, op string, v any) geo.Expr {
	return geo.Expr{Compare: &geo.Comparison{Property: p, Op: op, Value: v}}
}

func TestParseText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       geo.Expr
	}{
		{"equals a string", "iso_n3 = '250'", cmpExpr("iso_n3", "=", "250")},
		{"quoted property and doubled quote", `"pop est" >= 1e6 and name <> 'Côte d''Ivoire'`, geo.Expr{And: []geo.Expr{cmpExpr("pop est", ">=", 1e6), cmpExpr("name", "<>", "Côte d'Ivoire")}}},
		{"a value on the left is flipped", "10 < rank", cmpExpr("rank", ">", 10.0)},
		{"AND binds tighter than OR", "a = 1 OR b = 2 AND c = 3", geo.Expr{Or: []geo.Expr{cmpExpr("a", "=", 1.0), {And: []geo.Expr{cmpExpr("b", "=", 2.0), cmpExpr("c", "=", 3.0)}}}}},
		{"parentheses and NOT", "NOT (a = TRUE OR b = false)", geo.Expr{Not: &geo.Expr{Or: []geo.Expr{cmpExpr("a", "=", true), cmpExpr("b", "=", false)}}}},
		{"IN", "kind IN ('lake', 'park', 3)", geo.Expr{In: &geo.InList{Property: "kind", Values: []any{"lake", "park", 3.0}}}},
		{"NOT IN", "kind not in ('road')", geo.Expr{Not: &geo.Expr{In: &geo.InList{Property: "kind", Values: []any{"road"}}}}},
		{"LIKE", "name LIKE 'Fr%'", geo.Expr{Like: &geo.LikePattern{Property: "name", Pattern: "Fr%"}}},
		{"NOT LIKE", "name NOT LIKE '_x'", geo.Expr{Not: &geo.Expr{Like: &geo.LikePattern{Property: "name", Pattern: "_x"}}}},
		{"BETWEEN", "rank BETWEEN -1.5 AND 2", geo.Expr{Between: &geo.Range{Property: "rank", Low: -1.5, High: 2}}},
		{"IS NULL", "open IS NULL", geo.Expr{IsNull: "open"}},
		{"IS NOT NULL", "open is not null", geo.Expr{Not: &geo.Expr{IsNull: "open"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := cql2.ParseText(tc.text)
			if err != nil {
				t.Fatalf("ParseText(%q): %v", tc.text, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseText(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestParseTextGeometries(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]string{
		"S_INTERSECTS(geometry, POINT(2.35 48.85))":                                            `{"type":"Point","coordinates":[2.35,48.85]}`,
		"s_intersects(BBOX(2, 48, 3, 49), geom)":                                               `{"type":"Polygon","coordinates":[[[2,48],[3,48],[3,49],[2,49],[2,48]]]}`,
		"S_INTERSECTS(geometry, LINESTRING(0 0, 10 10))":                                       `{"type":"LineString","coordinates":[[0,0],[10,10]]}`,
		"S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1, 0 0)))":                                `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`,
		"S_INTERSECTS(geometry, MULTIPOINT((0 0), (1 1)))":                                     `{"type":"MultiPoint","coordinates":[[0,0],[1,1]]}`,
		"S_INTERSECTS(geometry, MULTIPOINT(0 0, 1 1))":                                         `{"type":"MultiPoint","coordinates":[[0,0],[1,1]]}`,
		"S_INTERSECTS(geometry, MULTILINESTRING((0 0, 1 1), (2 2, 3 3)))":                      `{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[2,2],[3,3]]]}`,
		"S_INTERSECTS(geometry, MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5))))": `{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],[[[5,5],[6,5],[6,6],[5,5]]]]}`,
	} {
		got, err := cql2.ParseText(text)
		if err != nil {
			t.Errorf("ParseText(%q): %v", text, err)
			continue
		}
		var a, b any
		_ = json.Unmarshal([]byte(want), &a)
		_ = json.Unmarshal([]byte(got.Intersects), &b)
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("ParseText(%q) (-want +got):\n%s", text, diff)
		}
	}
}

// TestParseTextErrors: every error is Invalid, and a syntax error names
// the character where it is.
func TestParseTextErrors(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]string{
		"":                                     "character 1: expected a property",
		"iso_n3 = ":                            "character 10: expected a property",
		"iso_n3 == '250'":                      "character 9: expected a property",
		"a = 1 AND":                            "character 10: expected a property",
		"a = 1 b = 2":                          "character 7: expected AND, OR or the end of the filter, got \"b\"",
		"(a = 1":                               `character 7: expected ")"`,
		"a = 'open":                            "character 5: an unterminated quoted text",
		"a = 1 ; DROP TABLE thing":             `character 7: unexpected character ';'`,
		"a = b":                                "comparison of two properties",
		"1 = 2":                                "needs a property",
		"a BETWEEN 1 AND 'x'":                  "character 17: expected a number",
		"a IN ()":                              "character 7: expected a property, a quoted 'text'",
		"a IS 1":                               "character 6: expected NULL",
		"a LIKE 1":                             "character 8: expected a quoted 'pattern'",
		"a = 1e999":                            `character 5: "1e999" is not a finite number`,
		"a < TRUE":                             "booleans compare with = and <> only",
		"a.b = 1":                              "nested path",
		"S_INTERSECTS(geometry, POINT(200 0))": "not on the globe",
		"S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1)))":          "four positions or more",
		"S_INTERSECTS(geometry, CIRCLE(0 0))":                       "character 24: expected the geometry property",
		"S_INTERSECTS(name, POINT(0 0))":                            "the geometry property",
		"S_INTERSECTS(geometry, BBOX(3, 48, 2, 49))":                "west <= east",
		strings.Repeat("(", 50) + "a = 1" + strings.Repeat(")", 50): "nests deeper",
		"a IN (" + strings.Repeat("1,", 300) + "1)":                 "more than 200",
		"Ä = 1 ✓": "character 7: unexpected character '✓'",
	} {
		_, err := cql2.ParseText(text)
		if geo.ErrorCode(err) != geo.Invalid || !strings.Contains(geo.ErrorMessage(err), want) {
			t.Errorf("ParseText(%q): %v (%v), want Invalid containing %q", text, err, geo.ErrorCode(err), want)
		}
	}
}

// FuzzParseText: whatever the text, ParseText returns a valid expression
// or an Invalid error, never a panic. The database side is
// postgis.FuzzWhere.
func FuzzParseText(f *testing.F) {
	for _, s := range []string{
		"iso_n3 = '250'", "a = 1 OR b = 2 AND NOT c IN ('x', 2, TRUE)", "name LIKE 'Fr%' AND rank BETWEEN 1 AND 2",
		"open IS NOT NULL", "S_INTERSECTS(geometry, POLYGON((0 0, 1 0, 1 1, 0 0)))", "S_INTERSECTS(BBOX(1,2,3,4), geom)",
		"S_INTERSECTS(geometry, MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5))))", `"a b" <> 'it''s'`, "((a = 1))",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		e, err := cql2.ParseText(text)
		if err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("ParseText(%q): %v, not Invalid", text, err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("ParseText(%q) returned an expression that does not validate: %v", text, err)
		}
	})
}

// TestParseJSON: CQL2-JSON reads into the same expressions as CQL2 text.
func TestParseJSON(t *testing.T) {
	t.Parallel()
	for js, text := range map[string]string{
		`{"op": "=", "args": [{"property": "iso_n3"}, "250"]}`: "iso_n3 = '250'",
		`{"op": "<", "args": [10, {"property": "rank"}]}`:      "10 < rank",
		`{"op": "or", "args": [{"op": "isNull", "args": [{"property": "a"}]}, {"op": "not", "args": [{"op": "like", "args": [{"property": "b"}, "x%"]}]}]}`: "a IS NULL OR b NOT LIKE 'x%'",
		`{"op": "and", "args": [{"op": "in", "args": [{"property": "k"}, ["a", 1, true]]}, {"op": "between", "args": [{"property": "r"}, 1, 2]}]}`:          "k IN ('a', 1, TRUE) AND r BETWEEN 1 AND 2",
		`{"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [2, 48, 3, 49]}]}`:                                                              "S_INTERSECTS(geometry, BBOX(2, 48, 3, 49))",
		`{"op": "s_intersects", "args": [{"type": "Point", "coordinates": [2.35, 48.85]}, {"property": "geometry"}]}`:                                       "S_INTERSECTS(geometry, POINT(2.35 48.85))",
	} {
		got, err := cql2.ParseJSON(js)
		if err != nil {
			t.Errorf("ParseJSON(%s): %v", js, err)
			continue
		}
		want, err := cql2.ParseText(text)
		if err != nil {
			t.Fatal(err)
		}
		if got.Intersects != "" {
			var a, b any
			_ = json.Unmarshal([]byte(got.Intersects), &a)
			_ = json.Unmarshal([]byte(want.Intersects), &b)
			if diff := cmp.Diff(b, a); diff != "" {
				t.Errorf("ParseJSON(%s) (-want +got):\n%s", js, diff)
			}
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParseJSON(%s) (-want +got):\n%s", js, diff)
		}
	}
	for js, want := range map[string]string{
		`{"op": "=", "args": [1, 2]}`:                     "needs a {\"property\"",
		`{"op": "~", "args": []}`:                         "unsupported op",
		`{"op": "=", "args": [{"property": "a"}, [1]]}`:   "must be a string, a number or a boolean",
		`{"op": "=", "args": [{"property": "a"}, 1e999]}`: "not a finite number",
		`{"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [200, 0]}]}`: "not on the globe",
		`[1, 2]`:       "must be an object",
		`{"op": "and"`: "not JSON",
	} {
		_, err := cql2.ParseJSON(js)
		if geo.ErrorCode(err) != geo.Invalid || !strings.Contains(geo.ErrorMessage(err), want) {
			t.Errorf("ParseJSON(%s): %v, want Invalid containing %q", js, err, want)
		}
	}
}

// FuzzParseJSON: whatever the JSON, ParseJSON returns a valid expression
// or an Invalid error.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"op": "=", "args": [{"property": "iso_n3"}, "250"]}`,
		`{"op": "and", "args": [{"op": "in", "args": [{"property": "k"}, ["a", 1, true]]}, {"op": "between", "args": [{"property": "r"}, 1, 2]}]}`,
		`{"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [2, 48, 3, 49]}]}`,
		`{"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		e, err := cql2.ParseJSON(text)
		if err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("ParseJSON(%q): %v, not Invalid", text, err)
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("ParseJSON(%q) returned an expression that does not validate: %v", text, err)
		}
	})
}
