package httpapi_test

import (
	"maps"
	"net/http"
	"slices"
	"testing"
)

// TestItemsPropertySelection: properties= chooses the properties of each
// feature; the features, their order and paging stay the same.
func TestItemsPropertySelection(t *testing.T) {
	t.Parallel()
	a := start(t)
	props := func(path string) [][]string {
		t.Helper()
		r := a.get(t, path)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var out [][]string
		for _, f := range r.json(t)["features"].([]any) {
			out = append(out, slices.Sorted(maps.Keys(f.(map[string]any)["properties"].(map[string]any))))
		}
		return out
	}
	for path, want := range map[string][]string{
		"/collections/default/items?limit=3&properties=iso_n3":           {"iso_n3"},
		"/collections/default/items?limit=3&properties=name,iso_n3,name": {"iso_n3", "name"},
		"/collections/default/items?limit=3&properties=collection":       {"collection"},
		"/collections/default/items?limit=3&properties=":                 {},
		"/collections/default/items?limit=3":                             {"collection", "iso_n3", "key", "name"},
	} {
		got := props(path)
		if len(got) != 3 {
			t.Fatalf("%s: %d features", path, len(got))
		}
		for _, g := range got {
			if !slices.Equal(g, want) && !(len(g) == 0 && len(want) == 0) {
				t.Errorf("%s: properties %v, want %v", path, g, want)
			}
		}
	}
	with := featureNames(t, a, "/collections/default/items?limit=7&properties=name")
	without := featureNames(t, a, "/collections/default/items?limit=7")
	if !slices.Equal(with, without) {
		t.Errorf("selecting properties changed the features: %d vs %d", len(with), len(without))
	}
	wantException(t, "unknown property", a.get(t, "/collections/default/items?properties=colour"), http.StatusBadRequest, `"colour" is not a property`)
}
