package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twpayne/go-geom"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

var cluster *postgistest.Cluster

func TestMain(m *testing.M) { os.Exit(postgistest.Main(m, &cluster)) }

// newService returns a service on a fresh database and the pool under it.
func newService(t testing.TB) (*postgis.SearchService, *pgxpool.Pool) {
	t.Helper()
	return newServiceAt(t, cluster.NewDatabase(t))
}

// newServiceAt returns a service on the database at url and the pool under
// it, closed when t ends.
func newServiceAt(t testing.TB, url string) (*postgis.SearchService, *pgxpool.Pool) {
	t.Helper()
	// No statement timeout: the whole-geometry reference query of
	// TestPartsMatchWholeGeometry is slow on purpose.
	pool, err := postgis.Open(context.Background(), postgis.Config{URL: url, MaxWriteConns: 2}, "postgis-test", postgis.NewStatementTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return postgis.NewSearchService(pool), pool
}

func mustImport(t *testing.T, svc *postgis.SearchService, features []geo.Feature) geo.ImportResult {
	t.Helper()
	res, err := svc.Import(context.Background(), geo.ImportOptions{}, &geotest.Source{Features: features})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return res
}

func names(things []geo.Thing) []string {
	out := make([]string, len(things))
	for i, th := range things {
		out[i] = th.Name
	}
	return out
}

// square is a feature whose geometry is the square [x0,x1] x [y0,y1].
func square(name string, x0, y0, x1, y1 float64) geo.Feature {
	mp := geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{{{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}}})
	return geo.Feature{Name: name, Geometry: mp}
}

