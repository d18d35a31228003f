package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// The conformance classes this API declares, and the requirements of OGC
// 17-069r4 (and its abstract test suite, Annex A) checked for each below.
const (
	confCore    = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
	confGeoJSON = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"
	confOAS30   = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"
)

type linkJSON struct{ Href, Rel, Type string }

func links(t *testing.T, v any) []linkJSON {
	t.Helper()
	raw, ok := v.([]any)
	if !ok {
		t.Fatalf("links is not an array: %v", v)
	}
	out := make([]linkJSON, 0, len(raw))
	for _, l := range raw {
		m, _ := l.(map[string]any)
		href, _ := m["href"].(string)
		rel, _ := m["rel"].(string)
		typ, _ := m["type"].(string)
		if href == "" || rel == "" {
			t.Errorf("a link without href or rel: %v", l)
		}
		out = append(out, linkJSON{href, rel, typ})
	}
	return out
}

func findLink(t *testing.T, ls []linkJSON, rel string) (linkJSON, bool) {
	t.Helper()
	for _, l := range ls {
		if l.Rel == rel {
			return l, true
		}
	}
	return linkJSON{}, false
}

func mustLink(t *testing.T, ls []linkJSON, rel string) linkJSON {
	t.Helper()
	l, ok := findLink(t, ls, rel)
	if !ok {
		t.Fatalf("no link with rel %q among %v", rel, ls)
	}
	return l
}

