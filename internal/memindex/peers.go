package memindex

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// Peers is this instance's part in the lease that makes a read without a
// consistency token, on any instance, see a write another instance
// returned (docs/INDEX.md, "Consistency: the lease"). It works on the
// primary only:
//
//   - the instance's row in memindex_peer, which its registry upserts
//     after each refresh with the published set's position (beat) and
//     deletes when it stops or turns its index off (leave);
//   - the writers' side: a write returns once every other live row is
//     past the write's position, or its lease has expired (AwaitWrite);
//   - LISTEN on the channel AwaitWrite notifies, which wakes the registry
//     (Listen).
//
// The SQL lives here rather than in internal/postgis: the table is the
// index's own, and nothing else reads it.
type Peers struct {
	// short: the row's statements and the listener's connection, on a
	// pool of short statements (imports never hold its connections, so a
	// long import does not starve the heartbeat); pool: the writes' wait,
	// on the writing pool.
	short  *pgxpool.Pool
	pool   *pgxpool.Pool
	id     string
	lease  time.Duration
	logger *slog.Logger
	m      metrics.Metrics
	// waits counts the writes that found another live index and waited.
	waits atomic.Int64
	// failing is set while the table cannot be written or read, so that
	// it is logged once.
	failing atomic.Bool
}

// channel is the notification channel writes notify and every index with
// the lease listens on.
const channel = "memindex"

const (
	beatSQL = `INSERT INTO memindex_peer (id, position, heartbeat, expires)
VALUES ($1::uuid, $2::pg_lsn, now(), now() + $3::bigint * interval '1 microsecond')
ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, heartbeat = EXCLUDED.heartbeat, expires = EXCLUDED.expires
RETURNING pg_current_wal_insert_lsn()::text`
	// sweepSQL removes the rows instances that died left behind, long
	// expired (they cost writers nothing, only a row each).
	sweepSQL = `DELETE FROM memindex_peer WHERE expires < now() - interval '1 hour'`
	leaveSQL = `DELETE FROM memindex_peer WHERE id = $1::uuid`
	// writtenSQL runs after a write has returned: the insert position is
	// then at or past the write's commit record, and any position past it
	// was read after the write was visible.
	writtenSQL = `SELECT pg_current_wal_insert_lsn()::text,
       EXISTS (SELECT FROM memindex_peer WHERE id <> $1::uuid AND expires > now())`
	// notifySQL wakes every listening index, and moves the primary's
	// flushed position past the write's before anyone is woken, so that a
	// refresh that follows reads a position past it: the transaction
	// writes WAL (a transactional logical message, which any role may
	// emit at any wal_level; a transaction that only took an id would
	// commit asynchronously, as it wrote nothing before its commit record)
	// and commits synchronously, locally.
	notifySQL = `SELECT set_config('synchronous_commit', 'local', true), pg_notify('` + channel + `', ''),
       pg_logical_emit_message(true, '` + channel + `', '')::text`
	behindSQL = `SELECT count(*) FROM memindex_peer
WHERE id <> $1::uuid AND expires > now() AND position <= $2::pg_lsn`
)

// Writers poll the table at growing intervals while they wait.
const (
	awaitPollMin = time.Millisecond
	awaitPollMax = 20 * time.Millisecond
)

// NewPeers returns this instance's part in the lease with lease
// (MEMINDEX_LEASE). Both pools must be on the primary: short for the row
// and the listener (short statements only), writer for the writes' wait.
func NewPeers(short, writer *pgxpool.Pool, lease time.Duration, logger *slog.Logger, m metrics.Metrics) *Peers {
	if m == nil {
		m = metrics.Nop{}
	}
	return &Peers{short: short, pool: writer, id: newPeerID(), lease: lease, logger: logger, m: m}
}

// newPeerID is a random (version 4) UUID: a new one per process.
func newPeerID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ID is this instance's row's id.
func (p *Peers) ID() string { return p.id }

// Lease is the lease (MEMINDEX_LEASE).
func (p *Peers) Lease() time.Duration { return p.lease }

// Waits returns how many writes found another live index and waited for
// it.
func (p *Peers) Waits() int64 { return p.waits.Load() }

// beat upserts this instance's row with position and returns the
// primary's insert position then; first also sweeps the rows of instances
// long dead.
func (p *Peers) beat(ctx context.Context, position geo.Position, first bool) (uint64, error) {
	if first {
		if _, err := p.short.Exec(ctx, sweepSQL); err != nil {
			return 0, fmt.Errorf("sweep expired memory index rows: %w", err)
		}
	}
	var primary string
	if err := p.short.QueryRow(ctx, beatSQL, p.id, formatLSN(uint64(position)), p.lease.Microseconds()).Scan(&primary); err != nil {
		return 0, fmt.Errorf("memory index heartbeat: %w", err)
	}
	return parseLSN(primary)
}

