package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/geosearch/search/internal/cql2"
	"github.com/geosearch/search/internal/geo"
)

// CQL2 filters on items (OGC API – Features – Part 3: Filtering, OGC
// 19-079r2, with CQL2 text, OGC 21-065): filter=<CQL2 text> keeps the
// features that satisfy it. Its properties must be queryable (the same
// list as the property filters, /collections/{id}/queryables), and
// S_INTERSECTS names the geometry "geometry". filter-lang is cql2-text
// (cql-text, the draft's name that GDAL 3.6 sends, is taken as the same)
// or cql2-json;
// filter-crs, when given, is CRS84.

// filterParams are the parameters of a CQL2 filter on items.
var filterParams = []string{"filter", "filter-lang", "filter-crs"}

// filterConformance are the conformance classes of Part 3 and CQL2
// declared (filter_test.go checks each).
var filterConformance = []string{
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
	"http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
	"http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
	"http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
	"http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
	"http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
	"http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
	"http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
}

// cql2Filter reads the filter parameters of r into f.Where.
func (s *Server) cql2Filter(ctx context.Context, r *http.Request, c collectionInfo, f *geo.Filter) error {
	q := r.URL.Query()
	if !q.Has("filter") {
		for _, p := range filterParams[1:] {
			if q.Has(p) {
				return geo.Errorf(geo.Invalid, "%s is given without a filter", p)
			}
		}
		return nil
	}
	parse := cql2.ParseText
	switch lang := q.Get("filter-lang"); strings.ToLower(lang) {
	case "", "cql2-text", "cql-text":
	case "cql2-json":
		parse = cql2.ParseJSON
	default:
		return geo.Errorf(geo.Invalid, "filter-lang=%q is not offered; filters are CQL2 text (filter-lang=cql2-text) or CQL2-JSON (cql2-json)", lang)
	}
	if crs := q.Get("filter-crs"); q.Has("filter-crs") && crs != crs84 {
		return geo.Errorf(geo.Invalid, "filter-crs=%q is not offered; filter geometries are in %s", crs, crs84)
	}
	e, err := parse(q.Get("filter"))
	if err != nil {
		return err
	}
	props := e.Properties()
	if len(props) > 0 {
		qs, err := s.queryables(ctx, c)
		if err != nil {
			return err
		}
		for _, p := range props {
			if !slices.ContainsFunc(qs, func(q queryable) bool { return q.Key == p }) {
				return geo.Errorf(geo.Invalid, "filter: %q is not a queryable property of collection %q (listed at /collections/%s/queryables)", p, c.ID, url.PathEscape(c.ID))
			}
		}
	}
	f.Where = &e
	return nil
}