// TestConformanceWalk is a client that knows only the landing page: it
// follows links, as desktop GIS and GDAL do, and checks each answer against
// the requirements of the classes the API declares.
func TestConformanceWalk(t *testing.T) {
	t.Parallel()
	a := start(t)

	// /req/core/root-op, /req/core/root-success: the landing page links to
	// the API definition, the conformance declaration and the collections.
	root := a.get(t, "/")
	if root.status != http.StatusOK || root.header.Get("Content-Type") != "application/json" {
		t.Fatalf("landing page: %d %s", root.status, root.header.Get("Content-Type"))
	}
	rootLinks := links(t, root.json(t)["links"])
	for _, rel := range []string{"self", "service-desc", "conformance", "data"} {
		mustLink(t, rootLinks, rel)
	}

	// /req/core/conformance-op, -success: conformsTo lists the classes.
	conf := a.get(t, mustLink(t, rootLinks, "conformance").Href)
	var declared []string
	for _, c := range conf.json(t)["conformsTo"].([]any) {
		declared = append(declared, c.(string))
	}
	for _, want := range []string{confCore, confGeoJSON, confOAS30} {
		if !slices.Contains(declared, want) {
			t.Errorf("conformsTo %v lacks %s", declared, want)
		}
	}

	// /req/core/api-definition-op, -success and /req/oas30/oas-definition-1,
	// -2: an OpenAPI 3.0 document with its media type, describing every
	// resource of Part 1.
	desc := mustLink(t, rootLinks, "service-desc")
	apiDoc := a.get(t, desc.Href)
	if apiDoc.status != http.StatusOK || !strings.HasPrefix(apiDoc.header.Get("Content-Type"), "application/vnd.oai.openapi+json;version=3.0") {
		t.Fatalf("API definition: %d %s", apiDoc.status, apiDoc.header.Get("Content-Type"))
	}
	if desc.Type != apiDoc.header.Get("Content-Type") {
		t.Errorf("service-desc link type %q, served as %q", desc.Type, apiDoc.header.Get("Content-Type"))
	}
	doc := apiDoc.json(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		t.Errorf("openapi = %q, want 3.0.x", v)
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range []string{"/", "/conformance", "/collections", "/collections/{collectionId}", "/collections/{collectionId}/items", "/collections/{collectionId}/items/{featureId}"} {
		if _, ok := paths[p]; !ok {
			t.Errorf("the API definition lacks path %s", p)
		}
	}

	// /req/core/fc-md-op, -success, -links, -items: the collections, each
	// with an id, an items link and a spatial extent in CRS84.
	collsResp := a.get(t, mustLink(t, rootLinks, "data").Href)
	colls := collsResp.json(t)
	mustLink(t, links(t, colls["links"]), "self")
	list, _ := colls["collections"].([]any)
	if len(list) == 0 {
		t.Fatal("no collections")
	}
	total := 0
	for _, c := range list {
		coll := c.(map[string]any)
		id, _ := coll["id"].(string)
		collLinks := links(t, coll["links"])
		items := mustLink(t, collLinks, "items")
		if items.Type != "application/geo+json" {
			t.Errorf("collection %s: items link type %q", id, items.Type)
		}
		bbox := coll["extent"].(map[string]any)["spatial"].(map[string]any)["bbox"].([]any)
		if len(bbox) == 0 || len(bbox[0].([]any)) != 4 {
			t.Errorf("collection %s: spatial extent bbox %v", id, bbox)
		}
		// /req/core/sfc-md-op, -success: the collection on its own.
		one := a.get(t, mustLink(t, collLinks, "self").Href)
		if one.status != http.StatusOK || one.json(t)["id"] != id {
			t.Errorf("collection %s on its own: %d %s", id, one.status, one.body)
		}
		total += walkItems(t, a, items.Href+"?limit=7", 7)

		// /rec/core/fc-filters: the queryable properties, linked from
		// the collection, are parameters of its items in the API
		// definition, and filter them, next links included.
		ql := mustLink(t, collLinks, "http://www.opengis.net/def/rel/ogc/1.0/queryables")
		qr := a.get(t, ql.Href)
		if qr.status != http.StatusOK || qr.header.Get("Content-Type") != ql.Type || ql.Type != "application/schema+json" {
			t.Fatalf("queryables of %s: %d %s (link type %s)", id, qr.status, qr.header.Get("Content-Type"), ql.Type)
		}
		qprops, _ := qr.json(t)["properties"].(map[string]any)
		declared := map[string]bool{}
		if op, ok := paths["/collections/"+id+"/items"].(map[string]any); ok {
			for _, p := range op["get"].(map[string]any)["parameters"].([]any) {
				if name, ok := p.(map[string]any)["name"].(string); ok {
					declared[name] = true
				}
			}
		}
		for k := range qprops {
			if !declared[k] {
				t.Errorf("queryable %s of %s is not a parameter of its items in the API definition", k, id)
			}
		}
		if qprops["iso_n3"] == nil {
			t.Fatalf("queryables of %s: %v, want iso_n3 among them", id, qprops)
		}
		if n := walkItems(t, a, items.Href+"?limit=2&iso_n3=250,392,724", 2); n != 3 {
			t.Errorf("iso_n3=250,392,724 on %s gave %d features, want France, Japan and Spain", id, n)
		}
	}
	if total != 177 {
		t.Errorf("following next links from the start gave %d features; the collection holds 177", total)
	}
}

// walkItems follows next links from url to the last page, checking every
// page and feature (/req/core/fc-op, fc-response, fc-links, fc-timeStamp,
// fc-numberReturned, f-op, f-success, f-links; /req/geojson/content), and
// returns how many features it saw. Each feature id is seen once.
func walkItems(t *testing.T, a *api, url string, limit int) int {
	t.Helper()
	seen := map[float64]bool{}
	pages := 0
	for url != "" {
		pages++
		if pages > 1000 {
			t.Fatal("more than 1000 pages: the next links loop")
		}
		r := a.get(t, url)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/geo+json" {
			t.Fatalf("%s: %d %s %s", url, r.status, r.header.Get("Content-Type"), r.body)
		}
		page := r.json(t)
		if page["type"] != "FeatureCollection" {
			t.Fatalf("%s: type %v", url, page["type"])
		}
		features, _ := page["features"].([]any)
		if n, _ := page["numberReturned"].(float64); int(n) != len(features) || len(features) > limit {
			t.Errorf("%s: numberReturned %v, %d features, limit %d", url, page["numberReturned"], len(features), limit)
		}
		if ts, _ := page["timeStamp"].(string); ts == "" {
			t.Errorf("%s: no timeStamp", url)
		} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("%s: timeStamp %q: %v", url, ts, err)
		}
		pageLinks := links(t, page["links"])
		if self := mustLink(t, pageLinks, "self"); self.Type != "application/geo+json" {
			t.Errorf("%s: self link type %q", url, self.Type)
		}
		for i, f := range features {
			feat := f.(map[string]any)
			id, ok := feat["id"].(float64)
			if feat["type"] != "Feature" || !ok || feat["geometry"] == nil || feat["properties"] == nil {
				t.Fatalf("%s: feature %d is not a GeoJSON Feature with id, geometry and properties", url, i)
			}
			if seen[id] {
				t.Errorf("feature %v seen twice", id)
			}
			seen[id] = true
			props := feat["properties"].(map[string]any)
			if props["name"] == nil || props["collection"] == nil {
				t.Errorf("feature %v: properties lack name or collection: %v", id, props)
			}
			if i == 0 {
				// The feature on its own, at its self link.
				self := mustLink(t, links(t, feat["links"]), "self")
				one := a.get(t, self.Href)
				if one.status != http.StatusOK || one.header.Get("Content-Type") != "application/geo+json" {
					t.Fatalf("%s: %d %s", self.Href, one.status, one.body)
				}
				got := one.json(t)
				if got["id"] != id || got["type"] != "Feature" {
					t.Errorf("%s: id %v type %v, want %v Feature", self.Href, got["id"], got["type"], id)
				}
				mustLink(t, links(t, got["links"]), "collection")
			}
		}
		next, ok := findLink(t, pageLinks, "next")
		if ok && len(features) == 0 {
			t.Fatalf("%s: an empty page with a next link", url)
		}
		url = next.Href
	}
	return len(seen)
}

