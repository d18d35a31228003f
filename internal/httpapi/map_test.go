package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// tilePNG is a basemap tile: 256x256 light grey.
func tilePNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 256, 256))
	for i := range img.Pix {
		img.Pix[i] = 0xd8
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// browserDir holds the browser test's npm packages (playwright-core, and
// the Leaflet the assets vendor), installed by tools/install-deps.sh
// browser (make deps).
const browserDir = "testdata/browser"

func requireNodeModules(t *testing.T) {
	t.Helper()
	for _, pkg := range []string{"leaflet", "leaflet.vectorgrid", "playwright-core"} {
		if _, err := os.Stat(filepath.Join(browserDir, "node_modules", pkg, "package.json")); err != nil {
			t.Fatalf("%s is not installed in internal/httpapi/%s: run tools/install-deps.sh browser (make deps)", pkg, browserDir)
		}
	}
}

// TestVendoredLeafletMatchesNPM: the Leaflet files in the binary are byte
// for byte those of the npm package pinned in testdata/browser/package.json
// (and its lock file's integrity hash), licence included.
func TestVendoredLeafletMatchesNPM(t *testing.T) {
	t.Parallel()
	requireNodeModules(t)
	var pkg struct{ Version string }
	b, err := os.ReadFile(filepath.Join(browserDir, "node_modules", "leaflet", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Version != "1.9.4" {
		t.Fatalf("installed leaflet %s; the vendored files are 1.9.4: run tools/install-deps.sh browser", pkg.Version)
	}
	files := map[string]string{
		"assets/leaflet/leaflet.js":  "dist/leaflet.js",
		"assets/leaflet/leaflet.css": "dist/leaflet.css",
		"assets/leaflet/LICENSE":     "LICENSE",
	}
	images, err := filepath.Glob(filepath.Join(browserDir, "node_modules", "leaflet", "dist", "images", "*.png"))
	if err != nil || len(images) == 0 {
		t.Fatalf("no images in the leaflet package: %v", err)
	}
	for _, img := range images {
		files["assets/leaflet/images/"+filepath.Base(img)] = "dist/images/" + filepath.Base(img)
	}
	vendored, err := filepath.Glob("assets/leaflet/images/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(vendored) != len(images) {
		t.Errorf("assets/leaflet/images has %d files, the package %d", len(vendored), len(images))
	}
	for ours, theirs := range files {
		a, err1 := os.ReadFile(ours)
		b, err2 := os.ReadFile(filepath.Join(browserDir, "node_modules", "leaflet", theirs))
		if err1 != nil || err2 != nil {
			t.Errorf("%s vs %s: %v %v", ours, theirs, err1, err2)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from leaflet@1.9.4's %s: copy it again", ours, theirs)
		}
	}
}

// TestVendoredVectorGridMatchesNPM: the Leaflet.VectorGrid bundle in the
// binary is byte for byte the one of the npm package pinned in
// testdata/browser/package.json, and its licence travels with it.
func TestVendoredVectorGridMatchesNPM(t *testing.T) {
	t.Parallel()
	requireNodeModules(t)
	dir := filepath.Join(browserDir, "node_modules", "leaflet.vectorgrid")
	var pkg struct{ Version, License string }
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Version != "1.3.0" || pkg.License != "Beerware" {
		t.Fatalf("installed leaflet.vectorgrid %s (%s); the vendored file is 1.3.0 (Beerware): run tools/install-deps.sh browser", pkg.Version, pkg.License)
	}
	ours, err1 := os.ReadFile("assets/vectorgrid/Leaflet.VectorGrid.bundled.min.js")
	theirs, err2 := os.ReadFile(filepath.Join(dir, "dist", "Leaflet.VectorGrid.bundled.min.js"))
	if err1 != nil || err2 != nil || !bytes.Equal(ours, theirs) {
		t.Errorf("assets/vectorgrid/Leaflet.VectorGrid.bundled.min.js differs from leaflet.vectorgrid@1.3.0's dist file (%v %v): copy it again", err1, err2)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	licence, err := os.ReadFile("assets/vectorgrid/LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	_, notice, _ := bytes.Cut(readme, []byte(`"THE BEER-WARE LICENSE":`))
	notice, _, _ = bytes.Cut(notice, []byte("-----"))
	if len(bytes.TrimSpace(notice)) == 0 || !bytes.Contains(licence, bytes.TrimSpace(notice)) {
		t.Errorf("assets/vectorgrid/LICENSE lacks the package's notice:\n%s", notice)
	}
}

// TestWorldOutlineIsTheSample: the map's background (assets/world.json) is
// the 1:110m countries of testdata as the store holds them, each
// coordinate rounded to 0.01°, with no properties: imported like any
// GeoJSON, rings that cross the antimeridian are read the short way and
// cut at +-180 (README, "Rings across the antimeridian"). Read flat, the
// sample's rings of Russia, Fiji and Antarctica drew bands of land round
// the world at 66-72° N and 16° S. UPDATE_WORLD_OUTLINE=1 writes it again.
func TestWorldOutlineIsTheSample(t *testing.T) {
	t.Parallel()
	a := start(t) // the 1:110m sample
	rows, err := a.pool.Query(context.Background(), `SELECT ST_AsGeoJSON(geom, 2) FROM thing ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var features []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		features = append(features, `{"type":"Feature","properties":{},"geometry":`+g+`}`)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []byte(`{"type":"FeatureCollection","features":[` + strings.Join(features, ",") + "]}\n")
	const path = "assets/world.json"
	if os.Getenv("UPDATE_WORLD_OUTLINE") != "" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s (%d bytes) is not the sample as stored (%d bytes): UPDATE_WORLD_OUTLINE=1 go test -run TestWorldOutlineIsTheSample ./internal/httpapi", path, len(got), len(want))
	}
	if len(features) != 177 || len(got) > 200<<10 {
		t.Errorf("%d features in %d bytes, want the sample's 177 in under 200 KiB", len(features), len(got))
	}
	// Read flat, as Leaflet draws it: no edge runs more than 180° of
	// longitude (but along the south pole, which Web Mercator does not
	// draw), and the seas where the bands were are in no polygon.
	var world struct {
		Features []struct {
			Geometry struct {
				Type        string          `json:"type"`
				Coordinates json.RawMessage `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(got, &world); err != nil {
		t.Fatal(err)
	}
	seas := [][2]float64{{0, 71}, {0, 80}, {-150, 72}, {-10, 68}, {0, -16.5}, {-100, -16}, {0, -60}}
	inside := make([]int, len(seas))
	for i, f := range world.Features {
		var polygons [][][][2]float64
		switch f.Geometry.Type {
		case "Polygon":
			var p [][][2]float64
			err = json.Unmarshal(f.Geometry.Coordinates, &p)
			polygons = append(polygons, p)
		case "MultiPolygon":
			err = json.Unmarshal(f.Geometry.Coordinates, &polygons)
		default:
			t.Fatalf("feature %d is a %s", i, f.Geometry.Type)
		}
		if err != nil {
			t.Fatalf("feature %d: %v", i, err)
		}
		for _, rings := range polygons {
			for _, r := range rings {
				for j := 1; j < len(r); j++ {
					alongPole := r[j][1] == r[j-1][1] && math.Abs(r[j][1]) == 90 // Antarctica's, off Web Mercator's map
					if math.Abs(r[j][0]-r[j-1][0]) > 180 && !alongPole {
						t.Fatalf("feature %d: the edge %v -> %v runs more than 180° of longitude, across the map", i, r[j-1], r[j])
					}
				}
			}
			for k, p := range seas {
				if evenOdd(rings, p[0], p[1]) {
					inside[k]++
				}
			}
		}
	}
	for k, n := range inside {
		if n > 0 {
			t.Errorf("the sea at %v is inside %d polygons of the outline", seas[k], n)
		}
	}
}

// evenOdd reports whether (x, y) is inside rings by the even-odd rule, as
// a browser fills a path.
func evenOdd(rings [][][2]float64, x, y float64) bool {
	in := false
	for _, r := range rings {
		for i, j := 0, len(r)-1; i < len(r); j, i = i, i+1 {
			if (r[i][1] > y) != (r[j][1] > y) && x < (r[j][0]-r[i][0])*(y-r[i][1])/(r[j][1]-r[i][1])+r[i][0] {
				in = !in
			}
		}
	}
	return in
}

// TestMapAssets: the page, its files and Leaflet's are served from the
// binary with their types; nothing else under /map/ is.
func TestMapAssets(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) {
		s.fixture = ""
		s.cfg.MapTileURL = "https://{s}.tile.example.org/{z}/{x}/{y}.png"
		s.cfg.MapTileAttribution = "© example & co"
	})
	page := a.get(t, "/map")
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/map: %d %s", page.status, page.header.Get("Content-Type"))
	}
	for _, want := range []string{`data-tile-template="https://{s}.tile.example.org/{z}/{x}/{y}.png"`, `data-tile-attribution="© example &amp; co"`, `src="/map/leaflet/leaflet.js"`} {
		if !bytes.Contains(page.body, []byte(want)) {
			t.Errorf("/map lacks %s", want)
		}
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https://*.tile.example.org") || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	for path, ctype := range map[string]string{
		"/map/map.js":                                       "text/javascript",
		"/map/map.css":                                      "text/css",
		"/map/leaflet/leaflet.js":                           "text/javascript",
		"/map/leaflet/leaflet.css":                          "text/css",
		"/map/leaflet/images/layers.png":                    "image/png",
		"/map/leaflet/LICENSE":                              "text/plain",
		"/map/leaflet/images/marker-icon.png":               "image/png",
		"/map/vectorgrid/Leaflet.VectorGrid.bundled.min.js": "text/javascript",
		"/map/vectorgrid/LICENSE":                           "text/plain",
		"/map/world.json":                                   "application/json",
	} {
		r := a.get(t, path)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), ctype) || len(r.body) == 0 {
			t.Errorf("%s: %d %q, want 200 %s", path, r.status, r.header.Get("Content-Type"), ctype)
		}
	}
	for _, path := range []string{"/map/", "/map/leaflet/", "/map/map.html", "/map/nothing.js", "/map/../httpapi.go", "/map/leaflet/leaflet.js.map"} {
		if r := a.get(t, path); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
	// Offline by default: no tile URL, nothing outside the server.
	b := start(t, func(s *setup) { s.fixture = "" })
	if r := b.get(t, "/map"); !bytes.Contains(r.body, []byte(`data-tile-template=""`)) {
		t.Errorf("/map without MAP_TILE_URL names a basemap")
	}
}

// TestMapInBrowser opens /map in headless Chromium (Debian's chromium,
// driven by playwright-core), on a server with the 1:50m sample countries:
// the collection is listed and drawn, a click on Paris highlights France
// and names it, the name search and the window's bbox answer. The
// screenshot goes to the test's artifact directory (go test -artifacts
// keeps it; README's docs/map.png is one).
func TestMapInBrowser(t *testing.T) {
	t.Parallel()
	requireNodeModules(t)
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: run tools/install-deps.sh browser (apt-get install chromium)", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is missing: apt-get install nodejs")
	}
	a := start(t, func(s *setup) {
		s.fixture = "ne_50m_countries.geojson"
		s.limits.MaxPageSize = 1000
	})
	// A tile server on loopback, and a server whose map uses it.
	var tiles atomic.Int64
	tile := tilePNG(t)
	tileServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tiles.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(tile)
	}))
	t.Cleanup(tileServer.Close)
	withBasemap := start(t, func(s *setup) {
		s.fixture = ""
		s.cfg.MapTileURL = tileServer.URL + "/tiles/{z}/{x}/{y}.png"
		s.cfg.MapTileAttribution = "test tiles"
	})
	shot := filepath.Join(t.ArtifactDir(), "map-clicked.png")
	first := filepath.Join(t.ArtifactDir(), "map.png")
	cmd := exec.Command(node, "map.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "SERVER_URL="+a.base, "SCREENSHOT="+shot, "FIRST_SCREENSHOT="+first, "CHROMIUM="+chromium,
		"BASEMAP_SERVER_URL="+withBasemap.base, "TILE_SERVER_URL="+tileServer.URL)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the browser script failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var seen struct {
		Collections []string
		Checked     bool
		Drawn       string
		France      []pagePoint
		Australia   []pagePoint
		Atlantic    pagePoint
		Seas        []pagePoint
		Style       struct {
			Palette     []string
			Land        string
			FillOpacity float64
		}
		HoverName                 string
		TileRequestsAtFirstSight  int
		ItemsRequestsAtFirstSight int
		Located                   string
		Scope                     string
		Panel                     string
		Highlighted               int
		ArcticLocated             string
		ArcticHighlighted         int
		SeaLocated                string
		NearLocated               string
		NearPanel                 string
		Search                    []string
		BBox                      string
		InView                    []string
		InViewOutlined            int
		TilesLoaded               int
		TileRequests              int
		Attribution               string
		Outside                   []string
		PageErrors                []string
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &seen); err != nil {
		t.Fatalf("the script's report %q: %v", stdout.String(), err)
	}
	t.Logf("the browser saw: %+v; screenshot: %s", seen, shot)
	if len(seen.Collections) != 1 || !strings.HasPrefix(seen.Collections[0], "default") {
		t.Errorf("collections listed: %v, want default", seen.Collections)
	}
	if !seen.Checked || seen.Drawn != "drawn" || seen.TileRequestsAtFirstSight == 0 || seen.ItemsRequestsAtFirstSight != 0 {
		t.Errorf("at first sight: ticked %v, status %q, %d tile and %d items requests; want the collection drawn from tiles alone",
			seen.Checked, seen.Drawn, seen.TileRequestsAtFirstSight, seen.ItemsRequestsAtFirstSight)
	}
	checkFirstSight(t, first, map[string][]pagePoint{"France": seen.France, "Australia": seen.Australia},
		append([]pagePoint{seen.Atlantic}, seen.Seas...), seen.Style.Palette, seen.Style.Land, seen.Style.FillOpacity)
	if seen.HoverName != "France" {
		t.Errorf("hovering over France shows %q", seen.HoverName)
	}
	if seen.ArcticLocated != "" || seen.ArcticHighlighted != 0 {
		t.Errorf("clicking the Norwegian Sea (71 N, 0 E): located %q, %d highlighted paths; want nothing", seen.ArcticLocated, seen.ArcticHighlighted)
	}
	if seen.Located != "France" || seen.Highlighted == 0 || !strings.Contains(seen.Panel, "iso_n3") || seen.Scope != "default" {
		t.Errorf("clicking Paris: located %q in %q, %d highlighted paths, panel %q; want France in the drawn collection, highlighted with its properties", seen.Located, seen.Scope, seen.Highlighted, seen.Panel)
	}
	if seen.SeaLocated != "" || !strings.Contains(seen.NearLocated, "France") || !strings.Contains(seen.NearPanel, "km away") {
		t.Errorf("clicking the sea off Marseille: located %q; within 50 km %q, panel %q; want nothing, then France with its distance", seen.SeaLocated, seen.NearLocated, seen.NearPanel)
	}
	if !slices.Contains(seen.Search, "France") {
		t.Errorf("searching fran: %v", seen.Search)
	}
	if !strings.HasPrefix(seen.BBox, "bbox=") || !slices.Contains(seen.InView, "France") || seen.InViewOutlined < len(seen.InView) {
		t.Errorf("the window %q holds %v, %d outlined; want France in it, each outlined", seen.BBox, seen.InView, seen.InViewOutlined)
	}
	if seen.TilesLoaded == 0 || seen.TileRequests == 0 || tiles.Load() < int64(seen.TilesLoaded) || !strings.Contains(seen.Attribution, "test tiles") {
		t.Errorf("with a basemap: %d tiles loaded, %d requested by the page, %d served, attribution %q", seen.TilesLoaded, seen.TileRequests, tiles.Load(), seen.Attribution)
	}
	if len(seen.Outside) > 0 || len(seen.PageErrors) > 0 {
		t.Errorf("requests outside the server %v, page errors %v", seen.Outside, seen.PageErrors)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Errorf("no screenshot at %s: %v", shot, err)
	}
	// UPDATE_README_SCREENSHOT=1 makes the untouched map README's picture.
	if os.Getenv("UPDATE_README_SCREENSHOT") != "" && !t.Failed() {
		b, err := os.ReadFile(first)
		if err == nil {
			err = os.WriteFile("../../docs/map.png", b, 0o644)
		}
		if err != nil {
			t.Errorf("update docs/map.png: %v", err)
		}
	}
}

