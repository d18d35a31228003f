package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/server/servertest"
)

// TestLocateThroughTheClient runs search-client locate against a real
// server: CSV with a header and NDJSON in, NDJSON and CSV out, one answer
// per point in input order, bad points answered with errors (exit 3), an
// unreadable line refused (exit 2).
func TestLocateThroughTheClient(t *testing.T) {
	t.Parallel()
	ts := servertest.StartBinary(t, nil, true)
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_50m_countries.geojson"), "--collection", "countries"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := ts.RunClient(t, "import", geotest.Testdata("ne_110m_countries.geojson"), "--collection", "coarse"); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errOut)
	}
	dir := t.TempDir()
	var csvIn, ndjsonIn strings.Builder
	csvIn.WriteString("lat,lng,id\n") // a header, columns in another order
	var ids []string
	n := 0
	for lat := -60.0; lat <= 70; lat += 2 {
		for lng := -180.0; lng < 180; lng += 4 {
			id := fmt.Sprintf("p%d", n)
			fmt.Fprintf(&csvIn, "%g,%g,%s\n", lat, lng, id)
			fmt.Fprintf(&ndjsonIn, `{"id":%q,"lat":%g,"lng":%g}`+"\n", id, lat, lng)
			ids = append(ids, id)
			n++
		}
	}
	csvIn.WriteString("NaN,0,bad-nan\n91,0,bad-lat\n48.85,2.35,paris\n")
	ids = append(ids, "bad-nan", "bad-lat", "paris")
	csvPath := filepath.Join(dir, "points.csv")
	ndjsonPath := filepath.Join(dir, "points.ndjson")
	if err := os.WriteFile(csvPath, []byte(csvIn.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ndjsonPath, []byte(ndjsonIn.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := ts.RunClient(t, "locate", "--collection", "countries", csvPath)
	if code != 3 {
		t.Fatalf("locate with bad points: exit %d, want 3\n%s", code, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("located %d points", len(ids))) || !strings.Contains(errOut, "2 errors") {
		t.Errorf("summary: %s", errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(ids) {
		t.Fatalf("%d answers for %d points", len(lines), len(ids))
	}
	inside := 0
	for i, line := range lines {
		var a struct {
			ID     string
			Things []struct{ Name, Collection string }
			Error  *struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("answer %d %q: %v", i, line, err)
		}
		if a.ID != ids[i] {
			t.Fatalf("answer %d is for %q, want %q: out of order", i, a.ID, ids[i])
		}
		if strings.HasPrefix(a.ID, "bad-") != (a.Error != nil) || a.Error != nil && a.Error.Code != "INVALID_ARGUMENT" {
			t.Errorf("answer %s: error %+v", a.ID, a.Error)
		}
		for _, th := range a.Things {
			if th.Collection != "countries" {
				t.Errorf("answer %s: a thing of collection %q", a.ID, th.Collection)
			}
		}
		if len(a.Things) > 0 {
			inside++
		}
		if a.ID == "paris" && (len(a.Things) != 1 || a.Things[0].Name != "France") {
			t.Errorf("Paris: %s", line)
		}
	}
	if inside < len(ids)/5 {
		t.Errorf("only %d of %d points inside a country", inside, len(ids))
	}

	// NDJSON in, CSV out, both collections: the same points, in order.
	out, errOut, code = ts.RunClient(t, "locate", "--csv", ndjsonPath)
	if code != 0 {
		t.Fatalf("locate --csv: exit %d\n%s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "id,thing_id,collection,key,name,error" {
		t.Errorf("CSV header %v", rows[0])
	}
	var order []string
	collections := map[string]bool{}
	for _, r := range rows[1:] {
		if len(order) == 0 || order[len(order)-1] != r[0] {
			order = append(order, r[0])
		}
		collections[r[2]] = true
	}
	if strings.Join(order, ",") != strings.Join(ids[:n], ",") {
		t.Errorf("CSV answers are not one run per point in input order")
	}
	if !collections["countries"] || !collections["coarse"] {
		t.Errorf("unscoped locate found things of %v, want both collections", collections)
	}

	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("a,1,2\nb,north,2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code = ts.RunClient(t, "locate", bad); code != 2 || !strings.Contains(errOut, "line 2") {
		t.Errorf("an unreadable line: exit %d, want 2 naming line 2\n%s", code, errOut)
	}
}
