package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis/postgistest"
	"github.com/geosearch/search/internal/server/servertest"
)

func TestClientEndToEnd(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, nil, true)

	out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--key-property", "name")
	if code != 0 || !strings.Contains(out, "imported 241 features") || !strings.Contains(out, "rejected 0") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = ts.RunClient(t, "search", "--lat", "48.85", "--lng", "2.35")
	if code != 0 || !strings.Contains(out, "France") || strings.Count(out, "\n") != 2 {
		t.Errorf("search Paris: exit %d, want one row with France:\n%s%s", code, out, errOut)
	}
	out, _, code = ts.RunClient(t, "search", "--lat", "30", "--lng", "-30")
	if code != 0 || strings.TrimSpace(out) != "no matches" {
		t.Errorf("search mid-Atlantic: exit %d, want no matches:\n%s", code, out)
	}
	out, _, code = ts.RunClient(t, "search", "--query", "fran", "--lat", "48.85", "--lng", "2.35", "--json")
	var resp searchv1.SearchResponse
	if code != 0 || protojsonUnmarshal(out, &resp) != nil || len(resp.GetThings()) != 1 || resp.GetThings()[0].GetName() != "France" {
		t.Errorf("search --json: exit %d, want protojson with France:\n%s", code, out)
	}

	// Paging through the CLI sees what --all streams, in the same order.
	var paged []string
	token := ""
	for range 100 {
		args := []string{"search", "--query", "an", "--page-size", "7", "--json"}
		if token != "" {
			args = append(args, "--page-token", token)
		}
		out, errOut, code := ts.RunClient(t, args...)
		var page searchv1.SearchResponse
		if code != 0 || protojsonUnmarshal(out, &page) != nil {
			t.Fatalf("page: exit %d\n%s%s", code, out, errOut)
		}
		for _, th := range page.GetThings() {
			paged = append(paged, th.GetName())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	out, _, code = ts.RunClient(t, "search", "--query", "an", "--all", "--json")
	var streamed []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var th searchv1.Thing
		if err := protojsonUnmarshal(line, &th); err != nil {
			t.Fatalf("--all line %q: %v", line, err)
		}
		streamed = append(streamed, th.GetName())
	}
	if code != 0 || len(paged) < 50 || strings.Join(paged, "|") != strings.Join(streamed, "|") {
		t.Errorf("paged %d names, streamed %d; want the same, in the same order, and many", len(paged), len(streamed))
	}

	checkSortedWalk(t, ts)

	out, _, code = ts.RunClient(t, "monitor")
	if code != 0 || !strings.Contains(out, "things:    241") {
		t.Errorf("monitor: exit %d\n%s", code, out)
	}
	out, _, code = ts.RunClient(t, "health")
	if code != 0 || strings.TrimSpace(out) != "SERVING" {
		t.Errorf("health: exit %d\n%s", code, out)
	}

	// Errors print the gRPC code and message and exit non-zero.
	_, errOut, code = ts.RunClient(t, "search", "--lat", "91", "--lng", "0")
	if code != 1 || !strings.Contains(errOut, "InvalidArgument: point.lat must be within [-90, 90], got 91") {
		t.Errorf("invalid point: exit %d, stderr %q", code, errOut)
	}

	// A file that is not GeoJSON imports nothing; so does one half-read.
	before := fingerprint(t, ts.DBURL)
	bad := filepath.Join(t.TempDir(), "bad.geojson")
	truncated := filepath.Join(t.TempDir(), "truncated.geojson")
	full, err := os.ReadFile(geotest.Testdata("ne_110m_countries.geojson"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("id,name\n1,France\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, full[:len(full)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{bad, truncated} {
		_, errOut, code = ts.RunClient(t, "import", f)
		if code != 1 || !strings.Contains(errOut, "nothing was imported") {
			t.Errorf("import %s: exit %d, stderr %q", filepath.Base(f), code, errOut)
		}
	}
	if after := fingerprint(t, ts.DBURL); after != before {
		t.Errorf("failed imports changed the store: %s -> %s", before, after)
	}
}

// checkSortedWalk runs sort_by and properties through the CLI and gRPC to
// PostGIS on ts, which holds the 1:50m countries: pages walked with their
// tokens see what --all streams, in descending iso_n3 order, each thing
// with that property only.
func checkSortedWalk(t *testing.T, ts *servertest.Server) {
	t.Helper()
	sortedWalk := func(args ...string) []string {
		t.Helper()
		var codes []string
		token := ""
		for range 100 {
			a := append([]string{"search", "--query", "an", "--sort-by=-iso_n3,name", "--properties", "iso_n3", "--json"}, args...)
			if token != "" {
				a = append(a, "--page-token", token)
			}
			out, errOut, code := ts.RunClient(t, a...)
			var page searchv1.SearchResponse
			if code != 0 || protojsonUnmarshal(out, &page) != nil {
				t.Fatalf("sorted page: exit %d\n%s%s", code, out, errOut)
			}
			for _, th := range page.GetThings() {
				props := th.GetProperties().AsMap()
				if len(props) > 1 {
					t.Errorf("%s: properties %v, want iso_n3 only", th.GetName(), props)
				}
				v, _ := props["iso_n3"].(string)
				codes = append(codes, v)
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		return codes
	}
	sortedCodes := sortedWalk("--page-size", "7")
	if len(sortedCodes) < 50 || !slices.IsSortedFunc(sortedCodes, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("--sort-by=-iso_n3: %d things, %v; want many, in descending iso_n3 order", len(sortedCodes), sortedCodes)
	}
	out, _, code := ts.RunClient(t, "search", "--query", "an", "--sort-by=-iso_n3,name", "--all", "--json")
	var streamedCodes []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var th searchv1.Thing
		if err := protojsonUnmarshal(line, &th); err != nil {
			t.Fatalf("sorted --all line %q: %v", line, err)
		}
		v, _ := th.GetProperties().AsMap()["iso_n3"].(string)
		streamedCodes = append(streamedCodes, v)
	}
	if code != 0 || !slices.Equal(sortedCodes, streamedCodes) {
		t.Errorf("sorted: paged %d, streamed %d; want the same order", len(sortedCodes), len(streamedCodes))
	}
}

func TestImportOfTheDetailedCountriesReportsTheCollapsedOne(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, nil, true)
	out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_10m_countries.geojson.gz"), "--key-property", "name")
	if code != exitRejectedForTest || !strings.Contains(out, "imported 254 features") ||
		!strings.Contains(out, "rejected feature 166 (Vatican): geometry has no area") {
		t.Fatalf("import 1:10m: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = ts.RunClient(t, "search", "--lat", "35.69", "--lng", "139.69")
	if !strings.Contains(out, "Japan") {
		t.Errorf("Tokyo: %s", out)
	}
}

// exitRejectedForTest mirrors search-client's exit status for an import that
// rejected features.
const exitRejectedForTest = 3

// fingerprint summarizes everything stored, to prove that bad input
// changed nothing.
func fingerprint(t *testing.T, dbURL string) string {
	t.Helper()
	return postgistest.Fingerprint(t, dbURL)
}

func protojsonUnmarshal(s string, m proto.Message) error {
	return protojson.Unmarshal([]byte(s), m)
}

// TestMonitorShowsTheMemoryIndex: monitor prints a line per collection of
// the in-memory point index: in memory, with its things, or on the
// database, with the reason (here: a budget too small for it).
func TestMonitorShowsTheMemoryIndex(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, map[string]string{"MEMINDEX": "on", "MEMINDEX_POLL_INTERVAL": "50ms"}, true)
	if out, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "countries"); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	small := servertest.StartBinary(t, map[string]string{"DATABASE_URL": ts.DBURL, "MEMINDEX": "on", "MEMINDEX_BUDGET_BYTES": "100000"}, true)
	for _, c := range []struct {
		ts   *servertest.Server
		want string
	}{
		{ts, "memory:    countries in memory: 177 things, "},
		{small, "memory:    countries on the database: "},
	} {
		var out string
		servertest.Eventually(t, 30*time.Second, "monitor prints "+c.want, func() bool {
			var code int
			out, _, code = c.ts.RunClient(t, "monitor")
			return code == 0 && strings.Contains(out, c.want)
		})
		t.Logf("monitor:\n%s", out)
	}
}
