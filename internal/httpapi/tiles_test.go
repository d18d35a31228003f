package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// parisTile is the zoom 5 tile of Paris (row 11, column 16).
const parisTile = "/collections/default/tiles/WebMercatorQuad/5/11/16"

func tileFeatures(t *testing.T, r response, layer string) map[string]geotest.MVTFeature {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/vnd.mapbox-vector-tile" {
		t.Fatalf("tile: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	layers, err := geotest.DecodeMVT(r.body)
	if err != nil || len(layers) != 1 || layers[0].Name != layer {
		t.Fatalf("tile layers %+v: %v; want one named %s", layers, err, layer)
	}
	out := map[string]geotest.MVTFeature{}
	for _, f := range layers[0].Features {
		out[f.Attrs["name"].(string)] = f
	}
	return out
}

// TestTilesWalk is a client of OGC API – Tiles that knows only the
// collection: it follows the links to the tileset, reads it as TileJSON and
// fetches a tile from its template.
func TestTilesWalk(t *testing.T) {
	t.Parallel()
	a := start(t)
	conf := a.get(t, "/conformance").json(t)
	for _, want := range []string{"ogcapi-tiles-1/1.0/conf/core", "ogcapi-tiles-1/1.0/conf/mvt", "ogcapi-tiles-1/1.0/conf/geodata-tilesets"} {
		if !slices.ContainsFunc(conf["conformsTo"].([]any), func(c any) bool { return strings.HasSuffix(c.(string), want) }) {
			t.Errorf("conformsTo lacks %s", want)
		}
	}
	coll := a.get(t, "/collections/default").json(t)
	sets := a.get(t, mustLink(t, links(t, coll["links"]), "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector").Href).json(t)
	list := sets["tilesets"].([]any)
	if len(list) != 1 {
		t.Fatalf("tilesets %v", list)
	}
	tsLinks := links(t, list[0].(map[string]any)["links"])
	ts := a.get(t, mustLink(t, tsLinks, "self").Href).json(t)
	if ts["tilejson"] != "3.0.0" || ts["dataType"] != "vector" {
		t.Errorf("tileset: %v", ts)
	}
	layers := ts["vector_layers"].([]any)
	fields := layers[0].(map[string]any)["fields"].(map[string]any)
	if layers[0].(map[string]any)["id"] != "default" || fields["iso_n3"] == nil || fields["name"] == nil {
		t.Errorf("vector_layers %v", layers)
	}
	tmpl := ts["tiles"].([]any)[0].(string)
	url := strings.NewReplacer("{z}", "5", "{y}", "11", "{x}", "16").Replace(tmpl)
	if _, ok := tileFeatures(t, a.get(t, url), "default")["France"]; !ok {
		t.Errorf("tile %s lacks France", url)
	}
	tms := a.get(t, mustLink(t, tsLinks, "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme").Href).json(t)
	if tms["id"] != "WebMercatorQuad" || len(tms["tileMatrices"].([]any)) != geo.MaxTileZoom+1 {
		t.Errorf("tile matrix set: id %v, %d matrices", tms["id"], len(tms["tileMatrices"].([]any)))
	}
	if r := a.get(t, "/tileMatrixSets"); r.status != http.StatusOK || !bytes.Contains(r.body, []byte("WebMercatorQuad")) {
		t.Errorf("/tileMatrixSets: %d %s", r.status, r.body)
	}
}

// TestTileCaching: a tile is drawn once and then served from memory, with
// an ETag that stays until the collection changes; an import changes it
// and the tile shows the new thing.
func TestTileCaching(t *testing.T) {
	t.Parallel()
	a := start(t)
	first := a.get(t, parisTile)
	names := tileFeatures(t, first, "default")
	etag := first.header.Get("ETag")
	if etag == "" || !strings.Contains(first.header.Get("Cache-Control"), "max-age=60") {
		t.Fatalf("ETag %q, Cache-Control %q", etag, first.header.Get("Cache-Control"))
	}
	if _, ok := names["France"]; !ok {
		t.Fatalf("France missing from %v", names)
	}
	second := a.get(t, parisTile)
	if !bytes.Equal(first.body, second.body) || second.header.Get("ETag") != etag {
		t.Errorf("the second answer differs")
	}
	if hits, misses := a.metrics.count("tiles.cache.hits"), a.metrics.count("tiles.cache.misses"); hits != 1 || misses != 1 {
		t.Errorf("cache hits %d, misses %d; want 1 and 1", hits, misses)
	}
	if r := a.get(t, parisTile, "If-None-Match", etag); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match the current ETag: %d, %d bytes", r.status, len(r.body))
	}

	res, err := a.svc.Import(context.Background(), geo.ImportOptions{}, &geotest.Source{Features: []geo.Feature{geotest.Square("Lutetia", "lutetia", nil, 2, 48, 3, 49)}})
	if err != nil || res.Imported != 1 {
		t.Fatalf("import: %v %+v", err, res)
	}
	after := a.get(t, parisTile, "If-None-Match", etag)
	if after.header.Get("ETag") == etag {
		t.Errorf("the ETag stayed %s after an import", etag)
	}
	if _, ok := tileFeatures(t, after, "default")["Lutetia"]; !ok {
		t.Errorf("the tile after an import lacks the thing imported")
	}
	if misses := a.metrics.count("tiles.cache.misses"); misses != 2 {
		t.Errorf("after an import: %d misses, want 2 (the old tile is stale)", misses)
	}
}

