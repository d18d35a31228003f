package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/server/servertest"
)

// bowtie is a self-intersecting ring at (x, y): the store repairs it with
// ST_MakeValid.
func bowtie(x, y float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%g,%g],[%g,%g],[%g,%g],[%g,%g],[%g,%g]]]}`,
		x, y, x+0.01, y+0.01, x+0.01, y, x, y+0.01, x, y)
}

// bowtieAt places feature i of many on a grid over the globe.
func bowtieAt(i int) string { return bowtie(-170+float64(i%300)*1.1, -80+float64(i/300)*0.8) }

// TestImportOfManyRepairsFitsTheClient imports 60,000 self-intersecting
// polygons through the CLI, each repaired by the store: the answer lists the
// first problems and counts them all (the complete list was 5 MB: the import
// committed and the client failed with RESOURCE_EXHAUSTED), and the CLI
// says how many were repaired. grpcapi's TestImportSummaryFitsADefaultClient
// checks the same bound against grpc-go's default 4 MiB receive limit.
func TestImportOfManyRepairsFitsTheClient(t *testing.T) {
	t.Parallel()
	const n = 60_000
	ts := servertest.StartBinary(t, nil, true)

	path := filepath.Join(t.TempDir(), "bowties.geojson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, `{"type":"FeatureCollection","features":[`)
	for i := range n {
		if i > 0 {
			fmt.Fprint(w, ",")
		}
		fmt.Fprintf(w, `{"type":"Feature","properties":{"name":"bowtie %d"},"geometry":%s}`, i, bowtieAt(i))
	}
	// One feature the CLI rejects itself, counted with the server's.
	fmt.Fprint(w, `,{"type":"Feature","properties":7,"geometry":null}]}`)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, errOut, code := ts.RunClient(t, "import", path, "--collection", "cli")
	want := fmt.Sprintf("imported %d features into cli (%d repaired), rejected 1\n", n, n)
	if code != 3 || !strings.HasPrefix(out, want) || !strings.Contains(out, fmt.Sprintf("0 of 0 rejections and 1000 of %d repairs", n)) {
		t.Errorf("search-client import: exit %d, stdout:\n%.2000s\nstderr:\n%s\nwant exit %d, %q and the listing's bounds", code, out, errOut, 3, want)
	}
}
