package postgis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// WaitForDatabase connects to url until the database answers, trying for
// at most within (0: once). A database that is still starting refuses or
// drops connections, or says so (SQLSTATE 57P03); the PostgreSQL image
// listens on TCP only after its init scripts. Those are retried, with
// backoff; any other answer (a wrong password, a missing database) is
// final at once. retrying, if not nil, is called after each failed attempt
// that will be retried, before the pause.
func WaitForDatabase(ctx context.Context, url string, within time.Duration, retrying func(attempt int, err error)) error {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return errors.New("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	ctx, cancel := context.WithTimeout(ctx, max(within, time.Nanosecond))
	defer cancel()
	pause := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := pingOnce(ctx, cc)
		if err == nil {
			return nil
		}
		if within <= 0 || !startingUp(err) {
			return fmt.Errorf("connect to the database: %w", err)
		}
		if retrying != nil {
			retrying(attempt, err)
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return fmt.Errorf("wait for the database: %w", parent)
			}
			return fmt.Errorf("the database did not accept connections within %s (%d attempts): %w", within, attempt, err)
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// pingOnce opens one connection and closes it; it gives up after 5 s, so
// that a silent network cannot use the whole wait in one attempt.
func pingOnce(ctx context.Context, cc *pgx.ConnConfig) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// startingUp reports whether err is what a database that is not up yet
// gives: no answer on the network, or a PostgreSQL error whose SQLSTATE
// says so (UnavailableCode). Classified by SQLSTATE, never by
// message.
func startingUp(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return UnavailableCode(pgErr.Code)
	}
	return true // refused, reset, timed out, or the host has no address yet
}
