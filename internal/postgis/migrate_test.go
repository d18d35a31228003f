package postgis_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/postgis"
)

func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	t.Parallel()
	url := cluster.NewDatabase(t) // migrated from the template
	mg, err := postgis.NewMigrator(url)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	tables := func() int {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(),
			`SELECT count(*) FROM information_schema.tables WHERE table_name IN ('thing', 'thing_part')`).Scan(&n); err != nil {
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
		{"down one", func() error { return mg.Down(1) }, 3, 2},
		{"down another", func() error { return mg.Down(1) }, 2, 2},
		{"down one more", func() error { return mg.Down(1) }, 1, 1},
		{"down all", func() error { return mg.Down(0) }, 0, 0},
		{"up", mg.Up, 4, 2},
		{"up again is a no-op", mg.Up, 4, 2},
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
