package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/geosearch/search/internal/core"
	"github.com/geosearch/search/internal/geo"
)

// Media types of the answers.
const (
	mediaJSON    = "application/json"
	mediaGeoJSON = "application/geo+json"
	mediaOpenAPI = "application/vnd.oai.openapi+json;version=3.0"
	mediaNDJSON  = "application/x-ndjson"
	mediaHTML    = "text/html"
)

// conformsTo lists the conformance classes of OGC API – Features – Part 1
// (OGC 17-069r4) that this API implements; conformance_test.go checks each.
var conformsTo = []string{
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
	"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
}

// crs84 is the only coordinate reference system of Part 1: WGS 84 with
// longitude first.
const crs84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"

type link struct {
	Href  string `json:"href"`
	Rel   string `json:"rel"`
	Type  string `json:"type,omitempty"`
	Title string `json:"title,omitempty"`
}

func writeJSON(w http.ResponseWriter, mediaType string, v any) error {
	w.Header().Set("Content-Type", mediaType)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// checkParams returns an Invalid error naming the first query parameter of
// r that is not in known, as /req/core/query-param-unknown asks.
func checkParams(r *http.Request, known ...string) error {
	if err := checkRawQuery(r.URL.RawQuery); err != nil {
		return err
	}
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return geo.Errorf(geo.Invalid, "unknown parameter %s; this resource takes: %s", echo(k), strings.Join(known, ", "))
		}
		if len(q[k]) > 1 {
			return geo.Errorf(geo.Invalid, "parameter %q is given %d times; give it once", k, len(q[k]))
		}
	}
	return checkFormat(q.Get("f"))
}

// checkFormat accepts the f parameter that some clients add: JSON is the
// only encoding.
func checkFormat(f string) error {
	switch f {
	case "", "json", "geojson", mediaJSON, mediaGeoJSON:
		return nil
	}
	return geo.Errorf(geo.Invalid, "f=%q is not offered; this API speaks JSON (f=json)", f)
}

func (s *Server) landing(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	base := baseURL(r)
	return writeJSON(w, mediaJSON, map[string]any{
		"title":       "geo search",
		"description": "Named polygons stored in PostGIS, served as OGC API – Features (Part 1: Core, GeoJSON) beside the gRPC API; version " + s.deps.Version,
		"links": []link{
			{base + "/", "self", mediaJSON, "this document"},
			{base + "/api", "service-desc", mediaOpenAPI, "the API definition (OpenAPI 3.0)"},
			{base + "/conformance", "conformance", mediaJSON, "the conformance classes implemented"},
			{base + "/collections", "data", mediaJSON, "the collections"},
			{base + "/map", "alternate", mediaHTML, "the map"},
		},
	})
}

func (s *Server) conformance(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	return writeJSON(w, mediaJSON, map[string]any{"conformsTo": slices.Concat(conformsTo, tilesConformance, filterConformance, sortConformance)})
}

//go:embed openapi.json.tmpl
var openAPITemplate string

var openAPI = template.Must(template.New("openapi").Parse(openAPITemplate))

func (s *Server) apiDefinition(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	lim := s.limits.Load()
	var b bytes.Buffer
	if err := openAPI.Execute(&b, map[string]any{"DefaultLimit": lim.DefaultPageSize, "MaxLimit": lim.MaxPageSize, "Version": strconv.Quote(s.deps.Version)}); err != nil {
		return err
	}
	if !s.mayRead(r) {
		w.Header().Set("Content-Type", mediaOpenAPI)
		_, err := w.Write(b.Bytes())
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		return fmt.Errorf("the API definition template: %w", err)
	}
	if err := s.addCollectionPaths(r.Context(), doc); err != nil {
		return err
	}
	return writeJSON(w, mediaOpenAPI, doc)
}

// mayRead reports whether r's caller may read the data: the API definition
// names the collections and their properties only to those who may.
func (s *Server) mayRead(r *http.Request) bool {
	if s.deps.Tokens == nil {
		return true
	}
	token, ok := bearerToken(r)
	return s.deps.Tokens.Check(geo.Read, token, ok) == nil
}