func TestSearchKnownAnswers(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	res := mustImport(t, svc, geotest.Load(t, "ne_50m_countries.geojson"))
	if res.Imported != 241 || res.Rejected.Count != 0 {
		t.Fatalf("import: imported %d, rejected %v; want 241 and none", res.Imported, res.Rejected)
	}
	pt := func(lng, lat float64) *geo.Point { return &geo.Point{Lat: lat, Lng: lng} }
	tests := []struct {
		name   string
		filter geo.Filter
		want   []string
	}{
		{"Paris is in France", geo.Filter{Point: pt(2.35, 48.85)}, []string{"France"}},
		{"Mexico City is in Mexico", geo.Filter{Point: pt(-99.13, 19.43)}, []string{"Mexico"}},
		{"Tokyo is in Japan", geo.Filter{Point: pt(139.69, 35.69)}, []string{"Japan"}},
		{"mid-Atlantic is in nothing", geo.Filter{Point: pt(-30, 30)}, []string{}},
		{"name substring", geo.Filter{Query: "fran"}, []string{"France", "Fr. S. Antarctic Lands"}[:1]},
		{"name is case-insensitive", geo.Filter{Query: "FRANCE"}, []string{"France"}},
		{"point and name", geo.Filter{Query: "fra", Point: pt(2.35, 48.85)}, []string{"France"}},
		{"point and other name", geo.Filter{Query: "germ", Point: pt(2.35, 48.85)}, []string{}},
		{"non-ASCII name, other case", geo.Filter{Query: "CÔTE"}, []string{"Côte d'Ivoire"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := svc.Search(context.Background(), geo.Query{Filter: tt.filter, Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, names(page.Things)); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if page.Next != nil {
				t.Errorf("next cursor %v on a single page", page.Next)
			}
		})
	}
}

func TestSearchReturnsBoundingBoxAndGeometryOnRequest(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	mustImport(t, svc, []geo.Feature{square("Box", 1, 2, 3, 4)})
	q := geo.Query{Filter: geo.Filter{Query: "box"}, Limit: 10}
	page, err := svc.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	got := page.Things[0]
	if diff := cmp.Diff(geo.BBox{MinLng: 1, MinLat: 2, MaxLng: 3, MaxLat: 4}, got.BBox); diff != "" {
		t.Errorf("bbox (-want +got):\n%s", diff)
	}
	if got.GeometryGeoJSON != "" {
		t.Errorf("geometry returned without being asked: %s", got.GeometryGeoJSON)
	}
	q.IncludeGeometry = true
	page, err = svc.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"MultiPolygon","coordinates":[[[[1,2],[3,2],[3,4],[1,4],[1,2]]]]}`
	if page.Things[0].GeometryGeoJSON != want {
		t.Errorf("geometry = %s, want %s", page.Things[0].GeometryGeoJSON, want)
	}
}

// walk pages through every match of f and returns the ids in page order.
func walk(t *testing.T, svc *postgis.SearchService, f geo.Filter, size int) []int64 {
	t.Helper()
	var ids []int64
	q := geo.Query{Filter: f, Limit: size}
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		page, err := svc.Search(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Things) > size {
			t.Fatalf("page of %d things, limit %d", len(page.Things), size)
		}
		for _, th := range page.Things {
			ids = append(ids, th.ID)
		}
		if page.Next == nil {
			return ids
		}
		q.After = page.Next
	}
}

func TestPagingSeesEveryMatchOnce(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	// 40 overlapping squares around (0, 0) with repeated names, so that the
	// order needs the id tie-breaker, plus 10 elsewhere.
	var fs []geo.Feature
	for i := range 40 {
		d := 1 + float64(i%7)
		fs = append(fs, square(fmt.Sprintf("cell %c", 'a'+i%5), -d, -d, d, d))
	}
	for i := range 10 {
		fs = append(fs, square(fmt.Sprintf("cell far %d", i), 50, 50, 51, 51))
	}
	mustImport(t, svc, fs)

	for _, f := range []geo.Filter{
		{Point: &geo.Point{}},
		{Query: "cell"},
		{Query: "CELL", Point: &geo.Point{Lat: 0.5, Lng: 0.5}},
	} {
		all := walk(t, svc, f, 1000)
		for _, size := range []int{1, 3, 7, 40} {
			got := walk(t, svc, f, size)
			if diff := cmp.Diff(all, got); diff != "" {
				t.Errorf("filter %+v page size %d: ids (-one page +paged):\n%s", f, size, diff)
			}
		}
		seen := map[int64]bool{}
		for _, id := range all {
			if seen[id] {
				t.Errorf("filter %+v: id %d seen twice", f, id)
			}
			seen[id] = true
		}
		want := 50
		if f.Point != nil {
			want = 40
		}
		if len(all) != want {
			t.Errorf("filter %+v: %d matches, want %d", f, len(all), want)
		}
	}
}

// TestPartsMatchWholeGeometry checks the subdivided point query against
// ST_Contains on whole geometries, on the 1:10m countries, for random points
// over the globe and points close to coastlines and borders.
func TestPartsMatchWholeGeometry(t *testing.T) {
	t.Parallel()
	svc, pool, raws, res := detailedCountries(t)
	// Vatican's outline in this data set collapsed to a line when it was
	// quantized to TopoJSON: it has no area, and is rejected, not dropped.
	wantRejected := []geo.Problem{{Index: 166, Name: "Vatican",
		Reason: "geometry has no area: its rings collapse to lines or points, even after repair"}}
	if res.Imported != 254 || !cmp.Equal(res.Rejected.Listed, wantRejected) || res.Rejected.Count != 1 {
		t.Fatalf("import: imported %d, rejected %v; want 254 and %v", res.Imported, res.Rejected.Listed, wantRejected)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	var pts []geo.Point
	for range 3000 {
		pts = append(pts, geo.Point{Lat: rng.Float64()*180 - 90, Lng: rng.Float64()*360 - 180})
	}
	// Near boundaries: a random vertex, nudged by up to ~100 m, and some
	// vertices exactly, which lie on the boundary and are not contained.
	features := make([]geo.Feature, len(raws))
	for i, rf := range raws {
		f, err := geo.DecodeFeature(rf, geo.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		features[i] = f
	}
	for i := range 2000 {
		f := features[rng.IntN(len(features))]
		flat := f.Geometry.FlatCoords()
		v := rng.IntN(len(flat) / 2)
		p := geo.Point{Lng: geotest.WrapLng(flat[2*v]), Lat: flat[2*v+1]}
		if i%10 != 0 {
			p.Lng = max(-180, min(180, p.Lng+(rng.Float64()-0.5)*0.002))
			p.Lat = max(-90, min(90, p.Lat+(rng.Float64()-0.5)*0.002))
		}
		pts = append(pts, p)
	}

	lnglats := make([][2]float64, len(pts))
	for i, p := range pts {
		lnglats[i] = [2]float64{p.Lng, p.Lat}
	}
	want := postgistest.Contains(t, pool, geo.DefaultCollection, lnglats)

	inside := 0
	for i, p := range pts {
		page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Point: &p}, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, th := range page.Things {
			got = append(got, th.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want[i]) {
			t.Errorf("point %v: parts give %v, whole geometry gives %v", p, got, want[i])
		}
		if len(got) > 0 {
			inside++
		}
	}
	t.Logf("%d points, %d inside some country", len(pts), inside)
	if inside < 1000 {
		t.Errorf("only %d points inside a country: the comparison proves little", inside)
	}
}

func TestImportRepairsAndRejectsPerFeature(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	bowtie := geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{{{{0, 0}, {2, 2}, {2, 0}, {0, 2}, {0, 0}}}})
	flat := geom.NewMultiPolygon(geom.XY).MustSetCoords([][][]geom.Coord{{{{0, 0}, {1, 1}, {2, 2}, {0, 0}}}})
	fs := []geo.Feature{
		{Index: 0, Name: "Good", Geometry: square("", 0, 0, 1, 1).Geometry},
		{Index: 1, Name: "Bowtie", Geometry: bowtie},
		{Index: 2, Name: "Flat", Geometry: flat},
		{Index: 3, Name: "Keyed", Key: "k1", Geometry: square("", 5, 5, 6, 6).Geometry},
		{Index: 4, Name: "Keyed again", Key: "k1", Geometry: square("", 7, 7, 8, 8).Geometry},
		{Index: 5, Name: "Decoder repaired", Geometry: square("", 3, 3, 4, 4).Geometry, Repairs: []string{"closed ring 0 of polygon 0"}},
	}
	res := mustImport(t, svc, fs)
	want := geo.ImportResult{
		Collection: "default",
		Imported:   4,
		Repaired:   2,
		Rejected: geo.Problems{Count: 2, Listed: []geo.Problem{
			{Index: 2, Name: "Flat", Reason: "geometry has no area: its rings collapse to lines or points, even after repair"},
			{Index: 4, Name: "Keyed again", Reason: `key "k1" is already used by feature 3 of this import`},
		}},
		Repairs: geo.Problems{Count: 2, Listed: []geo.Problem{
			{Index: 1, Name: "Bowtie", Reason: "made valid with ST_MakeValid (self-intersections or overlapping rings)"},
			{Index: 5, Name: "Decoder repaired", Reason: "closed ring 0 of polygon 0"},
		}},
	}
	if diff := cmp.Diff(want, res, cmpopts.IgnoreUnexported(geo.Problems{})); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	var valid, total, withoutParts int
	err := pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE ST_IsValid(geom)), count(*),
		count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM thing_part p WHERE p.thing_id = thing.id)) FROM thing`).Scan(&valid, &total, &withoutParts)
	if err != nil {
		t.Fatal(err)
	}
	if valid != 4 || total != 4 || withoutParts != 0 {
		t.Errorf("stored %d things, %d valid, %d without parts; want 4, 4, 0", total, valid, withoutParts)
	}
	// The repaired bowtie is two triangles meeting at (1, 1).
	page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: 0.9, Lng: 0.5}}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Bowtie", "Good"}, names(page.Things)); diff != "" {
		t.Errorf("after repair (-want +got):\n%s", diff)
	}
}

