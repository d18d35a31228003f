package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"

	"github.com/geosearch/search/internal/geo"
)

// Sorting on items (OGC API – Features – Part 8: Sorting, draft; the
// sortby parameter OGC API – Records and STAC share): sortby=+a,-b orders
// the features by these properties, ascending ("+" or no sign) or
// descending ("-"), then by id; geo.SortKey says how values of different
// types and missing ones are ordered. The sortable properties are the
// queryable ones (/collections/{id}/sortables lists them, the same
// schema). Paging stays keyset: next links carry the last feature's
// values and id, never an offset. Without sortby features come in name
// order, as before.

// sortParams are the parameters of sorting on items.
var sortParams = []string{"sortby"}

// sortConformance are the conformance classes of sorting declared
// (sort_test.go checks each).
var sortConformance = []string{
	"http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting",
}

// relSortables is the link relation of a collection's sortables.
const relSortables = "http://www.opengis.net/def/rel/ogc/1.0/sortables"

// sortBy reads sortby of r on c: nil without it, a 400 naming a property
// that is not queryable.
func (s *Server) sortBy(ctx context.Context, r *http.Request, c collectionInfo) ([]geo.SortKey, error) {
	q := r.URL.Query()
	if !q.Has("sortby") {
		return nil, nil
	}
	if len(q["sortby"]) > 1 {
		return nil, geo.Errorf(geo.Invalid, "sortby is given %d times; give it once, with its keys separated by commas", len(q["sortby"]))
	}
	by, err := geo.ParseSortBy(q.Get("sortby"), "sortby")
	if err != nil || len(by) == 0 {
		return nil, err
	}
	qs, err := s.queryables(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, k := range by {
		if !slices.ContainsFunc(qs, func(q queryable) bool { return q.Key == k.Property }) {
			return nil, geo.Errorf(geo.Invalid, "sortby: %q is not a sortable property of collection %q (listed at /collections/%s/sortables)", k.Property, c.ID, url.PathEscape(c.ID))
		}
	}
	return by, nil
}

func (s *Server) collectionSortables(w http.ResponseWriter, r *http.Request) error {
	c, doc, err := s.queryablesDoc(r)
	if err != nil {
		return err
	}
	doc["$id"] = baseURL(r) + "/collections/" + url.PathEscape(c.ID) + "/sortables"
	doc["description"] = "the properties that /collections/" + c.ID + "/items sorts by as ?sortby=+name,-other (+ ascending, the default; - descending)"
	return writeJSON(w, mediaSchema, doc)
}
