package memindex

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

// PeerTable is the table of live indexes on the primary
// (postgis.IndexPeers): the rows, the writes' wait and the listener.
type PeerTable interface {
	// Sweep deletes the rows of instances long dead.
	Sweep(ctx context.Context) error
	// Beat upserts id's row (its set's position, its lease from the
	// database's now) and returns the primary's insert position.
	Beat(ctx context.Context, id string, position geo.Position, lease time.Duration) (geo.Position, error)
	// Leave deletes id's row.
	Leave(ctx context.Context, id string) error
	// Written returns, after a write, the primary's insert position and
	// whether another index than id's holds a live lease.
	Written(ctx context.Context, id string) (geo.Position, bool, error)
	// Notify wakes every listening index, its commit flushed past the
	// write's position.
	Notify(ctx context.Context) error
	// Behind counts the live indexes other than id's at or before pos.
	Behind(ctx context.Context, id string, pos geo.Position) (int, error)
	// Listen calls wake once listening and for each notification while
	// enabled says so; nil when ctx ends or enabled turns false.
	Listen(ctx context.Context, enabled func() bool, wake func()) error
	// Missing says whether err is the table's absence (not migrated yet).
	Missing(err error) bool
}

// Peers is this instance's part in the lease that makes a read without a
// consistency token, on any instance, see a write another instance
// returned (docs/INDEX.md, "Consistency: the lease"). It works on the
// primary only, through its PeerTable:
//
//   - the instance's row, which its registry upserts after each refresh
//     with the published set's position (beat) and deletes when it stops
//     or turns its index off (leave);
//   - the writers' side: a write returns once every other live row is
//     past the write's position, or its lease has expired (AwaitWrite);
//   - listening for the writes' notifications, which wake the registry
//     (Listen).
type Peers struct {
	table  PeerTable
	id     string
	lease  time.Duration
	logger *slog.Logger
	m      metrics.Metrics
	// waits counts the writes that found another live index and waited.
	waits atomic.Int64
	// failing is set while the table is missing, so that it is logged
	// once.
	failing atomic.Bool
}

// Writers poll the table at growing intervals while they wait.
const (
	awaitPollMin = time.Millisecond
	awaitPollMax = 20 * time.Millisecond
)

// NewPeers returns this instance's part in the lease with lease
// (MEMINDEX_LEASE), on table.
func NewPeers(table PeerTable, lease time.Duration, logger *slog.Logger, m metrics.Metrics) *Peers {
	if m == nil {
		m = metrics.Nop{}
	}
	// The row's id: a random (version 4) UUID, a new one per process.
	return &Peers{table: table, id: uuid.NewString(), lease: lease, logger: logger, m: m}
}

// ID is this instance's row's id.
func (p *Peers) ID() string { return p.id }

// Waits returns how many writes found another live index and waited for
// it.
func (p *Peers) Waits() int64 { return p.waits.Load() }

// beat upserts this instance's row with position and returns the
// primary's insert position then; first also sweeps the rows of instances
// long dead.
func (p *Peers) beat(ctx context.Context, position geo.Position, first bool) (uint64, error) {
	if first {
		if err := p.table.Sweep(ctx); err != nil {
			return 0, err
		}
	}
	primary, err := p.table.Beat(ctx, p.id, position, p.lease)
	return uint64(primary), err
}

// leave deletes this instance's row.
func (p *Peers) leave(ctx context.Context) error { return p.table.Leave(ctx, p.id) }

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
	pos, live, err := p.table.Written(ctx, p.id)
	if err == nil && !live {
		return
	}
	if err == nil {
		p.waits.Add(1)
		if err = p.table.Notify(ctx); err == nil {
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
func (p *Peers) poll(ctx context.Context, pos geo.Position) error {
	d := awaitPollMin
	for {
		behind, err := p.table.Behind(ctx, p.id, pos)
		if err != nil {
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
	if p.table.Missing(err) { // not migrated yet
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

// Listen listens for the writes' notifications (PeerTable.Listen) and
// calls wake for each (and once after each start of listening, for what
// was notified while it was not listening), while enabled says so; until
// ctx ends. A lost connection is opened again after a second; what it
// missed costs at most a poll interval, as the registry polls anyway.
func (p *Peers) Listen(ctx context.Context, enabled func() bool, wake func()) {
	listening := failureLog{logger: p.logger,
		failed: "in-memory index: not listening for writes; polling only, retrying", recovered: "in-memory index: listening for writes again"}
	for ctx.Err() == nil {
		if !enabled() {
			_ = sleep(ctx, time.Second)
			continue
		}
		err := p.table.Listen(ctx, enabled, wake)
		listening.note(ctx, err)
		if err != nil && ctx.Err() == nil {
			_ = sleep(ctx, time.Second)
		}
	}
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
