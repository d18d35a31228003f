package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// Vector tiles (OGC API – Tiles, Part 1: Core, OGC 20-057): each collection
// is a tileset of Mapbox Vector Tiles on the WebMercatorQuad tile matrix
// set, at /collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}. A tile takes
// the items' property filters (?iso_n3=250), and properties= names the
// queryable properties copied into each feature beside its name. The
// tileset's description is at once OGC's tileset metadata and a TileJSON
// 3.0 document (their keys do not overlap), which MapLibre and GDAL read.
//
// A tile's ETag hashes the collection's version (geo.TileSource's
// CollectionVersion, which every import and delete moves), the tile and its
// parameters: a client or proxy revalidating after Cache-Control's max-age
// gets 304 until the collection changes. The server keeps the hot tiles
// itself (tileCache, TILE_CACHE_BYTES), under the same key; each request
// reads the version (one primary-key lookup), so an import through any
// instance invalidates them everywhere.

// Media types of tiles.
const (
	mediaMVT      = "application/vnd.mapbox-vector-tile"
	mediaTileJSON = "application/json"
)

// The conformance classes of OGC API – Tiles declared (tiles_test.go checks
// each).
var tilesConformance = []string{
	"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/core",
	"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tileset",
	"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/tilesets-list",
	"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/geodata-tilesets",
	"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/mvt",
}

// Link relations of OGC API – Tiles.
const (
	relTilesetsVector = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
	relTilingScheme   = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
	relTileMatrixSets = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
	webMercatorQuad   = "WebMercatorQuad"
	webMercatorURI    = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
	crs3857           = "http://www.opengis.net/def/crs/EPSG/0/3857"
)

// tileParams are the parameters of a tile besides property filters.
var tileParams = []string{"properties", "f"}

// tileRoutes are the routes of vector tiles; routes() lists them.
func (s *Server) tileRoutes() []route {
	return []route{
		{"GET /tileMatrixSets", "tile_matrix_sets", geo.Open, s.tileMatrixSets, fromMemory},
		{"GET /tileMatrixSets/{tileMatrixSetId}", "tile_matrix_set", geo.Open, s.tileMatrixSet, fromMemory},
		{"GET /collections/{collectionId}/tiles", "tilesets", geo.Read, s.tilesets, bounded},
		{"GET /collections/{collectionId}/tiles/{tileMatrixSetId}", "tileset", geo.Read, s.tileset, bounded},
		{"GET /collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}", "tile", geo.Read, s.tile, bounded},
	}
}

func (s *Server) tileSource() (geo.TileSource, error) {
	if s.deps.Tiles == nil {
		return nil, geo.Errorf(geo.NotFound, "this server serves no tiles")
	}
	return s.deps.Tiles, nil
}

func checkTileMatrixSet(id string) error {
	if id != webMercatorQuad {
		return geo.Errorf(geo.NotFound, "there is no tile matrix set %q; the one offered is %s", id, webMercatorQuad)
	}
	return nil
}

func (s *Server) tileMatrixSets(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	base := baseURL(r)
	return writeJSON(w, mediaJSON, map[string]any{
		"tileMatrixSets": []map[string]any{{
			"id": webMercatorQuad, "title": "Google Maps compatible for the world", "uri": webMercatorURI, "crs": crs3857,
			"links": []link{{base + "/tileMatrixSets/" + webMercatorQuad, relTilingScheme, mediaJSON, "its definition"}},
		}},
		"links": []link{{base + "/tileMatrixSets", "self", mediaJSON, "the tile matrix sets"}},
	})
}

