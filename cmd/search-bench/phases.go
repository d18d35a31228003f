package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// gridPhase imports the synthetic grid into a database of its own, served
// by a server of its own, and runs alternating gRPC and direct rounds on it.
func (b *bench) gridPhase(ctx context.Context, r *report, db *database, dir string) error {
	url, err := db.create(ctx, "bench_grid")
	if err != nil {
		return err
	}
	b.progress("starting search-server on the grid database")
	p, err := startServer(ctx, b.o.serverBin, dir, "grid", withEnv(map[string]string{"DATABASE_URL": url}, b.o.serverEnv))
	if err != nil {
		return err
	}
	defer p.stop()
	at := endpoint{conn: p.conn, proc: p}
	pool, err := b.openPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	ds := gridCells(b.o.gridCells)
	b.progress("importing %s: %d features, %d vertices", ds.name, len(ds.requests), ds.vertices)
	imp, err := b.importAndAnalyze(ctx, at, ds, pool)
	if err != nil {
		return err
	}
	imp.TargetSeconds = gridImportTarget
	r.Imports = append(r.Imports, imp)
	n := min(b.o.verify, 200)
	if _, err := verifyPoints(ctx, at.conn, pool, b.points[:n], true); err != nil {
		return fmt.Errorf("answers differ on the grid:\n%w", err)
	}
	r.Verified.GridPoints = n
	kinds := []roundKind{
		{kind: kindGridGRPC, at: at, op: same(grpcPoint(at.conn, b.points))},
		{kind: kindGridDirect, at: endpoint{}, op: same(directPoint(pool, b.points))},
	}
	if err := b.alternate(ctx, r, kinds); err != nil {
		return err
	}
	return b.collectionsAndMemory(ctx, r, at, pool)
}

// collectionsPhase imports the countries into collection "countries" beside
// the grid (which is in "default") and measures point searches over both
// collections against searches scoped to the countries, through gRPC and
// directly, in alternating rounds; it records both plans for Paris.
func (b *bench) collectionsPhase(ctx context.Context, r *report, at endpoint, pool *pgxpool.Pool) error {
	ds, err := loadGeoJSON(b.o.countries)
	if err != nil {
		return err
	}
	ds.collection = "countries"
	ds.name += " beside the grid"
	b.progress("importing %s into collection countries", ds.name)
	imp, err := b.importAndAnalyze(ctx, at, ds, pool)
	if err != nil {
		return err
	}
	imp.TargetSeconds = countriesImportTarget
	r.Imports = append(r.Imports, imp)
	n := min(b.o.verify, 200)
	if _, err := verifyPoints(ctx, at.conn, pool, b.points[:n], true, "countries"); err != nil {
		return fmt.Errorf("scoped answers differ:\n%w", err)
	}
	r.Verified.ScopedPoints = n
	paris := geo.Point{Lat: 48.85, Lng: 2.35}
	for _, pq := range []struct {
		name string
		q    geo.Query
	}{
		{"point search over every collection (countries beside the grid), Paris", pointQuery(paris)},
		{"point search scoped to collection countries, Paris", pointQuery(paris, "countries")},
		{"property filter name IN (France, Spain), every collection", geo.Query{Limit: defaultPageSize, Filter: geo.Filter{
			Properties: []geo.PropertyFilter{{Key: "name", Values: []any{"France", "Spain"}}}}}},
	} {
		sql, args := postgis.SearchStatement(pq.q)
		text, err := explain(ctx, pool, sql, args)
		if err != nil {
			return err
		}
		r.Plans = append(r.Plans, plan{Name: pq.name, Text: text})
	}
	kinds := []roundKind{
		{kind: kindMixedGRPC, at: at, op: same(grpcPoint(at.conn, b.points))},
		{kind: kindScopedGRPC, at: at, op: same(grpcPoint(at.conn, b.points, "countries"))},
		{kind: kindMixedDirect, at: endpoint{}, op: same(directPoint(pool, b.points))},
		{kind: kindScopedDirect, at: endpoint{}, op: same(directPoint(pool, b.points, "countries"))},
	}
	if err := b.alternate(ctx, r, kinds); err != nil {
		return err
	}
	return nil
}

// explain returns EXPLAIN (ANALYZE, BUFFERS) of sql with args, run twice so
// that the second, reported, run reads warm pages.
func explain(ctx context.Context, pool *pgxpool.Pool, sql string, args []any) (string, error) {
	var lines []string
	for range 2 {
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
		if err != nil {
			return "", fmt.Errorf("explain: %w", err)
		}
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", fmt.Errorf("explain: %w", err)
		}
	}
	return strings.Join(lines, "\n"), nil
}

