package postgistest

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Contains is the point lookup's oracle: for each point (longitude,
// latitude), the ids of collection's things whose stored geometry contains
// it by ST_Contains on the whole geometry, sorted.
//
// The points go into a temporary table with a GiST index, so that the
// plan visits each thing once and probes the points in its box. The plan
// the other way round (each point joined to the things by their index)
// detoasts a large country's geometry again for every point in its box:
// for 5,000 points on the 1:10m countries it took 11-12 s, against 0.5 s.
func Contains(tb testing.TB, pool *pgxpool.Pool, collection string, pts [][2]float64) [][]int64 {
	tb.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		tb.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`DROP TABLE IF EXISTS oracle_pts`)
	exec(`CREATE TEMP TABLE oracle_pts (i int PRIMARY KEY, g geometry(Point, 4326) NOT NULL)`)
	const chunk = 100_000
	for start := 0; start < len(pts); start += chunk {
		part := pts[start:min(start+chunk, len(pts))]
		lngs, lats := make([]float64, len(part)), make([]float64, len(part))
		for i, p := range part {
			lngs[i], lats[i] = p[0], p[1]
		}
		exec(`INSERT INTO oracle_pts (i, g)
			SELECT $3::int + u.i::int - 1, ST_SetSRID(ST_MakePoint(u.lng, u.lat), 4326)
			FROM unnest($1::float8[], $2::float8[]) WITH ORDINALITY AS u(lng, lat, i)`, lngs, lats, start)
	}
	exec(`CREATE INDEX ON oracle_pts USING gist (g)`)
	exec(`ANALYZE oracle_pts`)
	rows, err := conn.Query(ctx, `
		SELECT p.i, t.id
		FROM thing t JOIN oracle_pts p ON ST_Contains(t.geom, p.g)
		WHERE t.collection = $1::text`, collection)
	if err != nil {
		tb.Fatal(err)
	}
	want := make([][]int64, len(pts))
	var i int
	var id int64
	if _, err := pgx.ForEachRow(rows, []any{&i, &id}, func() error {
		want[i] = append(want[i], id)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	exec(`DROP TABLE oracle_pts`)
	for _, w := range want {
		slices.Sort(w)
	}
	return want
}