// tileMatrixSet describes WebMercatorQuad (OGC 17-083r4, annex D.1) for
// zooms 0 to geo.MaxTileZoom.
func (s *Server) tileMatrixSet(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	if err := checkTileMatrixSet(r.PathValue("tileMatrixSetId")); err != nil {
		return err
	}
	const half = 20037508.3427892
	matrices := make([]map[string]any, 0, geo.MaxTileZoom+1)
	for z := 0; z <= geo.MaxTileZoom; z++ {
		n := 1 << z
		res := 2 * half / 256 / float64(n)
		matrices = append(matrices, map[string]any{
			"id": strconv.Itoa(z), "scaleDenominator": res / 0.00028, "cellSize": res,
			"cornerOfOrigin": "topLeft", "pointOfOrigin": []float64{-half, half},
			"tileWidth": 256, "tileHeight": 256, "matrixWidth": n, "matrixHeight": n,
		})
	}
	return writeJSON(w, mediaJSON, map[string]any{
		"id": webMercatorQuad, "title": "Google Maps compatible for the world", "uri": webMercatorURI,
		"crs": crs3857, "orderedAxes": []string{"X", "Y"}, "wellKnownScaleSet": "http://www.opengis.net/def/wkss/OGC/1.0/GoogleMapsCompatible",
		"tileMatrices": matrices,
	})
}

func (s *Server) tilesets(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	if _, err := s.tileSource(); err != nil {
		return err
	}
	c, err := s.findCollection(r.Context(), r.PathValue("collectionId"))
	if err != nil {
		return err
	}
	base := baseURL(r)
	self := base + "/collections/" + url.PathEscape(c.ID) + "/tiles"
	return writeJSON(w, mediaJSON, map[string]any{
		"links": []link{{self, "self", mediaJSON, "the tilesets of " + c.ID}},
		"tilesets": []map[string]any{{
			"title": c.ID, "dataType": "vector", "crs": crs3857, "tileMatrixSetURI": webMercatorURI,
			"links": []link{
				{self + "/" + webMercatorQuad, "self", mediaJSON, "the tileset (also TileJSON)"},
				{base + "/tileMatrixSets/" + webMercatorQuad, relTilingScheme, mediaJSON, "its tile matrix set"},
			},
		}},
	})
}

// tileset describes a collection's tiles: OGC's tileset metadata and
// TileJSON 3.0 in one document.
func (s *Server) tileset(w http.ResponseWriter, r *http.Request) error {
	if err := checkParams(r, "f"); err != nil {
		return err
	}
	if err := checkTileMatrixSet(r.PathValue("tileMatrixSetId")); err != nil {
		return err
	}
	if _, err := s.tileSource(); err != nil {
		return err
	}
	c, err := s.findCollection(r.Context(), r.PathValue("collectionId"))
	if err != nil {
		return err
	}
	qs, err := s.queryables(r.Context(), c)
	if err != nil {
		return err
	}
	fields := map[string]string{"name": "String"}
	ogcFields := map[string]any{"name": map[string]string{"type": "string"}}
	for _, q := range qs {
		if q.Key == "name" {
			continue
		}
		fields[q.Key] = strings.Join(q.Types, " or ")
		ogcFields[q.Key] = map[string]any{"type": q.Types}
	}
	base := baseURL(r)
	self := base + "/collections/" + url.PathEscape(c.ID) + "/tiles/" + webMercatorQuad
	bbox := extent(c.Extent)
	if bbox[0] > bbox[2] { // across the antimeridian: TileJSON wants west < east
		bbox[0], bbox[2] = -180, 180
	}
	return writeJSON(w, mediaTileJSON, map[string]any{
		// OGC API – Tiles tileset metadata.
		"title": c.ID, "dataType": "vector", "crs": crs3857, "tileMatrixSetURI": webMercatorURI,
		"layers": []map[string]any{{"id": c.ID, "dataType": "vector", "geometryDimension": 2, "propertiesSchema": map[string]any{"type": "object", "properties": ogcFields}}},
		"links": []link{
			{self, "self", mediaJSON, "this tileset"},
			{base + "/tileMatrixSets/" + webMercatorQuad, relTilingScheme, mediaJSON, "its tile matrix set"},
			{self + "/{tileMatrix}/{tileRow}/{tileCol}", "item", mediaMVT, "its tiles"},
		},
		// TileJSON 3.0.
		"tilejson": "3.0.0", "name": c.ID, "description": c.Description,
		"tiles":   []string{self + "/{z}/{y}/{x}"},
		"minzoom": 0, "maxzoom": geo.MaxTileZoom, "bounds": bbox,
		"vector_layers": []map[string]any{{"id": c.ID, "fields": fields, "minzoom": 0, "maxzoom": geo.MaxTileZoom}},
	})
}

