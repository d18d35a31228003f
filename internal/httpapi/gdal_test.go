package httpapi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo/geotest"
)

// gdal runs one of GDAL's command-line tools (Debian's gdal-bin, which
// `make deps` installs) and returns its standard output.
func gdal(t *testing.T, tool string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s (GDAL) is not installed: run `make deps` (tools/install-deps.sh browser installs Debian's gdal-bin)", tool)
	}
	cmd := exec.Command(path, args...)
	// No configuration of the user's, no network beyond the test server.
	cmd.Env = append(os.Environ(), "GDAL_HTTP_TIMEOUT=60", "CPL_DEBUG=OFF", "GDAL_DISABLE_READDIR_ON_OPEN=YES")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestGDALReadsTheWholeCollection: GDAL's OGC API – Features driver (OAPIF),
// the client behind QGIS's and most command-line GIS tools' support, lists
// the collection and copies every feature of it, following next links page
// by page (the server's maximum page size, 50, is far below the 177 things),
// and asks the server for a bbox.
func TestGDALReadsTheWholeCollection(t *testing.T) {
	t.Parallel()
	a := start(t)
	src := "OAPIF:" + a.base

	info := gdal(t, "ogrinfo", "-ro", "-q", src)
	if !strings.Contains(info, "default") {
		t.Errorf("ogrinfo lists no collection default:\n%s", info)
	}

	dir := t.TempDir()
	all := filepath.Join(dir, "all.geojson")
	gdal(t, "ogr2ogr", "-f", "GeoJSON", all, src, "default")
	names := readNames(t, all)
	want := map[string]bool{}
	for _, f := range geotest.Load(t, "ne_110m_countries.geojson") {
		want[f.Name] = true
	}
	if len(names) != len(want) {
		t.Errorf("ogr2ogr copied %d features, want %d (every thing, across pages)", len(names), len(want))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if !want[n] || seen[n] {
			t.Errorf("feature %q: not a thing of the collection, or copied twice", n)
		}
		seen[n] = true
	}
	// At most 50 things a page: the copy took at least four pages.
	if got := a.metrics.count("http.items.requests"); got < int64((len(want)+49)/50) {
		t.Errorf("%d items requests for %d things, at most 50 a page: GDAL did not page", got, len(want))
	}

	boxed := filepath.Join(dir, "box.geojson")
	gdal(t, "ogr2ogr", "-f", "GeoJSON", "-spat", "2", "48", "3", "49", boxed, src, "default")
	inBox := readNames(t, boxed)
	if !slices.Contains(inBox, "France") || len(inBox) > 5 {
		t.Errorf("ogr2ogr -spat 2 48 3 49 copied %v, want France and few others", inBox)
	}
}

// readNames returns the name property of every feature of a GeoJSON file.
func readNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var fc struct {
		Features []struct {
			Properties map[string]any `json:"properties"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &fc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	names := make([]string, 0, len(fc.Features))
	for _, f := range fc.Features {
		n, _ := f.Properties["name"].(string)
		names = append(names, n)
	}
	return names
}
