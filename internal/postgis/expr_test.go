package postgis_test

import (
	"context"
	"slices"
	"testing"

	"github.com/geosearch/search/internal/cql2"
	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

func exprFixture() []geo.Feature {
	return []geo.Feature{
		geotest.Square("Lake", "1", map[string]any{"kind": "lake", "rank": 1.0, "open": true, "code": "1"}, 0, 0, 10, 10),
		geotest.Square("Park", "2", map[string]any{"kind": "park", "rank": 2.5, "open": false}, 20, 20, 30, 30),
		geotest.Square("Road", "3", map[string]any{"kind": "road", "rank": 1e30, "code": 1.0}, 40, 40, 50, 50),
		geotest.Square("Odd", "4", map[string]any{"kind": "it's 100%", "rank": "high", "open": nil}, -50, -50, -40, -40),
	}
}

// TestWhere runs CQL2 filters against PostGIS: each keeps exactly the
// things it should, with CQL2's typing and three-valued logic.
func TestWhere(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "c"}, exprFixture())
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"kind = 'lake'", []string{"Lake"}},
		{"kind <> 'lake'", []string{"Odd", "Park", "Road"}},
		{"rank > 1", []string{"Park", "Road"}},
		{"rank >= 1 AND rank < 3", []string{"Lake", "Park"}},
		{"2 < rank", []string{"Park", "Road"}},
		{"rank > 'a'", []string{"Odd"}}, // strings compare with strings only
		{"code = 1", []string{"Road"}},  // the number, not the string "1"
		{"code = '1'", []string{"Lake"}},
		{"open = TRUE", []string{"Lake"}},
		{"open <> TRUE", []string{"Park"}}, // null and missing are unknown
		{"NOT open = TRUE", []string{"Park"}},
		{"open IS NULL", []string{"Odd", "Road"}},
		{"open IS NOT NULL", []string{"Lake", "Park"}},
		{"kind IN ('lake', 'road', 3)", []string{"Lake", "Road"}},
		{"kind NOT IN ('lake')", []string{"Odd", "Park", "Road"}},
		{"kind LIKE 'p%'", []string{"Park"}},
		{"kind LIKE '_oad'", []string{"Road"}},
		{`kind LIKE '%100\%'`, []string{"Odd"}}, // \ escapes the wildcard
		{"kind = 'it''s 100%'", []string{"Odd"}},
		{"rank BETWEEN 1 AND 2.5", []string{"Lake", "Park"}},
		{"rank NOT BETWEEN 1 AND 2.5", []string{"Road"}},
		{"kind = 'lake' OR kind = 'park' AND rank > 2", []string{"Lake", "Park"}},
		{"(kind = 'lake' OR kind = 'park') AND rank > 2", []string{"Park"}},
		{"S_INTERSECTS(geometry, POINT(5 5))", []string{"Lake"}},
		{"S_INTERSECTS(geometry, BBOX(-60, -60, 25, 25))", []string{"Lake", "Odd", "Park"}},
		{"S_INTERSECTS(geometry, LINESTRING(5 5, 45 45))", []string{"Lake", "Park", "Road"}},
		// A self-intersecting bow tie is repaired, not an error.
		{"S_INTERSECTS(geometry, POLYGON((0 0, 50 50, 50 0, 0 50, 0 0)))", []string{"Lake", "Park", "Road"}},
		{"missing = 1", nil},
		{"NOT missing = 1", nil},
	} {
		e, err := cql2.ParseText(tc.text)
		if err != nil {
			t.Errorf("%s: %v", tc.text, err)
			continue
		}
		var got []string
		for _, th := range search(t, svc, geo.Filter{Collections: []string{"c"}, Where: &e}) {
			got = append(got, th.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.text, got, tc.want)
		}
	}
}

// FuzzWhere sends whatever CQL2 text parses to PostGIS: the search
// answers, or the text was refused as Invalid; never a database error.
func FuzzWhere(f *testing.F) {
	for _, s := range []string{
		"kind = 'lake'", "rank > 1e300", "rank BETWEEN -1e308 AND 1e308", "code = '1' OR NOT open IS NULL",
		`kind LIKE '\'`, `kind LIKE '%\%%'`, "kind IN ('a', 1, TRUE, FALSE)", "open = FALSE",
		"S_INTERSECTS(geometry, POLYGON((0 0, 50 50, 50 0, 0 50, 0 0)))", "S_INTERSECTS(geometry, MULTIPOINT(0 0, 0 0))",
		"S_INTERSECTS(geometry, LINESTRING(1 1, 1 1))", `"x\y" = 'z'`, "rank = 0.0000000000000000000001",
	} {
		f.Add(s)
	}
	svc, _ := newService(f)
	if _, err := svc.Import(context.Background(), geo.ImportOptions{Collection: "c"}, &geotest.Source{Features: exprFixture()}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		e, err := cql2.ParseText(text)
		if err != nil {
			return
		}
		_, err = svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Collections: []string{"c"}, Where: &e}, Limit: 10})
		if err != nil && geo.ErrorCode(err) != geo.Invalid {
			t.Fatalf("%q: %v (%v)", text, err, geo.ErrorCode(err))
		}
	})
}

var _ = postgis.NewSearchService