func TestImportByKeyIsIdempotent(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	fs := []geo.Feature{square("A", 0, 0, 1, 1), square("B", 2, 2, 3, 3)}
	fs[0].Key, fs[1].Key = "a", "b"
	mustImport(t, svc, fs)
	fs[0].Geometry = square("", 10, 10, 11, 11).Geometry
	fs[0].Name = "A moved"
	mustImport(t, svc, fs)
	st, err := svc.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Things != 2 {
		t.Errorf("%d things after importing the same keys twice, want 2", st.Things)
	}
	page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Point: &geo.Point{Lat: 10.5, Lng: 10.5}}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A moved"}, names(page.Things)); diff != "" {
		t.Errorf("replaced thing (-want +got):\n%s", diff)
	}
	var stale int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM thing_part p JOIN thing t ON t.id = p.thing_id WHERE NOT ST_Within(p.geom, t.geom)`).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d parts outside their thing after replacement", stale)
	}
}

func TestImportIsAllOrNothing(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	boom := errors.New("client went away")
	var fs []geo.Feature
	for i := range 450 { // more than two batches
		f := square(fmt.Sprintf("f%d", i), 0, 0, 1, 1)
		f.Index = i
		fs = append(fs, f)
	}
	_, err := svc.Import(context.Background(), geo.ImportOptions{}, &geotest.Source{Features: fs, Err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("import error = %v, want %v", err, boom)
	}
	st, err := svc.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Things != 0 || st.Parts != 0 {
		t.Errorf("after a failed import: %d things, %d parts; want none", st.Things, st.Parts)
	}
}

func TestQueryCharactersAreLiteral(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	hostile := []string{"100% pure", "under_score", `back\slash`, "O'Brien'); DROP TABLE thing; --", "plain"}
	var fs []geo.Feature
	for i, n := range hostile {
		fs = append(fs, square(n, float64(i), 0, float64(i)+1, 1))
	}
	mustImport(t, svc, fs)
	tests := []struct {
		query string
		want  []string
	}{
		{"%", []string{"100% pure"}},
		{"_", []string{"under_score"}},
		{`\`, []string{`back\slash`}},
		{"'); DROP TABLE thing; --", []string{"O'Brien'); DROP TABLE thing; --"}},
		{"$1", []string{}},
	}
	for _, tt := range tests {
		page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Query: tt.query}, Limit: 10})
		if err != nil {
			t.Fatalf("query %q: %v", tt.query, err)
		}
		if diff := cmp.Diff(tt.want, names(page.Things)); diff != "" {
			t.Errorf("query %q (-want +got):\n%s", tt.query, diff)
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM thing").Scan(&n); err != nil || n != len(hostile) {
		t.Errorf("things after hostile queries: %d (%v), want %d", n, err, len(hostile))
	}
}

func TestSearchRejectsInvalidQueries(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	for name, q := range map[string]geo.Query{
		"point and bbox":   {Filter: geo.Filter{Point: &geo.Point{}, BBox: &geo.BBox{}}, Limit: 10},
		"bbox upside down": {Filter: geo.Filter{BBox: &geo.BBox{MinLat: 1, MaxLat: 0}}, Limit: 10},
		"zero limit":       {Filter: geo.Filter{Query: "x"}},
		"latitude out":     {Filter: geo.Filter{Point: &geo.Point{Lat: 91}}, Limit: 10},
		"query too long":   {Filter: geo.Filter{Query: string(make([]byte, geo.MaxQueryLength+1))}, Limit: 10},
		"invalid UTF-8":    {Filter: geo.Filter{Query: "\xff"}, Limit: 10},
		"longitude minus":  {Filter: geo.Filter{Point: &geo.Point{Lng: -180.5}}, Limit: 10},
	} {
		if _, err := svc.Search(context.Background(), q); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("%s: error %v, want code invalid", name, err)
		}
	}
}

func TestStatementTimeoutChangesWhileRunning(t *testing.T) {
	t.Parallel()
	st := postgis.NewStatementTimeout(10 * time.Second)
	pool, err := postgis.Open(context.Background(), postgis.Config{URL: cluster.NewDatabase(t), MaxWriteConns: 2}, "postgis-test", st)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	show := func() string {
		var v string
		if err := pool.QueryRow(context.Background(), "SHOW statement_timeout").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := show(); got != "10s" {
		t.Errorf("statement_timeout %s, want 10s", got)
	}
	st.Set(50 * time.Millisecond)
	if got := show(); got != "50ms" {
		t.Errorf("after Set: statement_timeout %s, want 50ms", got)
	}
	if _, err := pool.Exec(context.Background(), "SELECT pg_sleep(1)"); err == nil {
		t.Fatal("a 1s statement survived a 50ms statement timeout")
	}
}

// TestNoJITUnlessTheURLAsksForIt: the service's connections run with jit
// off (a Locate of 5,000 points took 568 ms with JIT on a fresh
// connection, 75 ms without) even where the database's default is on, as
// PostgreSQL's is, and a URL's jit=on still turns it on.
func TestNoJITUnlessTheURLAsksForIt(t *testing.T) {
	t.Parallel()
	url := cluster.NewDatabase(t)
	// The test cluster runs with jit off (postgistest): this database's
	// default is on, as a deployed server's would be.
	admin, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.Exec(context.Background(), "DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET jit = on', current_database()); END$$")
	admin.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ url, want string }{{url, "off"}, {url + "&jit=on", "on"}} {
		pool, err := postgis.Open(context.Background(), postgis.Config{URL: c.url, MaxWriteConns: 2}, "postgis-test", postgis.NewStatementTimeout(0))
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := pool.QueryRow(context.Background(), "SHOW jit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		pool.Close()
		if got != c.want {
			t.Errorf("%s: jit %s, want %s", c.url, got, c.want)
		}
	}
}

func TestSearchByBBoxAndEverything(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	mustImport(t, svc, []geo.Feature{
		square("west of the antimeridian", 170, -10, 179, 10),
		square("east of the antimeridian", -179, -10, -170, 10),
		square("greenwich", -1, 50, 1, 52),
		square("far north", -1, 80, 1, 85),
	})
	tests := []struct {
		name string
		box  *geo.BBox
		want []string
	}{
		{"a collection without a box", nil, []string{"east of the antimeridian", "far north", "greenwich", "west of the antimeridian"}},
		{"the whole world", &geo.BBox{MinLng: -180, MinLat: -90, MaxLng: 180, MaxLat: 90}, []string{"east of the antimeridian", "far north", "greenwich", "west of the antimeridian"}},
		{"around greenwich", &geo.BBox{MinLng: -0.5, MinLat: 51, MaxLng: 0.5, MaxLat: 51.5}, []string{"greenwich"}},
		{"touching an edge", &geo.BBox{MinLng: 1, MinLat: 52, MaxLng: 2, MaxLat: 53}, []string{"greenwich"}},
		{"across the antimeridian", &geo.BBox{MinLng: 175, MinLat: 0, MaxLng: -175, MaxLat: 1}, []string{"east of the antimeridian", "west of the antimeridian"}},
		{"across, reaching only the western square", &geo.BBox{MinLng: 175, MinLat: 0, MaxLng: -179.5, MaxLat: 1}, []string{"west of the antimeridian"}},
		{"a gap", &geo.BBox{MinLng: 179.5, MinLat: 0, MaxLng: -179.5, MaxLat: 1}, []string{}},
		{"the sea", &geo.BBox{MinLng: -40, MinLat: 0, MaxLng: -30, MaxLat: 10}, []string{}},
	}
	for _, tt := range tests {
		var got []string
		q := geo.Query{Filter: geo.Filter{BBox: tt.box, Collections: []string{geo.DefaultCollection}}, Limit: 1}
		for {
			page, err := svc.Search(context.Background(), q)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			got = append(got, names(page.Things)...)
			if page.Next == nil {
				break
			}
			q.After = page.Next
		}
		if diff := cmp.Diff(tt.want, append([]string{}, got...)); diff != "" {
			t.Errorf("%s, one per page (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestGetByID(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	mustImport(t, svc, []geo.Feature{square("greenwich", -1, 50, 1, 52)})
	page, err := svc.Search(context.Background(), geo.Query{Filter: geo.Filter{Query: "green"}, Limit: 1})
	if err != nil || len(page.Things) != 1 {
		t.Fatalf("search: %v, %v", page, err)
	}
	id := page.Things[0].ID
	got, err := svc.Get(context.Background(), geo.ThingRef{ID: id}, true, geo.Output{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "greenwich" || got.GeometryGeoJSON == "" || got.BBox.MaxLat != 52 {
		t.Errorf("Get(%d) = %+v", id, got)
	}
	if got, err := svc.Get(context.Background(), geo.ThingRef{ID: id}, false, geo.Output{}); err != nil || got.GeometryGeoJSON != "" {
		t.Errorf("Get without geometry = %+v, %v", got, err)
	}
	if _, err := svc.Get(context.Background(), geo.ThingRef{ID: id + 1000}, false, geo.Output{}); geo.ErrorCode(err) != geo.NotFound {
		t.Errorf("Get(unknown) = %v, want NotFound", err)
	}
}
