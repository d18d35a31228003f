package httpapi_test

import (
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestItemsFilter: CQL2 text on items, over the queryables, with the
// conformance classes declared, a next link that keeps the filter, and a
// 400 that names where a syntax error is.
func TestItemsFilter(t *testing.T) {
	t.Parallel()
	a := start(t)
	conf := a.get(t, "/conformance").json(t)["conformsTo"].([]any)
	for _, want := range []string{"ogcapi-features-3/1.0/conf/filter", "ogcapi-features-3/1.0/conf/features-filter", "cql2/1.0/conf/cql2-text", "cql2/1.0/conf/basic-cql2", "cql2/1.0/conf/advanced-comparison-operators", "cql2/1.0/conf/basic-spatial-functions"} {
		if !slices.ContainsFunc(conf, func(c any) bool { return strings.HasSuffix(c.(string), want) }) {
			t.Errorf("conformsTo lacks %s", want)
		}
	}
	items := func(filter string, extra ...string) string {
		return "/collections/default/items?filter=" + url.QueryEscape(filter) + strings.Join(extra, "")
	}
	for filter, want := range map[string][]string{
		"iso_n3 = '250'": {"France"},
		"iso_n3 IN ('250', '724') AND NOT name = 'Spain'":                   {"France"},
		"name LIKE 'Fran%' OR name LIKE 'Germ%'":                            {"France", "Germany"},
		"S_INTERSECTS(geometry, POINT(2.35 48.85))":                         {"France"},
		"S_INTERSECTS(geometry, BBOX(2, 48, 3, 49)) AND iso_n3 IS NOT NULL": {"France"},
	} {
		got := featureNames(t, a, items(filter, "&filter-lang=cql2-text"))
		if !slices.Equal(got, want) {
			t.Errorf("filter %q: %v, want %v", filter, got, want)
		}
	}
	json := `{"op": "and", "args": [{"op": "in", "args": [{"property": "iso_n3"}, ["250", "724"]]}, {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [2.35, 48.85]}]}]}`
	if got := featureNames(t, a, items(json, "&filter-lang=cql2-json")); !slices.Equal(got, []string{"France"}) {
		t.Errorf("CQL2-JSON filter: %v, want France", got)
	}
	// Paging keeps the filter: 3 a page of the countries named A...
	first := a.get(t, items("name LIKE 'A%'", "&limit=3"))
	if next := mustLink(t, links(t, first.json(t)["links"]), "next").Href; !strings.Contains(next, "filter=") {
		t.Errorf("next link %s lacks the filter", next)
	}
	paged := featureNames(t, a, items("name LIKE 'A%'", "&limit=3"))
	if len(paged) < 4 {
		t.Errorf("the countries named A, 3 a page: %v", paged)
	}
	for _, n := range paged {
		if !strings.HasPrefix(n, "A") {
			t.Errorf("a page holds %s", n)
		}
	}
	for _, c := range []struct {
		path, want string
	}{
		{items("iso_n3 = "), "syntax error at character 10"},
		{items("iso_n3 = '250' name = 'x'"), "syntax error at character 16"},
		{items("colour = 'red'"), `"colour" is not a queryable property`},
		{items("iso_n3 = '250'", "&filter-lang=cql2-json"), "not JSON"},
		{items("iso_n3 = '250'", "&filter-lang=ecql"), "not offered"},
		{items("iso_n3 = '250'", "&filter-crs=EPSG:4326"), "filter-crs"},
		{"/collections/default/items?filter-lang=cql2-text", "without a filter"},
		{items("S_INTERSECTS(geometry, POINT(200 0))"), "not on the globe"},
	} {
		wantException(t, c.path, a.get(t, c.path), http.StatusBadRequest, c.want)
	}
}

// TestGDALSendsTheWhereToTheServer: ogr2ogr -where on a queryable (an OR,
// which Part 1's property parameters cannot say) copies France and Spain,
// and the server's access log shows the filter in the items
// request: the server filtered, not GDAL.
func TestGDALSendsTheWhereToTheServer(t *testing.T) {
	t.Parallel()
	a := start(t)
	out := filepath.Join(t.TempDir(), "where.geojson")
	gdal(t, "ogr2ogr", "-f", "GeoJSON", "-where", "iso_n3 = '250' OR iso_n3 = '724'", out, "OAPIF:"+a.base, "default")
	if names := readNames(t, out); !slices.Equal(names, []string{"France", "Spain"}) {
		t.Errorf("ogr2ogr -where copied %v", names)
	}
	var filtered []string
	for _, rec := range a.access.records(t) {
		if rec["route"] == "items" {
			if q, _ := rec["query"].(string); strings.Contains(q, "filter=") {
				filtered = append(filtered, q)
			}
		}
	}
	if len(filtered) == 0 {
		t.Errorf("no items request carried a filter: GDAL filtered on its side; access log %v", a.access.records(t))
	}
}