// addCollectionPaths adds to the API definition each collection's items
// path with its property parameters (/rec/core/fc-filters asks for them in
// the definition), beside the templated path, which OpenAPI matches after
// the concrete ones.
func (s *Server) addCollectionPaths(ctx context.Context, doc map[string]any) error {
	paths, _ := doc["paths"].(map[string]any)
	generic, _ := paths["/collections/{collectionId}/items"].(map[string]any)
	getOp, _ := generic["get"].(map[string]any)
	if getOp == nil {
		return errors.New("the API definition template lacks the items operation")
	}
	list, err := s.collectionList(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		qs, err := s.queryables(ctx, c)
		if err != nil {
			return err
		}
		params := []any{}
		for _, p := range getOp["parameters"].([]any) {
			if ref, _ := p.(map[string]any)["$ref"].(string); ref != "#/components/parameters/collectionId" {
				params = append(params, p)
			}
		}
		for _, q := range qs {
			params = append(params, propertyParameter(q))
		}
		op := maps.Clone(getOp)
		op["operationId"] = "getFeatures_" + c.ID
		op["summary"] = "a page of the features of collection " + c.ID + ", filtered on its properties"
		op["parameters"] = params
		paths["/collections/"+c.ID+"/items"] = map[string]any{"get": op}
	}
	return nil
}

// collectionInfo describes one collection.
type collectionInfo struct {
	ID, Title, Description string
	// Extent bounds the collection's things; nil when it is empty.
	Extent *geo.BBox
	// Filter scopes a search to the collection.
	Filter geo.Filter
	// Updated is when the collection last changed.
	Updated time.Time
}

// collectionList returns the domain's collections, each an OGC collection
// of the same name.
func (s *Server) collectionList(ctx context.Context) ([]collectionInfo, error) {
	cs, err := s.svc.Collections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]collectionInfo, len(cs))
	ids := make(map[string]bool, len(cs))
	for i, c := range cs {
		ids[c.Name] = true
		out[i] = toCollectionInfo(c)
	}
	s.qcache.retain(ids)
	return out, nil
}

func toCollectionInfo(c geo.Collection) collectionInfo {
	return collectionInfo{
		ID:          c.Name,
		Title:       c.Name,
		Description: fmt.Sprintf("%d things (named polygons), last changed %s", c.Count, c.Updated.UTC().Format(time.RFC3339)),
		Extent:      c.BBox,
		Filter:      geo.Filter{Collections: []string{c.Name}},
		Updated:     c.Updated,
	}
}

// findCollection returns the collection id, read by its name alone (every
// items page asks), NotFound if there is none.
func (s *Server) findCollection(ctx context.Context, id string) (collectionInfo, error) {
	c, err := s.svc.Collection(ctx, id)
	switch code := geo.ErrorCode(err); {
	case err == nil:
		return toCollectionInfo(c), nil
	case code != geo.NotFound && code != geo.Invalid:
		return collectionInfo{}, err
	}
	list, err := s.collectionList(ctx)
	if err != nil {
		return collectionInfo{}, err
	}
	const listed = 10 // enough to spot a typo; /collections lists them all
	names := make([]string, 0, listed+1)
	for _, c := range list[:min(len(list), listed)] {
		names = append(names, strconv.Quote(c.ID))
	}
	if len(list) > listed {
		names = append(names, fmt.Sprintf("and %d more at /collections", len(list)-listed))
	}
	return collectionInfo{}, geo.Errorf(geo.NotFound, "there is no collection %s; the collections are: %s", echo(id), strings.Join(names, ", "))
}

// extent is a collection's bounding box, the whole world when it is empty.
func extent(b *geo.BBox) []float64 {
	if b == nil {
		return []float64{-180, -90, 180, 90}
	}
	return []float64{b.MinLng, b.MinLat, b.MaxLng, b.MaxLat}
}

