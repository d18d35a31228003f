package httpapi_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/httpapi"
)

// importInto imports features into collection of a's store.
func importInto(t *testing.T, a *api, collection string, features []geo.Feature) {
	t.Helper()
	res, err := a.svc.Import(context.Background(), geo.ImportOptions{Collection: collection}, &geotest.Source{Features: features})
	if err != nil || res.Rejected.Count > 0 {
		t.Fatalf("import into %s: %v, rejected %v", collection, err, res.Rejected.Listed)
	}
}

// typedCountries are the 1:110m countries with properties of every JSON
// type: rank a number (i mod 5), even a boolean, code the string "7" in
// even features and the number 7 in odd ones, label a string with a comma,
// and some that no parameter can filter on (an object, a key named like the
// limit parameter, a nested-looking key, a null).
func typedCountries(t *testing.T) []geo.Feature {
	t.Helper()
	fs := geotest.Load(t, "ne_110m_countries.geojson")
	for i := range fs {
		p := maps.Clone(fs[i].Properties)
		p["rank"] = float64(i % 5)
		p["even"] = i%2 == 0
		if i%2 == 0 {
			p["code"] = "7"
		} else {
			p["code"] = float64(7)
		}
		p["label"] = fmt.Sprintf("%s, %d", fs[i].Name, i)
		p["nested"] = map[string]any{"a": 1}
		p["limit"] = float64(1)
		p["a.b"] = "x"
		p["nothing"] = nil
		fs[i].Properties = p
		fs[i].Key = fmt.Sprint(i)
	}
	return fs
}

// featureNames returns the names of every feature from url on, following
// next links, sorted.
func featureNames(t *testing.T, a *api, url string) []string {
	t.Helper()
	var names []string
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
	}
	sort.Strings(names)
	return names
}