// pagePoint is a position in the page, in CSS pixels (the screenshot's).
type pagePoint struct{ X, Y int }

// checkFirstSight reads the screenshot of the untouched page: inside the
// countries' outlines (France; Australia, in the last column of tiles) the
// pixels are the first collection's colour over the land of the world
// outline; in the open Atlantic and the northern seas, no collection's.
func checkFirstSight(t *testing.T, path string, countries map[string][]pagePoint, seas []pagePoint, palette []string, land string, alpha float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the first screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the first screenshot: %v", err)
	}
	if len(palette) == 0 || len(countries["France"]) == 0 || len(countries["Australia"]) == 0 || len(seas) < 2 {
		t.Fatalf("the page reported no colours (%v) or no points (%v, seas %v)", palette, countries, seas)
	}
	want := blend(hexColour(t, palette[0]), hexColour(t, land), alpha)
	near := func(p pagePoint, c [3]float64) bool {
		r, g, b, _ := img.At(p.X, p.Y).RGBA()
		got := [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
		for i := range got {
			if math.Abs(got[i]-c[i]) > 12 {
				return false
			}
		}
		return true
	}
	for _, name := range slices.Sorted(maps.Keys(countries)) {
		for _, p := range countries[name] {
			if !near(p, want) {
				r, g, b, _ := img.At(p.X, p.Y).RGBA()
				t.Errorf("inside %s at %v the untouched map is rgb(%d, %d, %d), want the collection's %s over the land, about %v", name, p, r>>8, g>>8, b>>8, palette[0], want)
			}
		}
	}
	// Over the sea the colour blends with the sea's, within near's
	// tolerance of the blend over the land.
	for _, p := range seas {
		if near(p, want) {
			t.Errorf("the sea at %v has the collection's colour", p)
		}
	}
}

func hexColour(t *testing.T, s string) [3]float64 {
	t.Helper()
	var r, g, b int
	if _, err := fmt.Sscanf(s, "#%02x%02x%02x", &r, &g, &b); err != nil {
		t.Fatalf("colour %q: %v", s, err)
	}
	return [3]float64{float64(r), float64(g), float64(b)}
}

// blend is fg at opacity alpha over bg.
func blend(fg, bg [3]float64, alpha float64) [3]float64 {
	var out [3]float64
	for i := range out {
		out[i] = alpha*fg[i] + (1-alpha)*bg[i]
	}
	return out
}
