package postgis_test

import (
	"context"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/migrations"
)

// newMigrator returns a new database, migrated from the template, and a
// migrator on it, closed when t ends.
func newMigrator(t *testing.T) (string, *postgis.Migrator) {
	t.Helper()
	url := cluster.NewDatabase(t)
	mg, err := postgis.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mg.Close() })
	return url, mg
}

// TestNewDatabasesHoldEveryMigration checks what postgistest clones: its
// clusters start from a cached, migrated data directory (postgistest's
// cache.go), which must hold the migrations of this tree, the last one
// included, and not one left dirty.
func TestNewDatabasesHoldEveryMigration(t *testing.T) {
	t.Parallel()
	names, err := fs.Glob(migrations.FS, "*.up.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("migrations: %v %v", names, err)
	}
	slices.Sort(names)
	last, err := strconv.ParseUint(strings.SplitN(names[len(names)-1], "_", 2)[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	_, mg := newMigrator(t)
	if v, dirty, err := mg.Version(); err != nil || dirty || uint64(v) != last {
		t.Errorf("a new database is at version %d (dirty %v, %v), want %d, the last of %s", v, dirty, err, last, names[len(names)-1])
	}
}

func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	t.Parallel()
	url, mg := newMigrator(t)
	tables := func() int {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM information_schema.tables WHERE table_name IN ('thing', 'thing_part', 'thing_part_geog')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	steps := []struct {
		name    string
		run     func() error
		version uint
		tables  int
	}{
		{"down the memory index peers", func() error { return mg.Down(1) }, 10, 3},
		{"down the outbox payload", func() error { return mg.Down(1) }, 9, 3},
		{"down the outbox batches", func() error { return mg.Down(1) }, 8, 3},
		{"down the geofence", func() error { return mg.Down(1) }, 7, 3},
		{"down one", func() error { return mg.Down(1) }, 6, 2},
		{"down two", func() error { return mg.Down(1) }, 5, 2},
		{"down again", func() error { return mg.Down(1) }, 4, 2},
		{"down three", func() error { return mg.Down(1) }, 3, 2},
		{"down another", func() error { return mg.Down(1) }, 2, 2},
		{"down one more", func() error { return mg.Down(1) }, 1, 1},
		{"down all", func() error { return mg.Down(0) }, 0, 0},
		{"up", mg.Up, 11, 3},
		{"up again is a no-op", mg.Up, 11, 3},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		v, dirty, err := mg.Version()
		if err != nil || dirty || v != s.version {
			t.Errorf("%s: version %d dirty %v err %v, want %d", s.name, v, dirty, err, s.version)
		}
		if n := tables(); n != s.tables {
			t.Errorf("%s: %d tables, want %d", s.name, n, s.tables)
		}
	}
}

// TestCollectionMigrationOnPopulatedDatabase migrates a database holding
// things from before collections down and up: the things survive both ways,
// land in "default", and keep their keys and parts.
func TestCollectionMigrationOnPopulatedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, mg := newMigrator(t)
	migrateDownTo(t, mg, 4) // no collections
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO thing (key, name, geom) VALUES
		('a', 'Alpha', ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326))),
		(NULL, 'Beta', ST_Multi(ST_MakeEnvelope(2, 2, 3, 3, 4326)))`); err != nil {
		t.Fatal(err)
	}
	state := func() string {
		t.Helper()
		var s string
		if err := conn.QueryRow(ctx, `SELECT string_agg(coalesce(key, '-') || ':' || name || ':' ||
			(SELECT count(*) FROM thing_part p WHERE p.thing_id = t.id), ',' ORDER BY id) FROM thing t`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := state()
	if err := mg.Up(); err != nil {
		t.Fatalf("up on a populated database: %v", err)
	}
	if got := state(); got != before {
		t.Errorf("up changed the things: %s -> %s", before, got)
	}
	var inDefault, collections int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM thing WHERE collection = 'default'), (SELECT count(*) FROM collection)`).Scan(&inDefault, &collections); err != nil {
		t.Fatal(err)
	}
	if inDefault != 2 || collections != 1 {
		t.Errorf("after up: %d things in default, %d collections; want 2 and 1", inDefault, collections)
	}
	// Up filled in the geography pieces of the things already stored
	// (000007): each thing has pieces, and they cover exactly its shape.
	var withoutPieces, mismatched int
	if err := conn.QueryRow(ctx, `SELECT
		count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM thing_part_geog g WHERE g.thing_id = t.id)),
		count(*) FILTER (WHERE abs((SELECT sum(ST_Area(g.geog::geometry)) FROM thing_part_geog g WHERE g.thing_id = t.id) - ST_Area(t.geom)) > 1e-9)
		FROM thing t`).Scan(&withoutPieces, &mismatched); err != nil {
		t.Fatal(err)
	}
	if withoutPieces != 0 || mismatched != 0 {
		t.Errorf("after up: %d things without geography pieces, %d whose pieces' area is not theirs", withoutPieces, mismatched)
	}
	// Another collection may reuse key "a" now, which going down cannot
	// keep: it refuses, changing nothing, until one of them is gone.
	if _, err := conn.Exec(ctx, `INSERT INTO collection (name) VALUES ('other');
		INSERT INTO thing (collection, key, name, geom) VALUES ('other', 'a', 'Gamma', ST_Multi(ST_MakeEnvelope(4, 4, 5, 5, 4326)))`); err != nil {
		t.Fatal(err)
	}
	migrateDownTo(t, mg, 5) // no geography pieces, no geography index on the parts, nothing later
	if err := mg.Down(1); err == nil || !strings.Contains(err.Error(), "key a is used in more than one collection") {
		t.Fatalf("down with a key in two collections: %v, want a refusal naming the key", err)
	}
	if err := mg.Force(5); err != nil { // a failed migration marks the version dirty
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM collection WHERE name = 'other'`); err != nil {
		t.Fatal(err)
	}
	if err := mg.Down(1); err != nil {
		t.Fatalf("down on a populated database: %v", err)
	}
	if got := state(); got != before {
		t.Errorf("down changed the things: %s -> %s", before, got)
	}
}
