package postgis_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
	"github.com/geosearch/search/internal/postgis"
)

// nearestTolerance is how far a nearest search's distance may be from
// PostGIS's ST_Distance(ST_Segmentize(thing.geom, 0.1)::geography,
// point::geography) on the whole geometry, in metres plus a share of the
// distance. The parts are cut by ST_Subdivide along straight lines in
// longitude and latitude, while geography takes every edge as a geodesic:
// a cut puts a vertex on an edge's straight line, which the geodesic of the
// uncut (segmentized) edge misses by up to about a metre.
// TestNearestMatchesWholeGeometry logs the largest difference seen, and
// how far ST_Distance(thing.geom::geography, ...), unsegmentized, is.
const (
	nearestToleranceM     = 1.0
	nearestToleranceShare = 1e-6
)

func nearestTolerance(d float64) float64 { return nearestToleranceM + nearestToleranceShare*d }

// nearestPoints returns points where nearest searches are hard: anywhere,
// in the sea just off coasts (nudged from country vertices), near the
// antimeridian and near the poles.
func nearestPoints(countries []geo.Feature, n int, rng *rand.Rand) []geo.Point {
	var pts []geo.Point
	for range n {
		pts = append(pts, geo.Point{Lat: rng.Float64()*180 - 90, Lng: rng.Float64()*360 - 180})
	}
	for range 2 * n {
		flat := countries[rng.IntN(len(countries))].Geometry.FlatCoords()
		v := rng.IntN(len(flat) / 2)
		r, a := 0.01+rng.Float64()*0.5, rng.Float64()*2*math.Pi
		pts = append(pts, geo.Point{
			Lng: max(-180, min(180, geotest.WrapLng(flat[2*v])+r*math.Cos(a))),
			Lat: max(-90, min(90, flat[2*v+1]+r*math.Sin(a))),
		})
	}
	for i := range n / 2 {
		lng := 179 + rng.Float64()
		if i%2 == 1 {
			lng = -lng
		}
		pts = append(pts, geo.Point{Lat: rng.Float64()*130 - 60, Lng: lng})
	}
	for i := range n / 2 {
		lat := 80 + rng.Float64()*10
		if i%2 == 1 {
			lat = -lat
		}
		pts = append(pts, geo.Point{Lat: lat, Lng: rng.Float64()*360 - 180})
	}
	return pts
}

var nearestDistances = []float64{1_000, 30_000, 250_000, 1_000_000}

// TestNearestMatchesWholeGeometry compares nearest searches with the naive
// statement on the whole geometries (ST_Contains, else ST_Distance on
// geography) on many points of the 1:50m countries: the same things, the
// same distances within nearestTolerance (a thing within the tolerance of
// max_distance_m may be on either side), in (distance, name, id) order, and
// distance 0 exactly for the things a plain point search returns.
func TestNearestMatchesWholeGeometry(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	countries := geotest.Load(t, "ne_50m_countries.geojson")
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, countries)
	// The reference reads every thing's whole geometry: this index (not
	// the service's) keeps it from computing every distance for every
	// point.
	if _, err := pool.Exec(context.Background(), `CREATE INDEX ON thing USING gist ((ST_Segmentize(geom, 0.1)::geography))`); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(14, 8))
	pts := nearestPoints(countries, 40, rng)
	ctx := context.Background()
	worst, found, zero := 0.0, 0, 0
	literalOff, literalWorst := 0, 0.0
	for i, p := range pts {
		d := nearestDistances[i%len(nearestDistances)]
		f := geo.Filter{Point: &p, MaxDistanceM: d}
		page, err := svc.Search(ctx, geo.Query{Filter: f, Limit: 1000})
		if err != nil {
			t.Fatalf("search %v within %g m: %v", p, d, err)
		}
		want := wholeGeometryThings(t, pool, geo.Query{Filter: geo.Filter{Point: &p, MaxDistanceM: d + nearestTolerance(d)}, Limit: 1000})
		got := map[int64]float64{}
		for j, th := range page.Things {
			if th.DistanceM == nil {
				t.Fatalf("%v: thing %s has no distance", p, th.Name)
			}
			got[th.ID] = *th.DistanceM
			if j > 0 {
				prev := page.Things[j-1]
				if *prev.DistanceM > *th.DistanceM || *prev.DistanceM == *th.DistanceM && prev.Name > th.Name {
					t.Errorf("%v: %s (%g m) before %s (%g m): not in (distance, name) order", p, prev.Name, *prev.DistanceM, th.Name, *th.DistanceM)
				}
			}
		}
		for _, w := range want {
			g, ok := got[w.ID]
			wd := *w.DistanceM
			switch {
			case !ok && wd <= d-nearestTolerance(d):
				t.Errorf("%v within %g m: %s (%g m away by ST_Distance) is missing", p, d, w.Name, wd)
			case ok:
				diff := math.Abs(g - wd)
				worst = max(worst, diff)
				if diff > nearestTolerance(wd) {
					t.Errorf("%v: %s is %g m away, ST_Distance says %g m (difference %g m)", p, w.Name, g, wd, diff)
				}
				delete(got, w.ID)
			}
		}
		for id, g := range got {
			t.Errorf("%v within %g m: thing %d (%g m) found, not by ST_Distance", p, d, id, g)
		}
		contained, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &p}, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range contained.Things {
			ok := false
			for _, th := range page.Things {
				if th.ID == c.ID {
					ok = *th.DistanceM == 0
				}
			}
			if !ok {
				t.Errorf("%v: %s contains the point but is not found at distance 0", p, c.Name)
			}
			zero++
		}
		found += len(page.Things)
		for _, th := range page.Things {
			var literal float64
			if err := pool.QueryRow(ctx, `SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography) FROM thing WHERE id = $1`,
				th.ID, p.Lng, p.Lat).Scan(&literal); err != nil {
				t.Fatal(err)
			}
			if diff := math.Abs(literal - *th.DistanceM); diff > nearestTolerance(literal) {
				literalOff++
				literalWorst = max(literalWorst, diff)
			}
		}
	}
	t.Logf("%d points, %d things found, %d containing; largest difference from ST_Distance on the segmentized whole geometry: %g m", len(pts), found, zero, worst)
	t.Logf("ST_Distance(geom::geography) without segmentizing differs by more than the tolerance for %d things, by up to %g m", literalOff, literalWorst)
	if found < len(pts) {
		t.Errorf("only %d things found for %d points: the comparison proves little", found, len(pts))
	}
}

