package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// gridCells is a grid of 316 x 316 squares of 0.1° from 10° W, 35° N
// (about 100,000 things over Europe), the large collection of the map and
// tile tests and of BenchmarkTiles.
func gridCells() []geo.Feature {
	cells := make([]geo.Feature, 0, 316*316)
	for i := range 316 {
		for j := range 316 {
			x, y := -10+float64(i)*0.1, 35+float64(j)*0.1
			cells = append(cells, geotest.Square(fmt.Sprintf("cell %d %d", i, j), fmt.Sprintf("%d-%d", i, j), nil, x, y, x+0.1, y+0.1))
		}
	}
	return cells
}

// TestMapDrawsABigCollection opens the untouched map at zoom 10 over Paris
// (#10/48.85/2.35) on a server whose one collection is the 100,000-square
// grid: every tile of the window loads, the collection's colour is in the
// middle of the squares around Paris, and zoomed out to 3 (overviews:
// TILE_OVERVIEW_THINGS at its default) it is drawn again, with every tile
// within TILE_MAX_BYTES. The times are reported;
// the step timeout is a hang guard, not a speed target (make bench
// measures tiles/s).
func TestMapDrawsABigCollection(t *testing.T) {
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
	const maxTileBytes = 512 << 10
	a := start(t, func(s *setup) {
		s.fixture = ""
		s.cfg.TileMaxBytes = maxTileBytes
		s.cfg.TileOverviewThings = 5_000 // the default
	})
	imported := time.Now()
	importInto(t, a, "grid", gridCells())
	t.Logf("imported 99,856 squares in %v", time.Since(imported).Round(time.Millisecond))

	// The middles of squares round Paris: cells span x.x0 to x.x0 + 0.1.
	points := [][2]float64{{48.85, 2.35}, {48.75, 2.25}, {48.95, 2.55}, {48.65, 2.05}}
	pts, _ := json.Marshal(points)
	shot := filepath.Join(t.ArtifactDir(), "map-grid-z10.png")
	cmd := exec.Command(node, "big.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(), "SERVER_URL="+a.base, "SCREENSHOT="+shot, "CHROMIUM="+chromium,
		"COLLECTION=grid", "CENTRE=48.85,2.35", "ZOOMS_OUT=3", "POINTS="+string(pts), "STEP_TIMEOUT_MS=60000")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the browser script failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var seen struct {
		Paths, DrawMs, Zoom int
		ZoomedOut           []struct{ Zoom, Paths, Ms int }
		TilesAtZoom10       int
		Tiles               []string
		Listed              []string
		FailedTiles         []string
		Points              []pagePoint
		Style               struct {
			Palette     []string
			Land        string
			FillOpacity float64
		}
		PageErrors []string
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &seen); err != nil {
		t.Fatalf("the script's report %q: %v", stdout.String(), err)
	}
	// The sizes of the tiles served, from the server's access log.
	largest, served := 0.0, 0
	slowest := 0.0
	for _, rec := range a.access.records(t) {
		if rec["route"] != "tile" {
			continue
		}
		served++
		largest = max(largest, rec["bytes"].(float64))
		slowest = max(slowest, rec["duration_ms"].(float64))
		if rec["bytes"].(float64) > maxTileBytes {
			t.Errorf("tile %s is %v bytes, above TILE_MAX_BYTES (%d)", rec["path"], rec["bytes"], maxTileBytes)
		}
	}
	t.Logf("zoom 10: drawn in %d ms, %d tiles, %d paths; then %+v; %d tiles served, the largest %.0f bytes, the slowest %.0f ms; screenshot %s",
		seen.DrawMs, seen.TilesAtZoom10, seen.Paths, seen.ZoomedOut, served, largest, slowest, shot)
	if served == 0 {
		t.Errorf("the access log has no tile requests")
	}
	if seen.Zoom != 10 || seen.TilesAtZoom10 == 0 || seen.Paths < 50 || len(seen.ZoomedOut) != 1 || seen.ZoomedOut[0].Zoom != 3 {
		t.Errorf("zoom %d, %d tiles, %d paths, then %+v; want the grid drawn at zoom 10, then 3", seen.Zoom, seen.TilesAtZoom10, seen.Paths, seen.ZoomedOut)
	}
	for _, z := range seen.ZoomedOut {
		if z.Paths == 0 {
			t.Errorf("zoom %d: nothing drawn", z.Zoom)
		}
	}
	for _, tile := range seen.Tiles[:seen.TilesAtZoom10] {
		if !strings.Contains(tile, "/WebMercatorQuad/10/") {
			t.Errorf("at zoom 10 the page fetched %s: the address's view was not the first one", tile)
		}
	}
	if len(seen.FailedTiles) > 0 || len(seen.PageErrors) > 0 {
		t.Errorf("failed tiles %v, page errors %v", seen.FailedTiles, seen.PageErrors)
	}
	i := slices.Index(seen.Listed, "grid")
	if i < 0 || len(seen.Style.Palette) == 0 {
		t.Fatalf("the page lists %v with the palette %v", seen.Listed, seen.Style.Palette)
	}
	checkColourAt(t, shot, seen.Points, seen.Style.Palette[i%len(seen.Style.Palette)], seen.Style.Land, seen.Style.FillOpacity)
}

// checkColourAt reads the screenshot at path: at each point the page shows
// colour over the land at opacity alpha, within 12 of each channel.
func checkColourAt(t *testing.T, path string, points []pagePoint, colour, land string, alpha float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot: %v", err)
	}
	if len(points) == 0 {
		t.Fatalf("the page reported no points")
	}
	want := blend(hexColour(t, colour), hexColour(t, land), alpha)
	for _, p := range points {
		r, g, b, _ := img.At(p.X, p.Y).RGBA()
		got := [3]float64{float64(r >> 8), float64(g >> 8), float64(b >> 8)}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 12 {
				t.Errorf("at %v the map is rgb(%d, %d, %d), want the collection's %s over the land, about %v", p, r>>8, g>>8, b>>8, colour, want)
				break
			}
		}
	}
}
