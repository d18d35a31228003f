package postgis_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/postgis"
)

// TestRareNameSearchExaminesFewRows checks that a name search for a rare
// pattern scoped to a large collection reads the few rows the trigram index
// names, not the collection in name order, even after the searches before
// it on the same connection would have made PostgreSQL switch a prepared
// statement to its generic plan. That plan, which cannot know the pattern,
// walks (collection, name, id) expecting a LIMIT's worth of matches soon,
// and for a rare pattern reads every row of the collection
// (docs/BENCHMARKS.md, "Name search at scale"). It counts the rows the
// table's statistics say were read, never time.
func TestRareNameSearchExaminesFewRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgis.Open(ctx, postgis.Config{URL: cluster.NewDatabase(t), MaxConns: 1, MaxWriteConns: 1}, "postgis-test", postgis.NewStatementTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	svc := postgis.NewSearchService(pool)
	const cells = 30_000
	if _, err := pool.Exec(ctx, "INSERT INTO collection (name) VALUES ('other')"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO thing (collection, name, geom)
SELECT CASE WHEN i <= 300 THEN 'other' ELSE 'default' END, 'cell ' || i,
       ST_Multi(ST_MakeEnvelope(i % 300, i / 300 % 80, i % 300 + 1, i / 300 % 80 + 1, 4326))
FROM generate_series(1, $1::int) i`, cells); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE thing"); err != nil {
		t.Fatal(err)
	}
	search := func(query string) {
		t.Helper()
		if _, err := svc.Search(ctx, geo.Query{Filter: geo.Filter{Query: query, Collections: []string{"default"}}, Limit: 10}); err != nil {
			t.Fatalf("search %q: %v", query, err)
		}
	}
	// One-letter patterns that no trigram narrows: their own plans are
	// full scans, costlier than the generic plan, which PostgreSQL then
	// prefers for this statement from the sixth execution on.
	for range 8 {
		search("q")
	}
	before := rowsRead(t, pool)
	search("zzzq")
	if read := rowsRead(t, pool) - before; read > 100 {
		t.Errorf("a name search matching nothing read %d rows of %d; want the trigram index to find none", read, cells)
	}
}

// rowsRead is how many rows of thing have been read by sequential and index
// scans, as the statistics say once this connection's are flushed.
func rowsRead(t *testing.T, pool *pgxpool.Pool) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The backend flushes its counters when it next goes idle.
	if _, err := conn.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
FROM pg_stat_user_tables WHERE relname = 'thing'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