// TestQueryParameterRules checks /req/core/query-param-unknown and
// -invalid, and the limit and bbox rules of the items resource
// (/req/core/fc-limit-definition, -response-1; fc-bbox-definition,
// -response).
func TestQueryParameterRules(t *testing.T) {
	t.Parallel()
	a := start(t)
	items := "/collections/default/items"
	// An unknown parameter, a filter on a property that is not queryable
	// included, is a 400; a queryable property filters.
	wantException(t, "unknown parameter", a.get(t, items+"?color=red"), http.StatusBadRequest, `unknown parameter "color"`)
	wantException(t, "a property the things do not have", a.get(t, items+"?pop_est=5"), http.StatusBadRequest, `the queryable properties of collection "default"`)
	if r := a.get(t, items+"?iso_n3=250"); r.status != http.StatusOK || r.json(t)["numberReturned"].(float64) != 1 {
		t.Errorf("iso_n3=250: %d %s", r.status, r.body)
	}
	wantException(t, "unknown parameter on the landing page", a.get(t, "/?x=1"), http.StatusBadRequest, `unknown parameter "x"`)
	// Above the maximum: served at the maximum (50 here), not an error.
	r := a.get(t, items+"?limit=100000")
	if r.status != http.StatusOK || r.json(t)["numberReturned"].(float64) != 50 {
		t.Errorf("limit above the maximum: %d, numberReturned %v", r.status, r.json(t)["numberReturned"])
	}
	r = a.get(t, items+"?limit=99999999999999999999999")
	if r.status != http.StatusOK || r.json(t)["numberReturned"].(float64) != 50 {
		t.Errorf("limit beyond int64: %d", r.status)
	}
	if r := a.get(t, items); r.json(t)["numberReturned"].(float64) != 10 {
		t.Errorf("no limit: numberReturned %v, want the default 10", r.json(t)["numberReturned"])
	}
	// Every feature of a bbox query intersects the box (checked on the
	// features' own bboxes, a necessary condition), and the box finds
	// what it must.
	europe := a.get(t, items+"?bbox=-5,42,8,51&limit=50").json(t)
	names := map[string]bool{}
	for _, f := range europe["features"].([]any) {
		feat := f.(map[string]any)
		b := feat["bbox"].([]any)
		if b[0].(float64) > 8 || b[2].(float64) < -5 || b[1].(float64) > 51 || b[3].(float64) < 42 {
			t.Errorf("feature %v's bbox %v misses the query box", feat["properties"].(map[string]any)["name"], b)
		}
		names[feat["properties"].(map[string]any)["name"].(string)] = true
	}
	if !names["France"] || !names["Spain"] || names["Japan"] {
		t.Errorf("bbox=-5,42,8,51 gave %v; want France and Spain, not Japan", names)
	}
}
