package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestSpatialSearchThroughTheClient runs search-client search with
// --max-distance, --bbox, --relation and --area, and locate with
// --max-distance, against a real server on the 1:50m countries: the flags
// end to end, distances printed, and bad input refused with its reason.
func TestSpatialSearchThroughTheClient(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, nil, true)
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--collection", "countries"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := ts.RunClient(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, errOut)
		}
		return out
	}
	// Off Marseille, in the sea: in no country, France within 50 km.
	sea := []string{"search", "--lat", "43.18", "--lng", "5.35"}
	if out := run(sea...); !strings.Contains(out, "no matches") {
		t.Errorf("the sea point is in a country:\n%s", out)
	}
	out := run(append(sea, "--max-distance", "50km")...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "DISTANCE") || len(lines) < 2 || !strings.Contains(lines[1], "France") || !strings.HasSuffix(strings.Fields(lines[1])[1], "m") {
		t.Errorf("nearest within 50 km: France first, with its distance, expected:\n%s", out)
	}
	if m := run(append(sea, "--max-distance", "50000")...); m != out {
		t.Errorf("--max-distance 50000 differs from 50km:\n%s\n%s", m, out)
	}
	var resp struct {
		Things []struct {
			Name      string
			DistanceM *float64
		}
	}
	if err := json.Unmarshal([]byte(run(append(sea, "--max-distance", "50km", "--json")...)), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Things) == 0 || resp.Things[0].DistanceM == nil || *resp.Things[0].DistanceM <= 0 || *resp.Things[0].DistanceM > 50_000 {
		t.Errorf("--json: %+v, want a positive distanceM within 50 km first", resp)
	}
	resp.Things = nil
	paris := run("search", "--lat", "48.85", "--lng", "2.35", "--max-distance", "1m", "--json")
	if err := json.Unmarshal([]byte(paris), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Things) != 1 || resp.Things[0].Name != "France" || resp.Things[0].DistanceM == nil || *resp.Things[0].DistanceM != 0 {
		t.Errorf("Paris within 1 m: France at distance 0 expected:\n%s", paris)
	}
	if old := run("search", "--lat", "48.85", "--lng", "2.35", "--json"); strings.Contains(old, "distanceM") {
		t.Errorf("a search without --max-distance carries distances:\n%s", old)
	}

	within := run("search", "--bbox", "-10,35,30,60", "--relation", "within", "--collection", "countries")
	intersects := run("search", "--bbox", "-10,35,30,60", "--collection", "countries")
	if !strings.Contains(within, "Switzerland") || strings.Contains(within, "Russia") || !strings.Contains(intersects, "Russia") {
		t.Errorf("box within:\n%s\nintersecting:\n%s", within, intersects)
	}
	if out := run("search", "--bbox", "176,-21,-178,-12"); !strings.Contains(out, "Fiji") {
		t.Errorf("a box across the antimeridian misses Fiji:\n%s", out)
	}
	if out := run("search", "--bbox", "8,46.5,8.1,46.6", "--relation", "contains"); !strings.Contains(out, "Switzerland") {
		t.Errorf("a small box in Switzerland: it should contain it:\n%s", out)
	}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	poly := `{"type":"Polygon","coordinates":[[[5,45],[11,45],[11,48.5],[5,48.5],[5,45]]]}`
	for name, content := range map[string]string{
		"geometry.geojson":   poly,
		"feature.geojson":    `{"type":"Feature","properties":{},"geometry":` + poly + `}`,
		"collection.geojson": `{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":` + poly + `}]}`,
	} {
		out := run("search", "--area", write(name, content), "--relation", "within")
		if !strings.Contains(out, "Switzerland") || strings.Contains(out, "France") {
			t.Errorf("--area %s within: Switzerland alone expected:\n%s", name, out)
		}
	}

	// Bad input: usage errors (exit 2) and the server's refusals.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"search", "--lat", "1", "--lng", "1", "--max-distance", "5 miles"}, 2, `--max-distance "5 miles": want a distance such as 500m or 50km`},
		{[]string{"search", "--max-distance", "5km", "--query", "a"}, 2, "--max-distance needs --lat and --lng"},
		{[]string{"search", "--lat", "1", "--lng", "1", "--max-distance", "2000km"}, 1, "max_distance_m is 2e+06; the limit is 1000000 (1000 km)"},
		{[]string{"search", "--bbox", "1,2,3"}, 2, "want MINLNG,MINLAT,MAXLNG,MAXLAT"},
		{[]string{"search", "--bbox", "0,10,1,5"}, 1, "bbox min lat (10) must not be greater than max lat (5)"},
		{[]string{"search", "--bbox", "0,0,1,1", "--relation", "touches"}, 2, `--relation "touches": want intersects, within or contains`},
		{[]string{"search", "--query", "a", "--relation", "within"}, 2, "--relation needs --bbox or --area"},
		{[]string{"search", "--area", write("bowtie.geojson", `{"type":"Polygon","coordinates":[[[0,0],[10,10],[10,0],[0,10],[0,0]]]}`)}, 1, "area is not a valid polygon: Self-intersection at (5 5)"},
		{[]string{"search", "--area", write("line.geojson", `{"type":"LineString","coordinates":[[0,0],[1,1]]}`)}, 1, "area type LineString is not supported; want Polygon or MultiPolygon"},
		{[]string{"search", "--area", write("two.geojson", `{"type":"FeatureCollection","features":[{"geometry":null},{"geometry":null}]}`)}, 2, "a FeatureCollection of 2 features"},
		{[]string{"search", "--lat", "1", "--lng", "1", "--area", write("ok.geojson", poly)}, 1, "a search takes one of a point, a bbox and an area, not several"},
	} {
		_, errOut, code := ts.RunClient(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}

	// Locate with a distance: the sea point finds France, Paris finds it at 0.
	points := write("points.csv", "id,lat,lng\nsea,43.18,5.35\nparis,48.85,2.35\nmid-atlantic,30,-40\n")
	out = run("locate", "--collection", "countries", "--max-distance", "50km", "--csv", points)
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "id,thing_id,collection,key,name,distance_m,error" {
		t.Errorf("CSV header %v", rows[0])
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		if _, ok := got[r[0]]; !ok {
			got[r[0]] = r[4] + " " + r[5]
		}
	}
	if !strings.HasPrefix(got["sea"], "France ") || got["sea"] == "France 0.0" || got["paris"] != "France 0.0" || got["mid-atlantic"] != " " {
		t.Errorf("locate --max-distance 50km: %v", got)
	}
	out = run("locate", "--collection", "countries", "--max-distance", "5km", points)
	if !strings.Contains(strings.ReplaceAll(out, " ", ""), `"distanceM":0`) {
		t.Errorf("locate NDJSON without distances:\n%s", out)
	}
}