// tile serves one vector tile: 200 with the MVT, 204 when nothing meets
// the tile, 304 when the client's ETag is current.
func (s *Server) tile(w http.ResponseWriter, r *http.Request) error {
	src, err := s.tileSource()
	if err != nil {
		return err
	}
	if err := checkTileMatrixSet(r.PathValue("tileMatrixSetId")); err != nil {
		return err
	}
	q, err := tileIndex(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	q.Collection = r.PathValue("collectionId")
	if err := geo.ValidateCollectionName(q.Collection); err != nil {
		return geo.Errorf(geo.NotFound, "there is no collection %q", q.Collection)
	}
	version, err := src.CollectionVersion(ctx, q.Collection)
	if err != nil {
		return err
	}
	c := collectionInfo{ID: q.Collection, Updated: version}
	props, propKeys, err := s.propertyFilters(ctx, r, c, tileParams)
	if err != nil {
		return err
	}
	if f := r.URL.Query().Get("f"); f != "" && f != "mvt" && f != mediaMVT {
		return geo.Errorf(geo.Invalid, "f=%q is not offered; tiles are Mapbox Vector Tiles (f=mvt)", f)
	}
	known := append(slices.Clone(tileParams), propKeys...)
	if err := checkParams(withoutFormat(r), known...); err != nil {
		return err
	}
	q.Properties = props
	if raw := r.URL.Query().Get("properties"); raw != "" {
		if q.Attributes, err = s.tileAttributes(ctx, c, raw); err != nil {
			return err
		}
	}
	q.MaxBytes = s.cfg.TileMaxBytes
	q.OverviewThings = s.cfg.TileOverviewThings
	if err := q.Validate(); err != nil {
		return err
	}
	key := tileKey(q, version)
	etag := `"` + key + `"`
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.TileMaxAge.Seconds()))+", must-revalidate")
	h.Set("ETag", etag)
	h.Set("Vary", "Authorization")
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	s.tiles.see(q.Collection, version)
	t, hit := s.tiles.get(key)
	if hit {
		s.deps.Metrics.Count("tiles.cache.hits", 1)
	} else {
		s.deps.Metrics.Count("tiles.cache.misses", 1)
		if t, err = s.drawTile(ctx, src, q, key, version); err != nil {
			return err
		}
	}
	if t.reduced {
		h.Set("X-Tile-Reduced", "true")
	}
	if len(t.mvt) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	h.Set("Content-Type", mediaMVT)
	h.Set("Content-Length", strconv.Itoa(len(t.mvt)))
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(t.mvt)
	return err
}

// drawTile draws a tile once however many requests ask for it meanwhile,
// and caches it.
func (s *Server) drawTile(ctx context.Context, src geo.TileSource, q geo.TileQuery, key string, version time.Time) (cachedTile, error) {
	ch := s.tileDraws.DoChan(key, func() (any, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		t, err := src.Tile(dctx, q)
		if err != nil {
			return nil, err
		}
		ct := cachedTile{mvt: t.MVT, reduced: t.Reduced}
		s.tiles.put(key, q.Collection, version, ct)
		return ct, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return cachedTile{}, res.Err
		}
		return res.Val.(cachedTile), nil
	case <-ctx.Done():
		return cachedTile{}, context.Cause(ctx)
	}
}

// withoutFormat returns r with an f parameter given once emptied, for
// checkParams, which knows JSON's formats only.
func withoutFormat(r *http.Request) *http.Request {
	q := r.URL.Query()
	if len(q["f"]) != 1 {
		return r
	}
	q.Set("f", "")
	r2 := r.Clone(r.Context())
	r2.URL.RawQuery = q.Encode()
	return r2
}