// TestPropertyFilters: ?name=value on a collection's queryable properties
// (/rec/core/fc-filters): the queryables are the top-level keys the things
// use with string, number or boolean values; a value is typed by the
// property; commas separate values that match any of them; filters on
// several properties all match; an unknown property is a 400; paging keeps
// the filter; the queryables follow an import.
func TestPropertyFilters(t *testing.T) {
	t.Parallel()
	a := start(t)
	fs := typedCountries(t)
	importInto(t, a, "typed", fs)
	names := func(keep func(i int) bool) []string {
		var out []string
		for i, f := range fs {
			if keep(i) {
				out = append(out, f.Name)
			}
		}
		sort.Strings(out)
		return out
	}

	// The queryables resource.
	r := a.get(t, "/collections/typed/queryables")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/schema+json" {
		t.Fatalf("queryables: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	props := r.json(t)["properties"].(map[string]any)
	types := map[string]string{}
	for k, v := range props {
		types[k] = fmt.Sprint(v.(map[string]any)["type"])
	}
	want := map[string]string{"name": "string", "iso_n3": "string", "rank": "number", "even": "boolean", "code": "[number string]", "label": "string"}
	if !maps.Equal(types, want) {
		t.Errorf("queryables %v, want %v", types, want)
	}
	wantException(t, "queryables of an unknown collection", a.get(t, "/collections/rivers/queryables"), http.StatusNotFound, `there is no collection "rivers"`)

	items := "/collections/typed/items?limit=50"
	for _, tt := range []struct {
		name, query string
		want        []string
	}{
		{"a string", "iso_n3=250", []string{"France"}},
		{"any of two strings", "iso_n3=250,392", []string{"France", "Japan"}},
		{"two properties, both must match", "name=France&iso_n3=392", nil},
		{"two properties that match", "name=France&iso_n3=250", []string{"France"}},
		{"a number", "rank=3", names(func(i int) bool { return i%5 == 3 })},
		{"a number written otherwise", "rank=3e0", names(func(i int) bool { return i%5 == 3 })},
		{"numbers, any of", "rank=1,4", names(func(i int) bool { return i%5 == 1 || i%5 == 4 })},
		{"a boolean", "even=false", names(func(i int) bool { return i%2 == 1 })},
		{"a boolean and a number", "even=true&rank=0", names(func(i int) bool { return i%2 == 0 && i%5 == 0 })},
		{"a value read as a string and as a number", "code=7", names(func(int) bool { return true })},
		{"a value only a string can be", "code=07", nil},
		{"a comma inside a value, percent-encoded", "label=" + url.QueryEscape(fs[4].Name+", 4"), []string{fs[4].Name}},
		{"a comma between values", "label=" + url.QueryEscape(fs[4].Name+", 4") + "," + url.QueryEscape(fs[5].Name+", 5"), names(func(i int) bool { return i == 4 || i == 5 })},
		{"no such value", "iso_n3=000", nil},
		{"with a bbox", "bbox=-5,42,8,51&iso_n3=250,724,392", []string{"France", "Spain"}},
		{"with a name search", "q=an&even=true&rank=2", names(func(i int) bool {
			return i%2 == 0 && i%5 == 2 && strings.Contains(strings.ToLower(fs[i].Name), "an")
		})},
	} {
		// Pages of 7, following next links: the filter stays in them.
		got := featureNames(t, a, "/collections/typed/items?limit=7&"+tt.query)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s (%s): %v, want %v", tt.name, tt.query, got, tt.want)
		}
	}
	// Pages of one: the next links keep the comma inside a value apart
	// from the comma between values.
	two := "label=" + url.QueryEscape(fs[4].Name+", 4") + "," + url.QueryEscape(fs[5].Name+", 5")
	if got := featureNames(t, a, "/collections/typed/items?limit=1&"+two); !slices.Equal(got, names(func(i int) bool { return i == 4 || i == 5 })) {
		t.Errorf("%s in pages of one: %v", two, got)
	}
	// Every page of a filtered walk is a valid page, and the count holds.
	if n := walkItems(t, a, "/collections/typed/items?limit=7&rank=1,4", 7); n != len(names(func(i int) bool { return i%5 == 1 || i%5 == 4 })) {
		t.Errorf("walking rank=1,4: %d features", n)
	}

	for _, tt := range []struct{ name, query, want string }{
		{"an unknown property", "color=red", `unknown parameter "color"`},
		{"an object property", "nested=1", `unknown parameter "nested"`},
		{"a nested-looking key", "a.b=x", `unknown parameter "a.b"`},
		{"a property that is always null", "nothing=null", `unknown parameter "nothing"`},
		{"a number property given a word", "rank=three", `"three" is not a number`},
		{"a number property given NaN", "rank=NaN", `"NaN" is not a number`},
		{"a boolean property given yes", "even=yes", `"yes" is not a boolean`},
		{"a property given twice", "iso_n3=250&iso_n3=392", `"iso_n3" is given 2 times`},
		{"an empty value among values", "rank=1,,2", `"" is not a number`},
		{"a malformed escape", "iso_n3=%zz", "not a valid percent-encoded value"},
		{"too many values", "iso_n3=" + strings.Repeat("1,", 100) + "1", "at most 100 values"},
	} {
		wantException(t, tt.name, a.get(t, items+"&"+tt.query), http.StatusBadRequest, tt.want)
	}
	// The limit property is the limit parameter: 50 here, not a filter.
	if r := a.get(t, items); r.json(t)["numberReturned"].(float64) != 50 {
		t.Errorf("limit=50 on a collection with a limit property: %s", r.body)
	}

	// The queryables follow the data: a property an import brings is
	// queryable once it is stored.
	wantException(t, "a property not yet imported", a.get(t, items+"&fresh=yes"), http.StatusBadRequest, `unknown parameter "fresh"`)
	extra := typedCountries(t)[:3]
	for i := range extra {
		extra[i].Key = "extra-" + extra[i].Key
		extra[i].Properties["fresh"] = "yes"
	}
	importInto(t, a, "typed", extra)
	if got := featureNames(t, a, items+"&fresh=yes"); len(got) != 3 {
		t.Errorf("fresh=yes after the import: %v", got)
	}
}

