package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/geosearch/search/internal/geo"
)

// Property selection on items (as OGC API – Features – Part 6 drafts it):
// properties=a,b returns each feature with these of its properties only;
// properties= (empty) with none. Each must be a queryable property of the
// collection, or one of those every feature has (name, key, collection).
// The selection shapes the answer, not the search: the filter, the order
// and the page tokens are the same with or without it.

// selectParams are the parameters of property selection on items.
var selectParams = []string{"properties"}

// everyFeatureProperties are the properties toFeature adds to every feature.
var everyFeatureProperties = []string{"name", "key", "collection"}

// selectedProperties reads properties= of r: the names selected, and
// whether a selection was given.
func (s *Server) selectedProperties(ctx context.Context, r *http.Request, c collectionInfo) ([]string, bool, error) {
	q := r.URL.Query()
	if !q.Has("properties") {
		return nil, false, nil
	}
	raw := q.Get("properties")
	if raw == "" {
		return nil, true, nil
	}
	qs, err := s.queryables(ctx, c)
	if err != nil {
		return nil, false, err
	}
	var out []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(everyFeatureProperties, p) && !slices.ContainsFunc(qs, func(q queryable) bool { return q.Key == p }) {
			return nil, false, geo.Errorf(geo.Invalid, "properties: %q is not a property of collection %q; give queryable properties (listed at /collections/%s/queryables) or %s",
				p, c.ID, url.PathEscape(c.ID), strings.Join(everyFeatureProperties, ", "))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, true, nil
}

// selectProperties keeps the selected properties of f only.
func selectProperties(f *feature, selected []string) {
	f.Properties = geo.SelectProperties(f.Properties, selected)
	if f.Properties == nil {
		f.Properties = map[string]any{} // GeoJSON: an object, not null
	}
}
