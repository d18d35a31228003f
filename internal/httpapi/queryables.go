package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/geosearch/search/internal/geo"
)

// Property filters on items (OGC 17-069r4, /rec/core/fc-filters): a
// parameter named after a queryable property keeps the features whose
// property equals the value.
//
// The queryable properties of a collection are derived from its data, not
// declared: the top-level property keys its things use (the store reads
// them, geo.PropertyLister), whose values are strings, numbers or booleans
// in at least one thing, and which the domain can filter (a key with a
// "." is a nested path to it; an over-long key is refused). Imports carry
// free-form properties, so nobody is there to declare them, and a list by
// hand would drift from the data. Keys named like a parameter of the items
// resource (limit, bbox, ...) are not queryable: the parameter wins. The
// answer is cached per collection until the collection's Updated time
// changes (an import or a delete), so a request reads the things once per
// change, not once per request.
//
// A value is typed by the property's JSON types: it is matched as a string
// if the property holds strings, as a number if it holds numbers and the
// value is a JSON number, as a boolean if it holds booleans and the value
// is true or false; when the property holds several types, each reading
// that fits is matched (any of them). A value that fits none is a 400.
// Several values separated by commas match any of them (the parameter is a
// form-style, non-exploded array in the API definition); a comma inside a
// value is sent percent-encoded (%2C), as RFC 6570 form expansion does.
// Filters on several properties must all match.

// filterableTypes are the JSON types a property filter can match.
var filterableTypes = []string{"boolean", "number", "string"}

// queryable is a property that a parameter of the same name filters on.
type queryable struct {
	Key string
	// Types are the filterable JSON types of its values, sorted.
	Types []string
}

type cachedQueryables struct {
	updated time.Time
	list    []queryable
}

// queryablesCache holds each collection's queryables as of its Updated
// time, for the collections that exist (retain drops the others).
type queryablesCache struct {
	mu sync.Mutex
	m  map[string]cachedQueryables
	// reads runs one read of a collection's properties per (collection,
	// Updated) at a time: requests that arrive while it runs (after an
	// import, say) wait for it instead of each reading every thing.
	reads singleflight.Group
}

// queryablesReadTimeout bounds a shared read of a collection's properties,
// which no single request's going away cancels.
const queryablesReadTimeout = time.Minute

// queryables returns the queryable properties of c, by key.
func (s *Server) queryables(ctx context.Context, c collectionInfo) ([]queryable, error) {
	if s.deps.Properties == nil {
		return nil, nil
	}
	s.qcache.mu.Lock()
	hit, ok := s.qcache.m[c.ID]
	s.qcache.mu.Unlock()
	if ok && hit.updated.Equal(c.Updated) {
		return hit.list, nil
	}
	key := c.ID + "\x00" + c.Updated.UTC().Format(time.RFC3339Nano)
	read := s.qcache.reads.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queryablesReadTimeout)
		defer cancel()
		props, err := s.deps.Properties.CollectionProperties(rctx, c.ID)
		if err != nil {
			return nil, err
		}
		list := make([]queryable, 0, len(props))
		for _, p := range props {
			if q, ok := toQueryable(p); ok {
				list = append(list, q)
			}
		}
		s.qcache.mu.Lock()
		if s.qcache.m == nil {
			s.qcache.m = map[string]cachedQueryables{}
		}
		s.qcache.m[c.ID] = cachedQueryables{updated: c.Updated, list: list}
		s.qcache.mu.Unlock()
		return list, nil
	})
	select {
	case r := <-read:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]queryable), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// retain drops the cached queryables of every collection not in ids (the
// collections that exist), so that deleted collections do not stay.
func (qc *queryablesCache) retain(ids map[string]bool) {
	qc.mu.Lock()
	defer qc.mu.Unlock()
	for id := range qc.m {
		if !ids[id] {
			delete(qc.m, id)
		}
	}
}

// toQueryable keeps p if a parameter can filter on it.
func toQueryable(p geo.Property) (queryable, bool) {
	var types []string
	for _, t := range p.Types {
		if slices.Contains(filterableTypes, t) {
			types = append(types, t)
		}
	}
	if len(types) == 0 || slices.Contains(itemsParams, p.Key) {
		return queryable{}, false
	}
	// The domain's own rules for a key (length, nested paths, characters).
	probe := geo.Filter{Properties: []geo.PropertyFilter{{Key: p.Key, Values: []any{""}}}}
	if probe.Validate() != nil {
		return queryable{}, false
	}
	slices.Sort(types)
	return queryable{Key: p.Key, Types: types}, true
}

// rawParam is one parameter of a query string: its name decoded, its value
// as sent.
type rawParam struct {
	key, raw string
}

// rawParams splits a query string into its parameters without decoding the
// values, so that a property filter tells the commas that separate values
// from the %2C inside one.
func rawParams(rawQuery string) ([]rawParam, error) {
	var out []rawParam
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, geo.Errorf(geo.Invalid, "the query string is malformed: %v", err)
		}
		out = append(out, rawParam{key, v})
	}
	return out, nil
}

