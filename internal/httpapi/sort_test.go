package httpapi_test

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// orderedNames returns the names of every feature from url on, following
// next links, in the order served, and the next links followed.
func orderedNames(t *testing.T, a *api, url string) ([]string, []string) {
	t.Helper()
	var names, nexts []string
	for url != "" {
		r := a.get(t, url)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", url, r.status, r.body)
		}
		page := r.json(t)
		for _, f := range page["features"].([]any) {
			names = append(names, f.(map[string]any)["properties"].(map[string]any)["name"].(string))
		}
		next, _ := findLink(t, links(t, page["links"]), "next")
		url = next.Href
		if url != "" {
			nexts = append(nexts, url)
		}
	}
	return names, nexts
}

// TestItemsSortBy: sortby on items orders by queryable properties, up and
// down, through keyset next links that keep the sort; values of several
// types and ties keep a total order; the class is declared, the sortables
// are listed, and an unknown property or a token of another order is a
// 400 that says so.
func TestItemsSortBy(t *testing.T) {
	t.Parallel()
	a := start(t)
	fs := typedCountries(t)
	importInto(t, a, "typed", fs)
	conf := a.get(t, "/conformance").json(t)["conformsTo"].([]any)
	if !slices.ContainsFunc(conf, func(c any) bool { return strings.HasSuffix(c.(string), "ogcapi-features-8/1.0/conf/sorting") }) {
		t.Errorf("conformsTo lacks the sorting class: %v", conf)
	}

	type row struct {
		i          int
		name       string
		rank       float64
		codeNumber bool
	}
	rows := make([]row, len(fs))
	for i, f := range fs {
		_, isNumber := f.Properties["code"].(float64)
		rows[i] = row{i, f.Name, f.Properties["rank"].(float64), isNumber}
	}
	want := func(less func(a, b row) int) []string {
		sorted := slices.Clone(rows)
		slices.SortStableFunc(sorted, less) // stable: ties stay in id (import) order
		out := make([]string, len(sorted))
		for i, r := range sorted {
			out[i] = r.name
		}
		return out
	}
	for _, tc := range []struct {
		sortby string
		want   []string
	}{
		{"-rank,name", want(func(a, b row) int { return cmp.Or(cmp.Compare(b.rank, a.rank), strings.Compare(a.name, b.name)) })},
		{"%2Brank", want(func(a, b row) int { return cmp.Compare(a.rank, b.rank) })},
		{"+rank", want(func(a, b row) int { return cmp.Compare(a.rank, b.rank) })}, // "+" read as a space
		{"-name", want(func(a, b row) int { return strings.Compare(b.name, a.name) })},
		// code holds numbers (odd rows) and strings (even): numbers first.
		{"code", want(func(a, b row) int {
			if a.codeNumber != b.codeNumber {
				if a.codeNumber {
					return -1
				}
				return 1
			}
			return 0
		})},
	} {
		got, nexts := orderedNames(t, a, "/collections/typed/items?limit=7&sortby="+tc.sortby)
		if !slices.Equal(got, tc.want) {
			t.Errorf("sortby=%s:\n got %v\nwant %v", tc.sortby, got, tc.want)
		}
		for _, n := range nexts {
			if !strings.Contains(n, "sortby=") || strings.Contains(n, "offset") {
				t.Errorf("sortby=%s: next link %s does not keep the sort", tc.sortby, n)
			}
		}
	}

	sortables := a.get(t, "/collections/typed/sortables")
	if sortables.status != http.StatusOK || sortables.header.Get("Content-Type") != "application/schema+json" {
		t.Fatalf("sortables: %d %s", sortables.status, sortables.header.Get("Content-Type"))
	}
	props := sortables.json(t)["properties"].(map[string]any)
	for _, k := range []string{"rank", "name", "code"} {
		if props[k] == nil {
			t.Errorf("sortables lack %s: %v", k, props)
		}
	}
	coll := a.get(t, "/collections/typed").json(t)
	mustLink(t, links(t, coll["links"]), "http://www.opengis.net/def/rel/ogc/1.0/sortables")

	first := a.get(t, "/collections/typed/items?limit=2").json(t)
	unsortedNext := mustLink(t, links(t, first["links"]), "next").Href
	for _, c := range []struct{ path, want string }{
		{"/collections/typed/items?sortby=colour", `"colour" is not a sortable property`},
		{"/collections/typed/items?sortby=rank,nested", `"nested" is not a sortable property`},
		{"/collections/typed/items?sortby=rank,,name", "empty key"},
		{"/collections/typed/items?sortby=rank,-rank", "sorted by twice"},
		{"/collections/typed/items?sortby=rank&sortby=name", "given 2 times"},
		{unsortedNext + "&sortby=rank", "different search"},
	} {
		wantException(t, c.path, a.get(t, c.path), http.StatusBadRequest, c.want)
	}
}
