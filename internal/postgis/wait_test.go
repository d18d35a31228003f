package postgis_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/postgis"
	"github.com/geosearch/search/internal/postgis/postgistest"
)

// lateDatabase returns a server of the test's own, stopped, and the URL of
// an empty (unmigrated) database on it.
func lateDatabase(t *testing.T) (own interface{ Start(context.Context) error }, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := postgistest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE late"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(context.Background())
	c.Stop()
	return c, c.URL("late")
}

// TestWaitForDatabaseRetriesUntilItStarts starts the database only after
// the first attempt failed (inside the retry callback, so that the order
// is fixed): the wait ends with the database answering, after exactly one
// failed attempt.
func TestWaitForDatabaseRetriesUntilItStarts(t *testing.T) {
	t.Parallel()
	own, url := lateDatabase(t)
	ctx := context.Background()
	var failed int
	err := postgis.WaitForDatabase(ctx, url, 5*time.Minute, func(attempt int, err error) {
		failed++
		if attempt == 1 {
			if err := own.Start(ctx); err != nil {
				t.Errorf("start the database: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if failed != 1 {
		t.Errorf("%d failed attempts, want 1 (the one before the database started)", failed)
	}
}

// TestWaitForDatabaseDoesNotRetryAFinalAnswer: a database that answers
// "no such database" is up, so waiting longer cannot help.
func TestWaitForDatabaseDoesNotRetryAFinalAnswer(t *testing.T) {
	t.Parallel()
	var failed int
	err := postgis.WaitForDatabase(context.Background(), cluster.URL("no_such_database"), 5*time.Minute,
		func(int, error) { failed++ })
	if err == nil || failed != 0 {
		t.Errorf("missing database: error %v after %d retries, want an error and no retry", err, failed)
	}
	if err := postgis.WaitForDatabase(context.Background(), "postgres://[::1", time.Minute, nil); err == nil {
		t.Error("a malformed URL was accepted")
	}
}
