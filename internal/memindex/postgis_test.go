package memindex_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"
	"github.com/twpayne/go-geom/encoding/wkb"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/memindex"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// The exhaustive comparison (make bench): a million random points per
// collection, every vertex and every edge of the countries and of a
// 100,000-cell grid. Without it, make test compares a sample.
var exhaustive = flag.Bool("exhaustive", false, "compare with PostGIS on 1M random points, every vertex and every edge, and the 100k grid")

var cluster *postgistest.Cluster

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(postgistest.Main(m, &cluster))
}

func newService(t testing.TB) (*postgis.SearchService, *pgxpool.Pool) {
	t.Helper()
	pool, err := postgis.Open(context.Background(), postgis.Config{URL: cluster.NewDatabase(t), MaxWriteConns: 2}, "memindex-test", postgis.NewStatementTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return postgis.NewSearchService(pool), pool
}

// processCPU is the CPU time the test process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// scanOf adapts the service's scan to a memindex.Scan.
func scanOf(svc *postgis.SearchService) memindex.Scan {
	return func(ctx context.Context, collection string, fn func(int64, []byte) error) (memindex.Stored, error) {
		v, err := svc.ScanGeometries(ctx, collection, fn)
		return memindex.Stored{Snapshot: v.Snapshot, LSN: v.LSN, UpdatedAt: v.UpdatedAt, Exists: v.Exists, PostGIS: v.PostGIS}, err
	}
}

// gridFeatures tiles the globe with rows x 2*rows square cells, as
// search-bench's grid does (cell edges at -180 + c*360/cols, which are not
// floats, so the stored float boxes are rounded).
func gridFeatures(rows int) []geo.Feature {
	cols := 2 * rows
	w, h := 360/float64(cols), 180/float64(rows)
	var fs []geo.Feature
	for r := range rows {
		for c := range cols {
			x0, y0 := -180+float64(c)*w, -90+float64(r)*h
			x1, y1 := x0+w, y0+h
			if c == cols-1 {
				x1 = 180
			}
			if r == rows-1 {
				y1 = 90
			}
			f := geotest.Square(fmt.Sprintf("cell %d %d", r, c), "", nil, x0, y0, x1, y1)
			f.Index = len(fs)
			fs = append(fs, f)
		}
	}
	return fs
}

// testPoints returns random points over the collection's extent, and for
// vertices (every one, or a sample of samples): the vertex, the midpoint
// of its edge and points 1e-9 degrees either side of the edge there (in x
// and in y).
func testPoints(rng *rand.Rand, stored []*geom.MultiPolygon, random, samples int) [][2]float64 {
	var pts [][2]float64
	for range random {
		pts = append(pts, [2]float64{rng.Float64()*360 - 180, rng.Float64()*180 - 90})
	}
	type edge struct{ x1, y1, x2, y2 float64 }
	var edges []edge
	for _, mp := range stored {
		for i := range mp.NumPolygons() {
			p := mp.Polygon(i)
			for j := range p.NumLinearRings() {
				c := p.LinearRing(j).FlatCoords()
				for k := 0; k+3 < len(c); k += 2 {
					edges = append(edges, edge{c[k], c[k+1], c[k+2], c[k+3]})
				}
			}
		}
	}
	if samples > 0 && samples < len(edges) {
		rng.Shuffle(len(edges), func(i, j int) { edges[i], edges[j] = edges[j], edges[i] })
		edges = edges[:samples]
	}
	const d = 1e-9
	for _, e := range edges {
		mx, my := (e.x1+e.x2)/2, (e.y1+e.y2)/2
		pts = append(pts, [2]float64{e.x1, e.y1}, [2]float64{mx, my},
			[2]float64{mx - d, my}, [2]float64{mx + d, my}, [2]float64{mx, my - d}, [2]float64{mx, my + d})
	}
	return pts
}

// storedGeometries reads the stored geometry back (not the imported one:
// repairs and the antimeridian cut change it).
func storedGeometries(t testing.TB, svc *postgis.SearchService, collection string) []*geom.MultiPolygon {
	t.Helper()
	var out []*geom.MultiPolygon
	_, err := svc.ScanGeometries(context.Background(), collection, func(_ int64, b []byte) error {
		g, err := wkb.Unmarshal(b)
		if err != nil {
			return err
		}
		mp, ok := g.(*geom.MultiPolygon)
		if !ok {
			return fmt.Errorf("stored geometry is a %T", g)
		}
		out = append(out, mp)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// importSamples imports the 1:10m countries and a grid of gridRows rows
// into the collections "countries" and "grid" through the service, and
// returns the collections' names.
func importSamples(tb testing.TB, svc *postgis.SearchService, gridRows int) []string {
	tb.Helper()
	sets := []struct {
		collection string
		features   []geo.Feature
	}{
		{"countries", geotest.Load(tb, "ne_10m_countries.geojson.gz")},
		{"grid", gridFeatures(gridRows)},
	}
	var names []string
	for _, set := range sets {
		res, err := svc.Import(context.Background(), geo.ImportOptions{Collection: set.collection}, &geotest.Source{Features: set.features})
		if err != nil {
			tb.Fatalf("import %s: %v", set.collection, err)
		}
		// The 1:10m Vatican has no area and is rejected.
		if res.Imported < len(set.features)-1 {
			tb.Fatalf("import %s: %d of %d imported: %v", set.collection, res.Imported, len(set.features), res.Rejected)
		}
		names = append(names, set.collection)
	}
	return names
}

// loadMeasured loads collection and measures the heap it holds per vertex.
func loadMeasured(tb testing.TB, svc *postgis.SearchService, collection string) (*memindex.Index, float64) {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix, err := memindex.Load(context.Background(), scanOf(svc), collection)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return ix, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(max(ix.Vertices(), 1))
}

// TestMatchesPostGIS is the differential test: for the 1:10m countries and
// a grid, imported through the service, every point's answer from the
// index equals ST_Contains on the stored geometry.
func TestMatchesPostGIS(t *testing.T) {
	t.Parallel()
	gridRows, random, samples := 50, 20_000, 15_000
	if *exhaustive {
		gridRows, random, samples = 224, 1_000_000, 0 // 224 x 448 = 100,352 cells
	}
	svc, pool := newService(t)
	collections := importSamples(t, svc, gridRows)
	rng := rand.New(rand.NewPCG(3, 5))
	for _, collection := range collections {
		ix, perVertex := loadMeasured(t, svc, collection)
		stored := storedGeometries(t, svc, collection)
		pts := testPoints(rng, stored, random, samples)
		want := postgistest.Contains(t, pool, collection, pts)
		diffs, uncertain, inside := 0, 0, 0
		for i, p := range pts {
			got, certain := ix.Lookup(nil, p[0], p[1])
			if !certain {
				uncertain++
				continue
			}
			if len(want[i]) > 0 {
				inside++
			}
			if !slices.Equal(got, want[i]) {
				diffs++
				if diffs <= 10 {
					t.Errorf("%s: point (%.17g, %.17g): index %v, ST_Contains %v", collection, p[0], p[1], got, want[i])
				}
			}
		}
		t.Logf("%s: %d things, %d vertices; %d points (%d inside), %d differences, %d left to PostGIS; heap %.1f bytes per vertex, estimate %.1f",
			collection, ix.Len(), ix.Vertices(), len(pts), inside, diffs, uncertain,
			perVertex, float64(ix.Bytes())/float64(ix.Vertices()))
		if diffs > 0 {
			t.Errorf("%s: %d of %d points differ from ST_Contains", collection, diffs, len(pts))
		}
		if uncertain > len(pts)/1000 {
			t.Errorf("%s: %d of %d points left to PostGIS", collection, uncertain, len(pts))
		}
		if inside < len(pts)/10 {
			t.Errorf("%s: only %d of %d points inside a thing: the comparison proves little", collection, inside, len(pts))
		}
	}
}

var benchGridRows = flag.Int("bench-grid-rows", 224, "rows of the grid BenchmarkLookup imports (cells: 2*rows*rows; 224: 100,352)")

// BenchmarkLookup measures a point lookup in memory beside the same
// question to PostGIS through the service (Search with the point and the
// collection: one round trip, the statement on the parts), on the 1:10m
// countries and the grid, with random points over the globe.
func BenchmarkLookup(b *testing.B) {
	svc, _ := newService(b)
	ctx := context.Background()
	collections := importSamples(b, svc, *benchGridRows)
	rng := rand.New(rand.NewPCG(9, 9))
	pts := make([][2]float64, 1<<16)
	for i := range pts {
		pts[i] = [2]float64{rng.Float64()*360 - 180, rng.Float64()*180 - 90}
	}
	for _, collection := range collections {
		ix, perVertex := loadMeasured(b, svc, collection)
		b.Run(collection+"/memory", func(b *testing.B) {
			var buf [8]int64
			found := 0
			b.ReportAllocs()
			cpu0 := processCPU(b)
			for i := 0; b.Loop(); i++ {
				p := pts[i&(len(pts)-1)]
				got, certain := ix.Lookup(buf[:0], p[0], p[1])
				if !certain {
					b.Fatalf("point %v left to PostGIS", p)
				}
				found += len(got)
			}
			// CPU time beside wall time: on a shared machine the wall
			// time per lookup includes waiting for a core.
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(perVertex, "heap-bytes/vertex")
			b.ReportMetric(float64(ix.Vertices()), "vertices")
		})
		b.Run(collection+"/postgis", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := pts[i&(len(pts)-1)]
				q := geo.Query{Filter: geo.Filter{Point: &geo.Point{Lng: p[0], Lat: p[1]}, Collections: []string{collection}}, Limit: 10}
				if _, err := svc.Search(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
		runtime.KeepAlive(ix)
	}
}

// TestLoadVersion: an index's snapshot says exactly which writes it holds
// (the writer's transaction, as imports record it in written_xact), a
// later load holds a later import, and a collection that does not exist
// loads empty.
func TestLoadVersion(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	ctx := context.Background()
	importSquare := func(name string, x float64) uint64 {
		t.Helper()
		src := &geotest.Source{Features: []geo.Feature{geotest.Square(name, name, nil, x, 0, x+1, 1)}}
		if _, err := svc.Import(ctx, geo.ImportOptions{Collection: "c"}, src); err != nil {
			t.Fatal(err)
		}
		var xid string
		if err := pool.QueryRow(ctx, `SELECT written_xact::text FROM thing WHERE collection = 'c' AND key = $1`, name).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(xid, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	xidA := importSquare("a", 0)
	ix1, err := memindex.Load(ctx, scanOf(svc), "c")
	if err != nil {
		t.Fatal(err)
	}
	xidB := importSquare("b", 10)
	ix2, err := memindex.Load(ctx, scanOf(svc), "c")
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := ix1.Version(), ix2.Version()
	if !v1.Snapshot.Completed(xidA) || v1.Snapshot.Completed(xidB) {
		t.Errorf("first load %v: import a (xid %d) completed %v, import b (xid %d) completed %v; want true, false",
			v1.Snapshot, xidA, v1.Snapshot.Completed(xidA), xidB, v1.Snapshot.Completed(xidB))
	}
	if !v2.Snapshot.Completed(xidB) {
		t.Errorf("second load %v: import b (xid %d) not completed", v2.Snapshot, xidB)
	}
	if v2.LSN <= v1.LSN || !v2.UpdatedAt.After(v1.UpdatedAt) {
		t.Errorf("second load at %x, updated %v; first at %x, updated %v", v2.LSN, v2.UpdatedAt, v1.LSN, v1.UpdatedAt)
	}
	if got, _ := ix1.Lookup(nil, 10.5, 0.5); len(got) != 0 {
		t.Errorf("first load finds %v in b", got)
	}
	if got, _ := ix2.Lookup(nil, 10.5, 0.5); len(got) != 1 {
		t.Errorf("second load finds %v in b, want one thing", got)
	}
	missing, err := memindex.Load(ctx, scanOf(svc), "missing")
	if err != nil {
		t.Fatal(err)
	}
	if missing.Len() != 0 || !missing.Version().UpdatedAt.IsZero() {
		t.Errorf("a missing collection loads %d things, updated %v", missing.Len(), missing.Version().UpdatedAt)
	}
}
