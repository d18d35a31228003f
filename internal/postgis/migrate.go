package postgis

import (
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/geosearch/search/migrations"
)

// Migrator applies the embedded schema migrations with golang-migrate, which
// takes an advisory lock so that concurrent runs wait for each other.
type Migrator struct {
	m *migrate.Migrate
}

// NewMigrator connects to the database at url for migrating. Close it after use.
func NewMigrator(url string) (*Migrator, error) {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	db := stdlib.OpenDB(*cc)
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect for migrations: %w", err)
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		_ = driver.Close()
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		_ = driver.Close()
		return nil, fmt.Errorf("set up migrations: %w", err)
	}
	return &Migrator{m: m}, nil
}

// Up applies every pending migration.
func (mg *Migrator) Up() error {
	if err := mg.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate up: %w", err)
	}
	return nil
}

// Down reverts the last n applied migrations, or all of them when n <= 0.
func (mg *Migrator) Down(n int) error {
	var err error
	if n <= 0 {
		err = mg.m.Down()
	} else {
		err = mg.m.Steps(-n)
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// Version returns the applied schema version (0 when none) and whether a
// failed migration left it dirty.
func (mg *Migrator) Version() (uint, bool, error) {
	v, dirty, err := mg.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read schema version: %w", err)
	}
	return v, dirty, nil
}

// Close releases the migrator's connection.
func (mg *Migrator) Close() error {
	srcErr, dbErr := mg.m.Close()
	return errors.Join(srcErr, dbErr)
}

// Force records version as applied and clean without running anything: the
// way out after a migration failed and left the version dirty, once the
// operator has made the database match version.
func (mg *Migrator) Force(version int) error {
	if err := mg.m.Force(version); err != nil {
		return fmt.Errorf("force schema version %d: %w", version, err)
	}
	return nil
}