func (b *bench) describeDatabase(ctx context.Context, pool *pgxpool.Pool, m *machine) error {
	err := pool.QueryRow(ctx, "SELECT current_setting('server_version'), postgis_lib_version()").Scan(&m.Postgres, &m.PostGIS)
	if err != nil {
		return fmt.Errorf("database version: %w", err)
	}
	m.Postgres, m.PostGIS = "PostgreSQL "+m.Postgres, "PostGIS "+m.PostGIS
	return nil
}

func writeJSON(w io.Writer, r *report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// subdivideCurve rebuilds thing_part with each of o.subdivide as
// ST_Subdivide's vertex limit and runs direct rounds of the point query on
// each, the sizes alternating within each round. It leaves the parts at
// the last size; the database is thrown away after the run.
func (b *bench) subdivideCurve(ctx context.Context, r *report, pool *pgxpool.Pool) error {
	sizes := b.o.subdivide
	land, err := b.landPoints(ctx, pool, 10_000)
	if err != nil {
		return err
	}
	res := make([]subdivideResult, len(sizes))
	dbs, landDBs := make([][]float64, len(sizes)), make([][]float64, len(sizes))
	p50s, p99s, landP99s := make([][]float64, len(sizes)), make([][]float64, len(sizes)), make([][]float64, len(sizes))
	for round := 1; round <= b.o.rounds; round++ {
		for i, n := range sizes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			parts, err := b.rebuildParts(ctx, pool, n)
			if err != nil {
				return err
			}
			if round == 1 {
				if _, err := verifyPoints(ctx, nil, pool, b.points[:min(b.o.verify, 300)], true); err != nil {
					return fmt.Errorf("parts of %d vertices:\n%w", n, err)
				}
			}
			runLoad(ctx, b.o.concurrency, b.o.warmup, same(directPoint(pool, b.points)))
			rr := b.round(ctx, round, fmt.Sprintf("parts %d", n), endpoint{}, same(directPoint(pool, b.points)))
			b.progress("round %d subdivide %4d: %6d parts %7.0f req/s  p50 %6.2f ms  p99 %7.2f ms", round, n, parts, rr.RPS, rr.P50Ms, rr.P99Ms)
			lr := b.round(ctx, round, fmt.Sprintf("land parts %d", n), endpoint{}, same(directPoint(pool, land)))
			b.progress("round %d subdivide %4d: %6d parts %7.0f req/s  p99 %7.2f ms on land points", round, n, parts, lr.RPS, lr.P99Ms)
			res[i].MaxVertices, res[i].Parts = n, parts
			res[i].PerRound = append(res[i].PerRound, rr.RPS)
			res[i].LandPerRound = append(res[i].LandPerRound, lr.RPS)
			dbs[i], p50s[i], p99s[i] = append(dbs[i], rr.DBUsReq), append(p50s[i], rr.P50Ms), append(p99s[i], rr.P99Ms)
			landDBs[i], landP99s[i] = append(landDBs[i], lr.DBUsReq), append(landP99s[i], lr.P99Ms)
		}
	}
	for i := range res {
		res[i].RPS, res[i].DBUsReq = median(res[i].PerRound), median(dbs[i])
		res[i].P50Ms, res[i].P99Ms = median(p50s[i]), median(p99s[i])
		res[i].LandRPS, res[i].LandDBUsReq, res[i].LandP99Ms = median(res[i].LandPerRound), median(landDBs[i]), median(landP99s[i])
	}
	r.Subdivide = res
	return nil
}

// landPoints returns up to n of the random points, in order, that are
// inside some thing.
func (b *bench) landPoints(ctx context.Context, pool *pgxpool.Pool, n int) ([]geo.Point, error) {
	var land []geo.Point
	for _, p := range b.points {
		sql, args := postgis.SearchStatement(pointQuery(p))
		ids, err := queryIDs(ctx, pool, sql, args)
		if err != nil {
			return nil, fmt.Errorf("find land points: %w", err)
		}
		if len(ids) > 0 {
			if land = append(land, p); len(land) == n {
				break
			}
		}
	}
	if len(land) == 0 {
		return nil, fmt.Errorf("none of the %d random points is inside a thing", len(b.points))
	}
	return land, nil
}

// rebuildParts recuts every thing's parts at n vertices, as the
// thing_part_sync trigger does at 128.
func (b *bench) rebuildParts(ctx context.Context, pool *pgxpool.Pool, n int) (int64, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	if _, err := tx.Exec(ctx, "TRUNCATE thing_part"); err != nil {
		return 0, fmt.Errorf("rebuild parts: %w", err)
	}
	tag, err := tx.Exec(ctx, "INSERT INTO thing_part (thing_id, geom) SELECT t.id, (ST_Dump(ST_Subdivide(t.geom, $1::int))).geom FROM thing t", n)
	if err != nil {
		return 0, fmt.Errorf("rebuild parts at %d vertices: %w", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE thing_part"); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