// collectionJSON is a collection's description (/req/core/sfc-md-op).
func collectionJSON(base string, c collectionInfo) map[string]any {
	self := base + "/collections/" + url.PathEscape(c.ID)
	return map[string]any{
		"id":          c.ID,
		"title":       c.Title,
		"description": c.Description,
		"itemType":    "feature",
		"crs":         []string{crs84},
		"extent": map[string]any{
			"spatial": map[string]any{"bbox": [][]float64{extent(c.Extent)}, "crs": crs84},
		},
		"links": []link{
			{self, "self", mediaJSON, "this collection"},
			{self + "/items", "items", mediaGeoJSON, "its features"},
			{self + "/queryables", relQueryables, mediaSchema, "the properties its items filter on"},
			{self + "/sortables", relSortables, mediaSchema, "the properties its items sort by"},
			{self + "/tiles", relTilesetsVector, mediaJSON, "its vector tiles"},
		},
	}
}

func (s *Server) collectionsList(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	list, err := s.collectionList(r.Context())
	if err != nil {
		return err
	}
	base := baseURL(r)
	out := make([]map[string]any, len(list))
	for i, c := range list {
		out[i] = collectionJSON(base, c)
	}
	return writeJSON(w, mediaJSON, map[string]any{
		"links":       []link{{base + "/collections", "self", mediaJSON, "the collections"}},
		"collections": out,
	})
}

func (s *Server) collection(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	c, err := s.findCollection(r.Context(), r.PathValue("collectionId"))
	if err != nil {
		return err
	}
	return writeJSON(w, mediaJSON, collectionJSON(baseURL(r), c))
}

// itemsParams are the parameters of /collections/{id}/items: Part 1's
// limit, bbox and datetime, the page token of next links (cursor), the
// name search of the map (q), and f. Any other is a property filter
// (queryables.go).
var itemsParams = []string{"limit", "bbox", "datetime", "cursor", "q", "f"}

func (s *Server) items(w http.ResponseWriter, r *http.Request) error {
	if err := checkRawQuery(r.URL.RawQuery); err != nil {
		return err
	}
	c, err := s.findCollection(r.Context(), r.PathValue("collectionId"))
	if err != nil {
		return err
	}
	known := slices.Concat(itemsParams, filterParams, selectParams, sortParams)
	props, propKeys, err := s.propertyFilters(r.Context(), r, c, known)
	if err != nil {
		return err
	}
	if err := checkParams(r, append(known, propKeys...)...); err != nil {
		return err
	}
	params := r.URL.Query()
	limit, err := s.pageLimit(params.Get("limit"), params.Has("limit"))
	if err != nil {
		return err
	}
	filter := c.Filter
	filter.Query = params.Get("q")
	filter.Properties = props
	if err := s.cql2Filter(r.Context(), r, c, &filter); err != nil {
		return err
	}
	selected, selecting, err := s.selectedProperties(r.Context(), r, c)
	if err != nil {
		return err
	}
	sortBy, err := s.sortBy(r.Context(), r, c)
	if err != nil {
		return err
	}
	if params.Has("bbox") {
		box, err := parseBBox(params.Get("bbox"))
		if err != nil {
			return err
		}
		filter.BBox = &box
	}
	if params.Has("datetime") {
		// Things have no time: every thing passes a valid datetime
		// (/req/core/fc-time-response keeps features without temporal
		// geometry). A malformed one is still a 400.
		if err := checkDatetime(params.Get("datetime")); err != nil {
			return err
		}
	}
	if err := filter.Validate(); err != nil {
		return err
	}
	q := geo.Query{Filter: filter, Limit: limit, IncludeGeometry: true, MaxBytes: s.limits.Load().MaxPageBytes, SortBy: sortBy}
	if params.Has("cursor") {
		after, err := geo.DecodeSortedPageToken(params.Get("cursor"), filter, sortBy, "cursor")
		if err != nil {
			return err
		}
		q.After = &after
	}
	page, err := s.svc.Search(r.Context(), q)
	if err != nil {
		return err
	}
	base := baseURL(r)
	itemsURL := base + "/collections/" + url.PathEscape(c.ID) + "/items"
	features := make([]feature, len(page.Things))
	for i, t := range page.Things {
		features[i] = toFeature(base, c.ID, t)
		if selecting {
			selectProperties(&features[i], selected)
		}
	}
	raw, err := rawParams(r.URL.RawQuery)
	if err != nil {
		return err
	}
	links := []link{
		{itemsURL + encodeParams(raw, propKeys), "self", mediaGeoJSON, "this page"},
		{base + "/collections/" + url.PathEscape(c.ID), "collection", mediaJSON, "the collection"},
	}
	if page.Next != nil {
		next := slices.DeleteFunc(slices.Clone(raw), func(p rawParam) bool { return p.key == "cursor" || p.key == "limit" })
		next = append(next,
			rawParam{"cursor", url.QueryEscape(geo.EncodeSortedPageToken(filter, sortBy, *page.Next))},
			rawParam{"limit", strconv.Itoa(limit)})
		links = append(links, link{itemsURL + encodeParams(next, propKeys), "next", mediaGeoJSON, "the next page"})
	}
	s.deps.Metrics.Count("search.results", int64(len(features)))
	return writeJSON(w, mediaGeoJSON, featureCollection{
		Type:           "FeatureCollection",
		Features:       features,
		Links:          links,
		TimeStamp:      time.Now().UTC().Format(time.RFC3339),
		NumberReturned: len(features),
	})
}