// wholeGeometryThings runs postgis.WholeGeometryStatement for q.
func wholeGeometryThings(t *testing.T, pool *pgxpool.Pool, q geo.Query) []geo.Thing {
	t.Helper()
	sql, args := postgis.WholeGeometryStatement(q)
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	things, err := pgx.CollectRows(rows, postgis.ScanThing)
	if err != nil {
		t.Fatalf("whole-geometry statement: %v", err)
	}
	return things
}

// TestGeographyPiecesFollowTheirThing checks that the thing_part_sync
// trigger keeps a thing's geography pieces (thing_part_geog, which nearest
// searches measure) in step with it: written with the thing, replaced when
// an import moves its key, gone with the collection.
func TestGeographyPiecesFollowTheirThing(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	ctx := context.Background()
	fs := []geo.Feature{geotest.Square("A", "a", nil, 0, 0, 1, 1), geotest.Square("B", "b", nil, 2, 2, 3, 3)}
	importInto(t, svc, geo.ImportOptions{Collection: "pieces"}, fs)
	fs[0] = geotest.Square("A moved", "a", nil, 10, 10, 30, 30) // 20-degree edges: segmentized to 200 pieces each
	importInto(t, svc, geo.ImportOptions{Collection: "pieces"}, fs)
	var things, without, mismatched, outside, pieces int
	if err := pool.QueryRow(ctx, `SELECT count(*),
		count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM thing_part_geog g WHERE g.thing_id = t.id)),
		count(*) FILTER (WHERE abs((SELECT sum(ST_Area(g.geog::geometry)) FROM thing_part_geog g WHERE g.thing_id = t.id) - ST_Area(t.geom)) > 1e-9),
		(SELECT count(*) FROM thing_part_geog g JOIN thing t ON t.id = g.thing_id WHERE NOT ST_CoveredBy(g.geog::geometry, ST_Expand(t.geom, 1e-9))),
		(SELECT count(*) FROM thing_part_geog)
		FROM thing t`).Scan(&things, &without, &mismatched, &outside, &pieces); err != nil {
		t.Fatal(err)
	}
	if things != 2 || without != 0 || mismatched != 0 || outside != 0 {
		t.Errorf("%d things, %d without geography pieces, %d whose pieces' area is not theirs, %d pieces outside their thing; want 2, 0, 0, 0",
			things, without, mismatched, outside)
	}
	var maxVertices int
	if err := pool.QueryRow(ctx, `SELECT max(ST_NPoints(geog::geometry)) FROM thing_part_geog`).Scan(&maxVertices); err != nil {
		t.Fatal(err)
	}
	if pieces < 3 || maxVertices > 1000 {
		t.Errorf("%d pieces, the largest of %d vertices; want the moved square cut (3 or more) into small pieces", pieces, maxVertices)
	}
	// Near the old place of A: only B. Near the new one: A moved.
	for _, c := range []struct {
		p    geo.Point
		want []string
	}{
		{geo.Point{Lng: 1.5, Lat: 1.5}, []string{"B"}},
		{geo.Point{Lng: 9.9, Lat: 20}, []string{"A moved"}},
	} {
		page, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Point: &c.p, MaxDistanceM: 100_000}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, th := range page.Things {
			got = append(got, th.Name)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("within 100 km of %v: %v, want %v", c.p, got, c.want)
		}
	}
	if _, err := svc.DeleteCollection(ctx, "pieces"); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM thing_part_geog`).Scan(&pieces); err != nil {
		t.Fatal(err)
	}
	if pieces != 0 {
		t.Errorf("%d geography pieces left after deleting the collection", pieces)
	}
}