// propertyFilters reads the property filters of an items request on c: the
// parameters that are not among known. Any that is not a queryable property
// of c is a 400 (/req/core/query-param-unknown).
func (s *Server) propertyFilters(ctx context.Context, r *http.Request, c collectionInfo, known []string) ([]geo.PropertyFilter, []string, error) {
	params, err := rawParams(r.URL.RawQuery)
	if err != nil {
		return nil, nil, err
	}
	var keys []string
	for _, p := range params {
		if !slices.Contains(known, p.key) && !slices.Contains(keys, p.key) {
			keys = append(keys, p.key)
		}
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	slices.Sort(keys)
	qs, err := s.queryables(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	filters := make([]geo.PropertyFilter, 0, len(keys))
	for _, k := range keys {
		i := slices.IndexFunc(qs, func(q queryable) bool { return q.Key == k })
		if i < 0 {
			return nil, nil, geo.Errorf(geo.Invalid, "unknown parameter %s; this resource takes: %s, and the queryable properties of collection %q (listed at /collections/%s/queryables)",
				echo(k), strings.Join(known, ", "), c.ID, url.PathEscape(c.ID))
		}
		var raws []string
		for _, p := range params {
			if p.key == k {
				raws = append(raws, p.raw)
			}
		}
		if len(raws) > 1 {
			return nil, nil, geo.Errorf(geo.Invalid, "parameter %q is given %d times; give it once, with its values separated by commas", k, len(raws))
		}
		pf, err := parsePropertyFilter(qs[i], raws[0])
		if err != nil {
			return nil, nil, err
		}
		filters = append(filters, pf)
	}
	return filters, keys, nil
}

// parsePropertyFilter reads a property filter's value as sent: values
// separated by commas, each percent-decoded and typed by the property.
func parsePropertyFilter(q queryable, raw string) (geo.PropertyFilter, error) {
	pf := geo.PropertyFilter{Key: q.Key}
	for part := range strings.SplitSeq(raw, ",") {
		v, err := url.QueryUnescape(part)
		if err != nil {
			return pf, geo.Errorf(geo.Invalid, "parameter %q: %q is not a valid percent-encoded value", q.Key, part)
		}
		n := len(pf.Values)
		for _, t := range q.Types {
			switch t {
			case "string":
				pf.Values = append(pf.Values, v)
			case "number":
				var f float64
				if json.Unmarshal([]byte(v), &f) == nil && strings.TrimSpace(v) == v {
					pf.Values = append(pf.Values, f)
				}
			case "boolean":
				if v == "true" || v == "false" {
					pf.Values = append(pf.Values, v == "true")
				}
			}
		}
		if len(pf.Values) == n {
			return pf, geo.Errorf(geo.Invalid, "parameter %q: %q is not a %s, which is what property %q holds", q.Key, v, strings.Join(q.Types, " or "), q.Key)
		}
	}
	return pf, nil
}

// encodeParams writes params back as a query string in a canonical
// encoding; the values of the property parameters among props keep their
// separating commas.
func encodeParams(params []rawParam, props []string) string {
	var b strings.Builder
	for _, p := range params {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.key))
		b.WriteByte('=')
		parts := []string{p.raw}
		if slices.Contains(props, p.key) {
			parts = strings.Split(p.raw, ",")
		}
		for i, part := range parts {
			v, err := url.QueryUnescape(part)
			if err != nil {
				v = part // refused before any link is written
			}
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(url.QueryEscape(v))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "?" + b.String()
}

// queryablesSchema is the JSON Schema of a collection's queryables, as
// OGC API – Features – Part 3 shapes the /queryables resource. This API does
// not declare Part 3 (it has no filter parameter); the resource says which
// property parameters the items take and what their values are.
func queryablesSchema(base string, c collectionInfo, qs []queryable) map[string]any {
	props := make(map[string]any, len(qs))
	for _, q := range qs {
		var typ any = q.Types[0]
		if len(q.Types) > 1 {
			typ = q.Types
		}
		props[q.Key] = map[string]any{"title": q.Key, "type": typ}
	}
	return map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         base + "/collections/" + url.PathEscape(c.ID) + "/queryables",
		"type":        "object",
		"title":       c.Title,
		"description": "the properties that /collections/" + c.ID + "/items filters on as ?name=value (several values separated by commas: any of them)",
		"properties":  props,
	}
}

// mediaSchema is the media type of a JSON Schema.
const mediaSchema = "application/schema+json"

// relQueryables is the link relation of a collection's queryables.
const relQueryables = "http://www.opengis.net/def/rel/ogc/1.0/queryables"

func (s *Server) collectionQueryables(w http.ResponseWriter, r *http.Request) error {
	_, doc, err := s.queryablesDoc(r)
	if err != nil {
		return err
	}
	return writeJSON(w, mediaSchema, doc)
}

// queryablesDoc returns the collection r names and the JSON Schema of its
// queryables, which /queryables serves and /sortables serves renamed.
func (s *Server) queryablesDoc(r *http.Request) (collectionInfo, map[string]any, error) {
	c, err := s.findCollection(r.Context(), r.PathValue("collectionId"))
	if err != nil {
		return collectionInfo{}, nil, err
	}
	if err := checkParams(r, "f"); err != nil {
		return collectionInfo{}, nil, err
	}
	qs, err := s.queryables(r.Context(), c)
	if err != nil {
		return collectionInfo{}, nil, err
	}
	return c, queryablesSchema(baseURL(r), c, qs), nil
}

// propertyParameter is the OpenAPI parameter of a queryable property.
func propertyParameter(q queryable) map[string]any {
	var item map[string]any
	if len(q.Types) == 1 {
		item = map[string]any{"type": q.Types[0]}
	} else {
		alts := make([]any, len(q.Types))
		for i, t := range q.Types {
			alts[i] = map[string]any{"type": t}
		}
		item = map[string]any{"oneOf": alts}
	}
	return map[string]any{
		"name": q.Key, "in": "query", "required": false, "style": "form", "explode": false,
		"description": "keeps the features whose property " + q.Key + " equals one of these comma-separated values (a comma inside a value is sent as %2C)",
		"schema":      map[string]any{"type": "array", "items": item},
	}
}