func (s *Server) feature(w http.ResponseWriter, r *http.Request) error {
	c, err := s.findCollection(r.Context(), r.PathValue("collectionId"))
	if err != nil {
		return err
	}
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	raw := r.PathValue("featureId")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return geo.Errorf(geo.NotFound, "there is no feature %q in collection %q; feature ids are positive integers", raw, c.ID)
	}
	t, err := s.svc.Get(r.Context(), geo.ThingRef{ID: id}, true, geo.Output{})
	if err == nil && t.Collection != c.ID {
		err = geo.Errorf(geo.NotFound, "there is no feature %d in collection %q", id, c.ID)
	}
	if err != nil {
		return err
	}
	f := toFeature(baseURL(r), c.ID, t)
	return writeJSON(w, mediaGeoJSON, f)
}

// pageLimit applies the page size rules of Search to the limit parameter:
// absent is the default, above the maximum is the maximum
// (/req/core/fc-limit-response-1), below 1 or not an integer is a 400.
func (s *Server) pageLimit(raw string, given bool) (int, error) {
	lim := s.limits.Load()
	if !given {
		return lim.DefaultPageSize, nil
	}
	if !digits.MatchString(raw) {
		return 0, geo.Errorf(geo.Invalid, "limit must be an integer written in decimal digits, got %s", echo(raw))
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(raw, "-") {
			return lim.MaxPageSize, nil
		}
		return 0, geo.Errorf(geo.Invalid, "limit must be an integer, got %q", raw)
	}
	if n < 1 { // OGC's limit has no "none asked" value: absent is that
		return 0, geo.Errorf(geo.Invalid, "limit must be at least 1, got %d", n)
	}
	return core.PageSize(n, "limit", lim.DefaultPageSize, lim.MaxPageSize)
}

