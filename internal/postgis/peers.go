package postgis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
)

// IndexPeers is the table of live in-memory indexes (memindex_peer,
// migration 000011) on the primary: the database side of the lease that
// makes a read without a consistency token, on any instance, see a write
// another instance returned (memindex.Peers, docs/INDEX.md, "The lease").
type IndexPeers struct {
	// short: the rows and the listener's connection, a pool of short
	// statements (imports never hold its connections, so a long import
	// does not starve a heartbeat); write: the writes' wait, on the
	// writing pool.
	short, write *pgxpool.Pool
}

// NewIndexPeers returns the table through short (the rows, the listener)
// and write (the writes' wait); both must be on the primary.
func NewIndexPeers(short, write *pgxpool.Pool) *IndexPeers {
	return &IndexPeers{short: short, write: write}
}

// ErrNoPeerTable says that the migrations have not made memindex_peer
// yet.
var ErrNoPeerTable = errors.New("no memindex_peer table (run the migrations)")

// peerChannel is the notification channel writes notify and every index
// with the lease listens on.
const peerChannel = "memindex"

const (
	peerBeatSQL = `INSERT INTO memindex_peer (id, position, heartbeat, expires)
VALUES ($1::uuid, $2::text::pg_lsn, now(), now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, heartbeat = EXCLUDED.heartbeat, expires = EXCLUDED.expires
RETURNING pg_current_wal_insert_lsn()::text`
	// peerSweepSQL removes the rows instances that died left behind, long
	// expired (they cost writers nothing, only a row each).
	peerSweepSQL = `DELETE FROM memindex_peer WHERE expires < now() - interval '1 hour'`
	peerLeaveSQL = `DELETE FROM memindex_peer WHERE id = $1::uuid`
	// peerWrittenSQL runs after a write has returned: the insert position
	// is then at or past the write's commit record, and any position past
	// it was read after the write was visible.
	peerWrittenSQL = `SELECT pg_current_wal_insert_lsn()::text,
       EXISTS (SELECT FROM memindex_peer WHERE id <> $1::uuid AND expires > now())`
	// peerNotifySQL wakes every listening index, and moves the primary's
	// flushed position past the write's before anyone is woken, so that a
	// refresh that follows reads a position past it: the transaction
	// writes WAL (a transactional logical message, which any role may
	// emit at any wal_level; a transaction that only took an id would
	// commit asynchronously, as it wrote nothing before its commit record)
	// and commits synchronously, locally.
	peerNotifySQL = `SELECT set_config('synchronous_commit', 'local', true), pg_notify('` + peerChannel + `', ''),
       pg_logical_emit_message(true, '` + peerChannel + `', '')::text`
	peerBehindSQL = `SELECT count(*) FROM memindex_peer
WHERE id <> $1::uuid AND expires > now() AND position <= $2::text::pg_lsn`
)

// Sweep deletes the rows of instances long dead.
func (p *IndexPeers) Sweep(ctx context.Context) error {
	if _, err := p.short.Exec(ctx, peerSweepSQL); err != nil {
		return fmt.Errorf("sweep expired memory index rows: %w", peerErr(err))
	}
	return nil
}

// Beat upserts id's row: its published set is at position, and its lease
// runs lease from the database's now. It returns the primary's insert
// position then.
func (p *IndexPeers) Beat(ctx context.Context, id string, position geo.Position, lease time.Duration) (geo.Position, error) {
	var primary string
	if err := p.short.QueryRow(ctx, peerBeatSQL, id, formatLSN(uint64(position)), lease.Microseconds()).Scan(&primary); err != nil {
		return 0, fmt.Errorf("memory index heartbeat: %w", peerErr(err))
	}
	lsn, err := parseLSN(primary)
	return geo.Position(lsn), err
}

// Leave deletes id's row.
func (p *IndexPeers) Leave(ctx context.Context, id string) error {
	if _, err := p.short.Exec(ctx, peerLeaveSQL, id); err != nil {
		return fmt.Errorf("remove the memory index's row: %w", peerErr(err))
	}
	return nil
}

// Written returns, after a write, the primary's insert position and
// whether any index other than id's holds a live lease.
func (p *IndexPeers) Written(ctx context.Context, id string) (geo.Position, bool, error) {
	var pos string
	var live bool
	if err := p.write.QueryRow(ctx, peerWrittenSQL, id).Scan(&pos, &live); err != nil {
		return 0, false, peerErr(err)
	}
	lsn, err := parseLSN(pos)
	return geo.Position(lsn), live, err
}

// Notify wakes every listening index, its commit flushed (peerNotifySQL).
func (p *IndexPeers) Notify(ctx context.Context) error {
	_, err := p.write.Exec(ctx, peerNotifySQL)
	return peerErr(err)
}

// Behind counts the live indexes other than id's whose published set is
// at or before pos.
func (p *IndexPeers) Behind(ctx context.Context, id string, pos geo.Position) (int, error) {
	var behind int
	err := p.write.QueryRow(ctx, peerBehindSQL, id, formatLSN(uint64(pos))).Scan(&behind)
	return behind, peerErr(err)
}

// listenIdle bounds each wait for a notification, so that a listener
// whose index was turned off closes its connection.
const listenIdle = 10 * time.Second

// Listen holds a connection of its own to the primary (short's, named
// .../listen), listens on the channel Notify notifies, and calls wake once
// when listening and then for each notification, while enabled says so.
// It returns nil when ctx ends or enabled turns false, and an error when
// the connection fails.
func (p *IndexPeers) Listen(ctx context.Context, enabled func() bool, wake func()) error {
	cfg := p.short.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = strings.TrimSuffix(cfg.RuntimeParams["application_name"], "/probe") + "/listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to listen: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+peerChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	wake() // for what was notified while nothing listened
	for enabled() {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			wake()
		case ctx.Err() != nil:
			return nil
		case wctx.Err() != nil && !conn.IsClosed():
			// idle: look at enabled again
		default:
			return fmt.Errorf("wait for a notification: %w", err)
		}
	}
	return nil
}

// Missing says whether err is ErrNoPeerTable.
func (p *IndexPeers) Missing(err error) bool { return errors.Is(err, ErrNoPeerTable) }

// peerErr says ErrNoPeerTable for the table's absence.
func peerErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w: %s", ErrNoPeerTable, pgErr.Message)
	}
	return err
}
