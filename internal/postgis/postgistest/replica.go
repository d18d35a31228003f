package postgistest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// replicationSlot is the physical slot the standby streams from: the
// primary keeps the WAL the standby has not received yet, however long
// the standby is stopped, so that a restarted standby always catches up
// by streaming (no WAL archive needed).
const replicationSlot = "standby1"

// Replicated is a primary and a hot standby streaming from it, each a
// Cluster of its own. Stop, Start and Promote the Standby to inject its
// faults; create databases with NewDatabase (on the primary).
type Replicated struct {
	Primary *Cluster
	Standby *Cluster
}

// StartReplicated starts a primary with the migrated template database (see
// Start) and a hot standby copied from it with pg_basebackup -R, streaming
// through a replication slot, each on a free loopback port. Close it after
// use.
func StartReplicated(ctx context.Context) (*Replicated, error) {
	primary, err := Start(ctx)
	if err != nil {
		return nil, err
	}
	standby, err := primary.basebackup(ctx)
	if err != nil {
		_ = primary.Close()
		return nil, err
	}
	return &Replicated{Primary: primary, Standby: standby}, nil
}

// StartReplicatedT is StartReplicated for one test: it fails t when the
// servers cannot start and closes them when t ends.
func StartReplicatedT(t testing.TB) *Replicated {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := StartReplicated(ctx)
	if err != nil {
		t.Fatalf("postgistest: cannot start a primary and a standby: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("postgistest: stop primary and standby: %v", err)
		}
	})
	return r
}

// basebackup copies c into a new cluster that streams from c through
// replicationSlot, and starts it.
func (c *Cluster) basebackup(ctx context.Context) (*Cluster, error) {
	s := &Cluster{bindir: c.bindir, cred: c.cred}
	var err error
	if s.dir, err = os.MkdirTemp("", "postgistest-standby-"); err != nil {
		return nil, err
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			_ = os.RemoveAll(s.dir)
			return nil, err
		}
	}
	// -R writes standby.signal and primary_conninfo with the slot's name,
	// -C -S creates the slot, -X stream copies the backup's WAL beside it.
	cmd := s.command(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres",
		"-D", s.dataDir(), "-R", "-X", "stream", "-C", "-S", replicationSlot, "-c", "fast", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	if err := s.start(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops both servers and removes their files.
func (r *Replicated) Close() error {
	return errors.Join(r.Standby.Close(), r.Primary.Close())
}

// NewDatabase creates a migrated, empty database on the primary for t,
// dropped when t ends, waits until the standby has it, and returns its URL
// on the primary and on the standby.
func (r *Replicated) NewDatabase(t testing.TB) (primaryURL, standbyURL string) {
	t.Helper()
	primaryURL = r.Primary.NewDatabase(t)
	u, err := url.Parse(primaryURL)
	if err != nil {
		t.Fatalf("postgistest: %v", err)
	}
	standbyURL = r.Standby.URL(strings.TrimPrefix(u.Path, "/"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.WaitReplayed(ctx); err != nil {
		t.Fatalf("postgistest: the standby does not replay the new database: %v", err)
	}
	return primaryURL, standbyURL
}

// WaitReplayed waits until the standby has replayed every transaction the
// primary committed before the call.
func (r *Replicated) WaitReplayed(ctx context.Context) error {
	lsn, err := r.Primary.FlushedPosition(ctx)
	if err != nil {
		return err
	}
	for {
		conn, err := pgx.Connect(ctx, r.Standby.URL("postgres"))
		if err == nil {
			var done bool
			err = conn.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", lsn).Scan(&done)
			_ = conn.Close(ctx)
			if err == nil && done {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("standby has not replayed %s: %w (last error: %v)", lsn, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// FlushedPosition returns the WAL position (as text, e.g. 0/3000148) up to
// which c has flushed every transaction committed before the call: it
// commits one more transaction synchronously, which flushes all before
// it (the test servers run with synchronous_commit off).
func (c *Cluster) FlushedPosition(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		return "", err
	}
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&lsn); err != nil {
		return "", err
	}
	return lsn, nil
}

// Promote makes the standby a primary of its own (pg_promote, waiting for
// the end of recovery); the old primary is then no longer its source.
func (r *Replicated) Promote(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, r.Standby.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("promote the standby: %w", err)
	}
	if !ok {
		return errors.New("promote the standby: not promoted within 60 s")
	}
	return nil
}

// PauseReplay stops the standby applying WAL (it keeps receiving it), so
// that it falls behind the primary as the primary writes; ResumeReplay
// lets it catch up.
func (r *Replicated) PauseReplay(ctx context.Context) error {
	return r.standbyExec(ctx, "SELECT pg_wal_replay_pause()")
}

// ResumeReplay undoes PauseReplay.
func (r *Replicated) ResumeReplay(ctx context.Context) error {
	return r.standbyExec(ctx, "SELECT pg_wal_replay_resume()")
}

func (r *Replicated) standbyExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, r.Standby.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
