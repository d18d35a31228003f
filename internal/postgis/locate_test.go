package postgis_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/geo/geotest"
)

// locateScopes are the scopes TestLocateEqualsSearch compares under; every
// point is checked under the first, every third point under the others.
// A nearest scope locates every sparse-th point only (each ranks every
// thing within its distance) and checks each of them.
var locateScopes = []struct {
	name   string
	filter geo.Filter
	limit  int
	sparse int
}{
	{"everything", geo.Filter{}, 100, 0},
	{"one collection", geo.Filter{Collections: []string{"countries"}}, 100, 0},
	{"collections and property", geo.Filter{Collections: []string{"countries", "cells"},
		Properties: []geo.PropertyFilter{{Key: "kind", Values: []any{"cell", "other"}}}}, 100, 0},
	{"name query", geo.Filter{Query: "an"}, 100, 0},
	{"limit 1", geo.Filter{}, 1, 0},
	{"nearest within 50 km", geo.Filter{MaxDistanceM: 50_000, Collections: []string{"countries"}}, 100, 25},
	{"nearest within 300 km, limit 2", geo.Filter{MaxDistanceM: 300_000, Collections: []string{"countries", "default"}}, 2, 40},
	{"nearest within 1 km, name query", geo.Filter{MaxDistanceM: 1000, Query: "a", Collections: []string{"countries", "default"}}, 100, 10},
	// The cells' 60-degree edges are segmentized into hundreds of
	// vertices: the costliest distances.
	{"nearest within 20 km, cells", geo.Filter{MaxDistanceM: 20_000, Collections: []string{"cells"}}, 100, 120},
}

// TestLocateEqualsSearch answers many thousands of points with Locate, in
// batches, and checks every point's answer against Search's first page for
// the same point and scope: a lattice every 5 degrees (whose points lie
// exactly on the cells' edges, so the boundary rule is exercised), and
// country vertices, exact (on the boundary) and nudged. (The lattice was
// every 2.5 degrees, 4 times the points, about 30 s more of make test's
// CPU; the in-memory index's exhaustive comparison with PostGIS, in make
// bench, covers millions of points.)
func TestLocateEqualsSearch(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	countries := geotest.Load(t, "ne_50m_countries.geojson")
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, countries)
	importInto(t, svc, geo.ImportOptions{Collection: "default"}, countries)
	importInto(t, svc, geo.ImportOptions{Collection: "cells"}, grid(6, map[string]any{"kind": "cell"}))

	var pts []geo.Point
	for lat := -90.0; lat <= 90; lat += 5 {
		for lng := -180.0; lng <= 180; lng += 5 {
			pts = append(pts, geo.Point{Lat: lat, Lng: lng})
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		flat := countries[rng.IntN(len(countries))].Geometry.FlatCoords()
		v := rng.IntN(len(flat) / 2)
		p := geo.Point{Lng: geotest.WrapLng(flat[2*v]), Lat: flat[2*v+1]}
		if i%4 != 0 {
			p.Lng = max(-180, min(180, p.Lng+(rng.Float64()-0.5)*0.002))
			p.Lat = max(-90, min(90, p.Lat+(rng.Float64()-0.5)*0.002))
		}
		pts = append(pts, p)
	}

	ctx := context.Background()
	all := pts
	for si, sc := range locateScopes {
		pts := all
		if sc.sparse > 0 {
			pts = nil
			for i := 0; i < len(all); i += sc.sparse {
				pts = append(pts, all[i])
			}
		}
		var got [][]geo.Thing
		for start := 0; start < len(pts); start += 500 {
			batch, err := svc.Locate(ctx, geo.LocateQuery{Filter: sc.filter, Points: pts[start:min(start+500, len(pts))], Limit: sc.limit})
			if err != nil {
				t.Fatalf("%s: locate: %v", sc.name, err)
			}
			got = append(got, batch...)
		}
		if len(got) != len(pts) {
			t.Fatalf("%s: %d answers for %d points", sc.name, len(got), len(pts))
		}
		found, compared := 0, 0
		for i, p := range pts {
			if si > 0 && sc.sparse == 0 && i%3 != 0 {
				continue
			}
			f := sc.filter
			f.Point = &p
			page, err := svc.Search(ctx, geo.Query{Filter: f, Limit: sc.limit})
			if err != nil {
				t.Fatalf("%s: search %v: %v", sc.name, p, err)
			}
			if diff := cmp.Diff(page.Things, got[i]); diff != "" {
				t.Errorf("%s: point %d %v: Locate differs from Search (-search +locate):\n%s", sc.name, i, p, diff)
			}
			compared++
			found += len(got[i])
		}
		t.Logf("%s: %d points compared, %d things found", sc.name, compared, found)
		if found < compared/10 {
			t.Errorf("%s: only %d things found for %d points: the comparison proves little", sc.name, found, compared)
		}
	}
}