func TestTileParameters(t *testing.T) {
	t.Parallel()
	a := start(t)
	filtered := tileFeatures(t, a.get(t, parisTile+"?iso_n3=250,724&properties=iso_n3"), "default")
	got := slices.Sorted(func(yield func(string) bool) {
		for n := range filtered {
			if !yield(n) {
				return
			}
		}
	})
	if !slices.Equal(got, []string{"France", "Spain"}) || filtered["France"].Attrs["iso_n3"] != "250" {
		t.Errorf("iso_n3=250,724: %v, France %v", got, filtered["France"].Attrs)
	}
	if plain := tileFeatures(t, a.get(t, parisTile), "default"); len(plain["France"].Attrs) != 1 {
		t.Errorf("without properties=: attributes %v, want the name only", plain["France"].Attrs)
	}
	// The open Pacific.
	if r := a.get(t, "/collections/default/tiles/WebMercatorQuad/6/30/2"); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("an empty tile: %d, %d bytes", r.status, len(r.body))
	}
	for _, c := range []struct {
		path   string
		status int
		want   string
	}{
		{"/collections/default/tiles/WebMercatorQuad/25/0/0", 404, "no tile matrix 25"},
		{"/collections/default/tiles/WebMercatorQuad/2/4/0", 404, "no tile at row 4"},
		{"/collections/default/tiles/WebMercatorQuad/2/0/-1", 404, "no tile at row 0, column -1"},
		{"/collections/default/tiles/WebMercatorQuad/a/0/0", 400, "tileMatrix must be an integer"},
		{"/collections/default/tiles/WorldCRS84Quad/0/0/0", 404, "no tile matrix set"},
		{"/collections/nothing/tiles/WebMercatorQuad/0/0/0", 404, "no collection"},
		{"/collections/default/tiles/WebMercatorQuad/0/0/0?colour=red", 400, "unknown parameter \"colour\""},
		{"/collections/default/tiles/WebMercatorQuad/0/0/0?properties=colour", 400, "not a queryable property"},
		{"/collections/default/tiles/WebMercatorQuad/0/0/0?f=png", 400, "Mapbox Vector Tiles"},
	} {
		wantException(t, c.path, a.get(t, c.path), c.status, c.want)
	}
}

// TestGDALReadsATile: GDAL's MVT driver reads a tile the server drew, and
// finds France where it is.
func TestGDALReadsATile(t *testing.T) {
	t.Parallel()
	a := start(t)
	r := a.get(t, parisTile)
	tileFeatures(t, r, "default")
	dir := t.TempDir()
	// The driver takes the tile's position from its path, z/x/y.
	path := filepath.Join(dir, "5", "16", "11.pbf")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, r.body, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "tile.geojson")
	gdal(t, "ogr2ogr", "-f", "GeoJSON", "-lco", "WRITE_BBOX=YES", "-t_srs", "EPSG:4326", out, path)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var fc struct {
		Features []struct {
			Properties map[string]any `json:"properties"`
			BBox       []float64      `json:"bbox"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range fc.Features {
		if f.Properties["name"] != "France" {
			continue
		}
		found = true
		// The tile's part of France, back in degrees: within the tile
		// (0° to 11.25° E, 40.98° to 48.92° N) and its buffer.
		if b := f.BBox; len(b) != 4 || b[0] < -0.5 || b[2] > 11.5 || b[1] < 40.5 || b[3] > 49.5 {
			t.Errorf("France read by GDAL spans %v", b)
		}
	}
	if !found {
		t.Fatalf("GDAL read no France from the tile:\n%s", b)
	}
	if sum := gdal(t, "ogrinfo", "-ro", "-so", "-al", path); !strings.Contains(sum, "Layer name: default") {
		t.Errorf("ogrinfo lacks the layer default:\n%s", sum)
	}
}