// tileIndex reads the tile matrix (zoom), row and column of the path. An
// index outside the tile matrix set is 404 (OGC 20-057,
// /req/core/tc-error).
func tileIndex(r *http.Request) (geo.TileQuery, error) {
	var v [3]int
	for i, name := range []string{"tileMatrix", "tileRow", "tileCol"} {
		raw := r.PathValue(name)
		n, err := strconv.Atoi(raw)
		if err != nil {
			return geo.TileQuery{}, geo.Errorf(geo.Invalid, "%s must be an integer, got %q", name, raw)
		}
		v[i] = n
	}
	q := geo.TileQuery{Z: v[0], Y: v[1], X: v[2]}
	if q.Z < 0 || q.Z > geo.MaxTileZoom {
		return q, geo.Errorf(geo.NotFound, "there is no tile matrix %d in %s; they are 0 to %d", q.Z, webMercatorQuad, geo.MaxTileZoom)
	}
	if n := 1 << q.Z; q.X < 0 || q.X >= n || q.Y < 0 || q.Y >= n {
		return q, geo.Errorf(geo.NotFound, "there is no tile at row %d, column %d of tile matrix %d: rows and columns are 0 to %d", q.Y, q.X, q.Z, n-1)
	}
	return q, nil
}

// tileAttributes reads properties=a,b: queryable properties of c.
func (s *Server) tileAttributes(ctx context.Context, c collectionInfo, raw string) ([]string, error) {
	qs, err := s.queryables(ctx, c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range strings.Split(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "name" || slices.Contains(out, p) {
			continue
		}
		if !slices.ContainsFunc(qs, func(q queryable) bool { return q.Key == p }) {
			return nil, geo.Errorf(geo.Invalid, "properties: %q is not a queryable property of collection %q (listed at /collections/%s/queryables)", p, c.ID, url.PathEscape(c.ID))
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// tileKey names a tile of one version of its collection with its filters,
// attributes and byte bound: the cache key and the ETag.
func tileKey(q geo.TileQuery, version time.Time) string {
	h := sha256.New()
	var b [8]byte
	write := func(s string) {
		binary.BigEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	write("tile/1")
	write(q.Collection)
	write(version.UTC().Format(time.RFC3339Nano))
	write(fmt.Sprintf("%d/%d/%d/%d", q.Z, q.X, q.Y, q.MaxBytes))
	for _, a := range q.Attributes {
		write("attr " + a)
	}
	canon := geo.Filter{Properties: q.Properties}.Canonical()
	for _, pf := range canon.Properties {
		write("filter " + pf.Key)
		for _, v := range pf.Values {
			write(fmt.Sprintf("%T %v", v, v))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// etagMatches reports whether an If-None-Match header names etag.
func etagMatches(header, etag string) bool {
	for _, e := range strings.Split(header, ",") {
		e = strings.TrimSpace(e)
		if e == "*" || strings.TrimPrefix(e, "W/") == etag {
			return true
		}
	}
	return false
}

// tileMaxAge bounds TILE_MAX_AGE.
const tileMaxAge = 24 * time.Hour

func validateTileConfig(c Config) []error {
	var errs []error
	if c.TileMaxBytes < 1024 {
		errs = append(errs, fmt.Errorf("TILE_MAX_BYTES must be at least 1024, got %d", c.TileMaxBytes))
	}
	if c.TileOverviewThings < 0 {
		errs = append(errs, fmt.Errorf("TILE_OVERVIEW_THINGS must not be negative (0: no overviews), got %d", c.TileOverviewThings))
	}
	if c.TileCacheBytes < 0 {
		errs = append(errs, fmt.Errorf("TILE_CACHE_BYTES must not be negative, got %d", c.TileCacheBytes))
	}
	if c.TileMaxAge < 0 || c.TileMaxAge > tileMaxAge || c.TileMaxAge != c.TileMaxAge.Truncate(time.Second) {
		errs = append(errs, fmt.Errorf("TILE_MAX_AGE must be whole seconds within [0s, %s], got %s", tileMaxAge, c.TileMaxAge))
	}
	return errs
}