// leave deletes this instance's row.
func (p *Peers) leave(ctx context.Context) error {
	if _, err := p.short.Exec(ctx, leaveSQL, p.id); err != nil {
		return fmt.Errorf("remove the memory index's row: %w", err)
	}
	return nil
}

// AwaitWrite returns once every other instance's index whose lease is live
// by the database's clock has published a set past what was written
// before the call, or its lease has expired; at once when there is none
// (MEMINDEX off everywhere: one short statement per write). ok says
// whether the write succeeded: when the table cannot be read after a
// write that succeeded, it waits one lease (this instance's), so that any
// index as leased as this one has stopped answering from memory; after a
// failed write it does not wait. The instance itself is not waited for:
// its registry reads its own writes already (Registry.Wrote).
func (p *Peers) AwaitWrite(ctx context.Context, ok bool) {
	start := time.Now()
	var pos string
	var live bool
	err := p.pool.QueryRow(ctx, writtenSQL, p.id).Scan(&pos, &live)
	if err == nil && !live {
		return
	}
	if err == nil {
		p.waits.Add(1)
		if _, err = p.pool.Exec(ctx, notifySQL); err == nil {
			err = p.poll(ctx, pos)
		}
	}
	if err == nil {
		p.m.Timing("memindex.write_wait", time.Since(start))
		return
	}
	p.awaitFailed(ctx, err, ok, start)
}

// poll reads the table until no live row is at or before pos.
func (p *Peers) poll(ctx context.Context, pos string) error {
	d := awaitPollMin
	for {
		var behind int
		if err := p.pool.QueryRow(ctx, behindSQL, p.id, pos).Scan(&behind); err != nil {
			return err
		}
		if behind == 0 {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
		d = min(2*d, awaitPollMax)
	}
}

// awaitFailed ends a wait whose statement failed: see AwaitWrite.
func (p *Peers) awaitFailed(ctx context.Context, err error, ok bool, start time.Time) {
	if ctx.Err() != nil {
		return // the caller is gone; nothing waits for the answer
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table: not migrated yet
		if !p.failing.Swap(true) {
			p.logger.Warn("in-memory index: no memindex_peer table (run the migrations); writes wait for no index", "error", err.Error())
		}
		return
	}
	p.m.Count("memindex.write_wait_failed", 1)
	if !ok {
		return
	}
	p.logger.Warn("in-memory index: cannot read which indexes are live; waiting one lease", "error", err.Error(), "lease", p.lease.String())
	_ = sleep(ctx, time.Until(start.Add(p.lease)))
}

// Listen holds one connection of its own to the primary, listening on the
// channel writes notify, and calls wake for each notification (and once
// after each LISTEN, for what was notified while it was not listening),
// while enabled says so; until ctx ends. A lost connection is opened again
// after a second; what it missed costs at most a poll interval, as the
// registry polls anyway.
func (p *Peers) Listen(ctx context.Context, enabled func() bool, wake func()) {
	failing := false
	for ctx.Err() == nil {
		if !enabled() {
			_ = sleep(ctx, time.Second)
			continue
		}
		err := p.listen(ctx, enabled, wake)
		if err != nil && ctx.Err() == nil {
			if !failing {
				p.logger.Warn("in-memory index: not listening for writes; polling only, retrying", "error", err.Error())
			}
			failing = true
			_ = sleep(ctx, time.Second)
		} else if failing {
			p.logger.Info("in-memory index: listening for writes again")
			failing = false
		}
	}
}

// listenIdle bounds each wait for a notification, so that a listener
// whose index was turned off closes its connection.
const listenIdle = 10 * time.Second

func (p *Peers) listen(ctx context.Context, enabled func() bool, wake func()) error {
	cfg := p.short.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = strings.TrimSuffix(cfg.RuntimeParams["application_name"], "/probe") + "/listen"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to listen: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	wake()
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

// sleep waits d, or less when ctx ends first (its error then).
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parseLSN reads a WAL position as PostgreSQL writes it.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	return h<<32 | l, nil
}

// formatLSN writes a WAL position as PostgreSQL does (e.g. 0/3000148).
func formatLSN(p uint64) string {
	return strconv.FormatUint(p>>32, 16) + "/" + strconv.FormatUint(p&0xffffffff, 16)
}