// parseBBox reads bbox as Part 1 defines it: four numbers (min lng, min
// lat, max lng, max lat, in CRS84) or six (with min and max height after
// each corner's lat; heights are ignored, the things are flat). A min lng
// greater than the max lng is a box across the antimeridian, which is
// supported.
func parseBBox(raw string) (geo.BBox, error) {
	parts := strings.Split(raw, ",")
	if len(parts) != 4 && len(parts) != 6 {
		return geo.BBox{}, geo.Errorf(geo.Invalid, "bbox must be 4 numbers (min lng,min lat,max lng,max lat) or 6 (with heights), got %d", len(parts))
	}
	v := make([]float64, len(parts))
	for i, p := range parts {
		f, err := parseNumber("bbox value", strings.TrimSpace(p))
		if err != nil {
			return geo.BBox{}, geo.Errorf(geo.Invalid, "bbox value %d (%s) is not a finite number written in decimal (such as -12.5 or 1e-3)", i+1, echo(p))
		}
		v[i] = f
	}
	if len(v) == 6 {
		if v[2] > v[5] {
			return geo.BBox{}, geo.Errorf(geo.Invalid, "bbox min height (%v) must not be above max height (%v)", v[2], v[5])
		}
		v = []float64{v[0], v[1], v[3], v[4]}
	}
	b := geo.BBox{MinLng: v[0], MinLat: v[1], MaxLng: v[2], MaxLat: v[3]}
	return b, b.Validate()
}

// checkDatetime accepts an RFC 3339 date-time, or an interval of two
// separated by "/" where either end may be open ("" or "..").
func checkDatetime(raw string) error {
	bad := geo.Errorf(geo.Invalid, "datetime must be an RFC 3339 date-time or an interval start/end with .. for an open end, got %s", echo(raw))
	parse := func(s string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t, err = time.Parse(time.DateOnly, s)
		}
		return t, err
	}
	instant := func(s string) bool {
		_, err := parse(s)
		return err == nil
	}
	start, end, interval := strings.Cut(raw, "/")
	if !interval {
		if !instant(raw) {
			return bad
		}
		return nil
	}
	open := func(s string) bool { return s == "" || s == ".." }
	if open(start) && open(end) || !open(start) && !instant(start) || !open(end) && !instant(end) {
		return bad
	}
	if !open(start) && !open(end) {
		t0, _ := parse(start)
		t1, _ := parse(end)
		if t0.After(t1) {
			return geo.Errorf(geo.Invalid, "datetime interval %s ends before it starts", echo(raw))
		}
	}
	return nil
}

// featureCollection is an items page (/req/geojson/content).
type featureCollection struct {
	Type           string    `json:"type"`
	Features       []feature `json:"features"`
	Links          []link    `json:"links"`
	TimeStamp      string    `json:"timeStamp"`
	NumberReturned int       `json:"numberReturned"`
}

// feature is a thing as a GeoJSON Feature. Its id is the thing's id, stable
// across pages and calls. Properties are the stored ones; name, key and
// collection are added under those names unless the stored properties
// already have them (the name property usually is the name).
type feature struct {
	Type       string          `json:"type"`
	ID         int64           `json:"id"`
	Geometry   json.RawMessage `json:"geometry"`
	Properties map[string]any  `json:"properties"`
	BBox       []float64       `json:"bbox,omitempty"`
	Links      []link          `json:"links,omitempty"`
}

func toFeature(base, collection string, t geo.Thing) feature {
	props := make(map[string]any, len(t.Properties)+3)
	for k, v := range t.Properties {
		props[k] = v
	}
	add := func(k string, v any) {
		if _, ok := props[k]; !ok {
			props[k] = v
		}
	}
	add("name", t.Name)
	if t.Key != "" {
		add("key", t.Key)
	}
	add("collection", collection)
	geometry := json.RawMessage("null")
	if t.GeometryGeoJSON != "" {
		geometry = json.RawMessage(t.GeometryGeoJSON)
	}
	coll := base + "/collections/" + url.PathEscape(collection)
	return feature{
		Type:       "Feature",
		ID:         t.ID,
		Geometry:   geometry,
		Properties: props,
		BBox:       []float64{t.BBox.MinLng, t.BBox.MinLat, t.BBox.MaxLng, t.BBox.MaxLat},
		Links: []link{
			{coll + "/items/" + strconv.FormatInt(t.ID, 10), "self", mediaGeoJSON, "this feature"},
			{coll, "collection", mediaJSON, "its collection"},
		},
	}
}