func TestLocateRejectsBadBatches(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	ctx := context.Background()
	for _, q := range []geo.LocateQuery{
		{Points: []geo.Point{{Lat: math.NaN()}}, Limit: 1},
		{Points: []geo.Point{{Lat: 0, Lng: 181}}, Limit: 1},
		{Points: []geo.Point{{}}, Limit: 0},
		{Filter: geo.Filter{Collections: []string{"Bad Name"}}, Points: []geo.Point{{}}, Limit: 1},
	} {
		_, err := svc.Locate(ctx, q)
		if geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("Locate(%+v): %v, want an Invalid error", q, err)
		}
	}
	got, err := svc.Locate(ctx, geo.LocateQuery{Limit: 1})
	if err != nil || len(got) != 0 {
		t.Errorf("Locate of no points: %v, %v; want nothing", got, err)
	}
}

// TestLocateCancelStopsTheStatement cancels a large batch while its
// statement runs: Locate returns the context's error, and the database is
// left running no Locate statement.
func TestLocateCancelStopsTheStatement(t *testing.T) {
	t.Parallel()
	svc, pool := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "cells"}, grid(40, nil))
	pts := make([]geo.Point, 10000)
	for i := range pts {
		pts[i] = geo.Point{Lat: -89 + float64(i%178), Lng: -179 + float64(i%358)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once a Locate statement is seen running in the database.
		defer cancel()
		for ctx.Err() == nil {
			if runningLocates(t, pool) > 0 {
				return
			}
		}
	}()
	var err error
	for err == nil {
		_, err = svc.Locate(ctx, geo.LocateQuery{Points: pts, Limit: 100})
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Locate: %v, want context.Canceled", err)
	}
	// The server cancels the statement on its own time: at load 9, later
	// than 10,000 polls.
	eventually(t, "no Locate statement running after the cancel", func() error {
		if n := runningLocates(t, pool); n != 0 {
			return fmt.Errorf("%d still running", n)
		}
		return nil
	})
}

// runningLocates counts the Locate statements running in the database.
func runningLocates(t *testing.T, pool *pgxpool.Pool) int {
	var n int
	if err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%WITH ORDINALITY AS u(lng, lat, ord)%' AND state = 'active' AND datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Error(err)
	}
	return n
}

// TestLocateWithinABudget: with MaxBytes, Locate answers the first points
// whose answers fit (at least one) and LocateEach asks again for the
// rest; the answers, geometries included, are exactly those of one
// unbudgeted statement.
func TestLocateWithinABudget(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t)
	importInto(t, svc, geo.ImportOptions{Collection: "countries"}, geotest.Load(t, "ne_110m_countries.geojson"))
	var pts []geo.Point
	for lat := -60.0; lat <= 70; lat += 10 {
		for lng := -170.0; lng <= 170; lng += 20 {
			pts = append(pts, geo.Point{Lat: lat, Lng: lng})
		}
	}
	ctx := context.Background()
	q := geo.LocateQuery{Points: pts, Limit: 10, IncludeGeometry: true}
	whole, err := svc.Locate(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, things := range whole {
		found += len(things)
	}
	if found < 30 {
		t.Fatalf("%d things for %d points: the comparison proves little", found, len(pts))
	}

	q.MaxBytes = 20_000 // a few countries' geometries
	first, err := svc.Locate(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 || len(first) >= len(pts) {
		t.Fatalf("a budget of %d bytes answered %d of %d points; want some, not all", q.MaxBytes, len(first), len(pts))
	}
	if diff := cmp.Diff(whole[:len(first)], first); diff != "" {
		t.Errorf("the budgeted answers differ from the whole statement's (-whole +budgeted):\n%s", diff)
	}

	counting := &countingStore{SearchService: svc}
	var got [][]geo.Thing
	err = geo.LocateEach(ctx, counting, q, pts, nil, func(i int, things []geo.Thing, err error) error {
		if err != nil {
			return err
		}
		got = append(got, things)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(whole, got); diff != "" {
		t.Errorf("LocateEach within the budget differs from one statement (-whole +each):\n%s", diff)
	}
	t.Logf("%d points, %d things: %d statements within %d bytes", len(pts), found, counting.calls, q.MaxBytes)
	if counting.calls < 3 {
		t.Errorf("%d statements: the budget was not used", counting.calls)
	}
}

type countingStore struct {
	geo.SearchService
	calls int
}

func (c *countingStore) Locate(ctx context.Context, q geo.LocateQuery) ([][]geo.Thing, error) {
	c.calls++
	return c.SearchService.Locate(ctx, q)
}

// TestCancelledContextCancelsTheStatementInTheDatabase: a statement whose
// context is cancelled stops in PostgreSQL at once, even one that would
// write nothing to its connection for a minute (pg_sleep, like a sort
// before its first row), which a closed connection alone would not stop:
// pgx closes the connection and sends PostgreSQL a cancel request.
func TestCancelledContextCancelsTheStatementInTheDatabase(t *testing.T) {
	t.Parallel()
	_, pool := newService(t)
	sleeping := func() int {
		var n int
		if err := pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60) /* cancel me */%' AND state = 'active' AND datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, "SELECT pg_sleep(60) /* cancel me */")
		done <- err
	}()
	for i := 0; sleeping() == 0; i++ {
		if i == 10000 {
			t.Fatal("the statement never showed as running")
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled statement returned no error")
	}
	// PostgreSQL ends it on its own time: count polls, not seconds.
	for range 10000 {
		if sleeping() == 0 {
			return
		}
	}
	t.Error("the cancelled statement still runs in the database")
}