// TestPropertyFiltersInTheAPIDefinition: each collection's items path in
// the API definition declares its queryable properties as form-style
// arrays of their types (/rec/core/fc-filters), and only to a caller that
// may read the data.
func TestPropertyFiltersInTheAPIDefinition(t *testing.T) {
	t.Parallel()
	a := start(t)
	importInto(t, a, "typed", typedCountries(t))
	doc := a.get(t, "/api").json(t)
	paths := doc["paths"].(map[string]any)
	for _, p := range []string{"/collections/{collectionId}/items", "/collections/{collectionId}/queryables", "/collections/default/items", "/collections/typed/items"} {
		if paths[p] == nil {
			t.Errorf("the API definition lacks %s", p)
		}
	}
	op := paths["/collections/typed/items"].(map[string]any)["get"].(map[string]any)
	params := map[string]map[string]any{}
	ids := map[string]bool{}
	for _, p := range op["parameters"].([]any) {
		m := p.(map[string]any)
		if name, ok := m["name"].(string); ok {
			params[name] = m
		}
		if ref, ok := m["$ref"].(string); ok {
			ids[ref] = true
		}
	}
	if !ids["#/components/parameters/limit"] || !ids["#/components/parameters/bbox"] || ids["#/components/parameters/collectionId"] {
		t.Errorf("typed items parameters by reference: %v", ids)
	}
	for _, name := range []string{"name", "iso_n3", "rank", "even", "code", "label"} {
		p := params[name]
		if p == nil || p["in"] != "query" || p["style"] != "form" || p["explode"] != false || p["schema"].(map[string]any)["type"] != "array" {
			t.Errorf("parameter %s: %v", name, p)
		}
	}
	if got := fmt.Sprint(params["rank"]["schema"].(map[string]any)["items"]); got != "map[type:number]" {
		t.Errorf("rank's items schema %s", got)
	}
	if got := fmt.Sprint(params["code"]["schema"].(map[string]any)["items"]); got != "map[oneOf:[map[type:number] map[type:string]]]" {
		t.Errorf("code's items schema %s", got)
	}
	for _, not := range []string{"nested", "limit", "a.b", "nothing"} {
		if params[not] != nil {
			t.Errorf("parameter %s declared", not)
		}
	}
	if op["operationId"] == paths["/collections/default/items"].(map[string]any)["get"].(map[string]any)["operationId"] {
		t.Errorf("two items operations share the id %v", op["operationId"])
	}

	// With read tokens, a caller without one sees the generic paths only.
	b := start(t, func(s *setup) { s.tokens = geo.NewTokens([]string{"reader-secret"}, nil) })
	open := b.get(t, "/api").json(t)["paths"].(map[string]any)
	if open["/collections/default/items"] != nil || open["/collections/{collectionId}/items"] == nil {
		t.Errorf("the API definition without a token names the collections")
	}
	withToken := b.get(t, "/api", "Authorization", "Bearer reader-secret").json(t)["paths"].(map[string]any)
	if withToken["/collections/default/items"] == nil {
		t.Errorf("the API definition with a read token lacks the collection's path")
	}
}

// countingProperties counts the reads of each collection's properties,
// each made slow enough for requests to overlap.
type countingProperties struct {
	geo.PropertyLister
	delay time.Duration
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingProperties) CollectionProperties(ctx context.Context, collection string) ([]geo.Property, error) {
	c.mu.Lock()
	c.reads[collection]++
	c.mu.Unlock()
	time.Sleep(c.delay)
	return c.PropertyLister.CollectionProperties(ctx, collection)
}

func (c *countingProperties) count(collection string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[collection]
}

// TestQueryablesReadOncePerChange: requests that need a collection's
// queryables at the same time (after an import, say) share one read of
// its things' properties; the next change reads them once more; a request
// that gives up does not cancel the read the others wait for; a deleted
// collection's queryables are dropped from the cache.
func TestQueryablesReadOncePerChange(t *testing.T) {
	t.Parallel()
	var counter *countingProperties
	a := start(t, func(s *setup) {
		s.wrapProperties = func(p geo.PropertyLister) geo.PropertyLister {
			counter = &countingProperties{PropertyLister: p, delay: 300 * time.Millisecond, reads: map[string]int{}}
			return counter
		}
	})
	fs := typedCountries(t)
	importInto(t, a, "typed", fs[:100])
	together := func(n int, path string, giveUpAfter time.Duration) []int {
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				ctx := context.Background()
				if giveUpAfter > 0 && i == 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, giveUpAfter)
					defer cancel()
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
				resp, err := a.client.Do(req)
				if err != nil {
					statuses[i] = -1
					return
				}
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			})
		}
		wg.Wait()
		return statuses
	}
	for i, st := range together(8, "/collections/typed/queryables", 0) {
		if st != http.StatusOK {
			t.Errorf("request %d: status %d", i, st)
		}
	}
	if n := counter.count("typed"); n != 1 {
		t.Errorf("8 requests at once read the properties %d times, want once", n)
	}
	together(3, "/collections/typed/items?iso_n3=250", 0)
	if n := counter.count("typed"); n != 1 {
		t.Errorf("cached queryables read again: %d reads", n)
	}

	importInto(t, a, "typed", fs[100:])
	// The first request gives up before the read ends; the others still get
	// their answer from the one read.
	statuses := together(4, "/collections/typed/items?iso_n3=392", 100*time.Millisecond)
	for i, st := range statuses[1:] {
		if st != http.StatusOK {
			t.Errorf("request %d after the import: status %d", i+1, st)
		}
	}
	if n := counter.count("typed"); n != 2 {
		t.Errorf("after a change, 4 requests at once made %d reads in all, want 2", n)
	}

	if got := httpapi.CachedQueryables(a.srv); !slices.Contains(got, "typed") {
		t.Fatalf("cached %v, want typed among them", got)
	}
	if _, err := a.svc.DeleteCollection(context.Background(), "typed"); err != nil {
		t.Fatal(err)
	}
	if r := a.get(t, "/collections"); r.status != http.StatusOK {
		t.Fatalf("collections: %d", r.status)
	}
	if got := httpapi.CachedQueryables(a.srv); slices.Contains(got, "typed") {
		t.Errorf("the deleted collection's queryables are still cached: %v", got)
	}
}
