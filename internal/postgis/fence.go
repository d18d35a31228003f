package postgis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/geosearch/search/internal/geo"
	"github.com/geosearch/search/internal/metrics"
)

const (
	// Every device of a batch is locked, known or new, in one order (of
	// the lock keys) so that two batches cannot deadlock. The one-bigint
	// advisory locks are a space apart from the relay's two-int4 lock.
	fenceLockDevicesSQL = `SELECT count(pg_advisory_xact_lock(k)) FROM (
    SELECT DISTINCT hashtextextended(c || chr(31) || d, 0) AS k
    FROM unnest($1::text[], $2::text[]) AS u(c, d) ORDER BY k) s`
	fenceStatesSQL = `SELECT collection, device, seq, last_time, inside::text FROM fence_device
WHERE (collection, device) IN (SELECT * FROM unnest($1::text[], $2::text[]))`
	fenceSaveStatesSQL = `INSERT INTO fence_device (collection, device, seq, last_time, inside)
SELECT c, d, s, t, i::jsonb FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[]) AS u(c, d, s, t, i)
ON CONFLICT (collection, device) DO UPDATE
SET seq = excluded.seq, last_time = excluded.last_time, inside = excluded.inside`
	fenceDeleteStatesSQL = `DELETE FROM fence_device
WHERE (collection, device) IN (SELECT * FROM unnest($1::text[], $2::text[]))`
	// A transaction's events are one outbox row (migration 000009), in
	// one payload (000010, fence_payload.go).
	fenceOutboxSQL = `INSERT INTO fence_outbox (events, payload) VALUES ($1::integer, $2::bytea)`
	// The offset moves on only from where the batch read it (or from
	// nothing): a consumer that lost the partition cannot apply twice.
	fenceOffsetSQL = `INSERT INTO fence_offset (consumer_group, topic, partition, next_offset)
VALUES ($1::text, $2::text, $3::integer, $5::bigint)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
WHERE fence_offset.next_offset = $4::bigint`
	fenceOffsetsSQL = `SELECT partition, next_offset FROM fence_offset WHERE consumer_group = $1::text AND topic = $2::text`

	// Every transaction that writes the outbox holds this lock, shared,
	// from its start (before it has an xid). The relay takes it exclusive
	// for a moment to read the horizon (fenceHorizonSQL).
	fenceWriterLockSQL    = `SELECT pg_advisory_xact_lock_shared(28, 3)`
	fenceWritersPauseSQL  = `SELECT pg_advisory_xact_lock(28, 3)`
	fenceOutboxWaitingSQL = `SELECT EXISTS (SELECT FROM fence_outbox WHERE (xid, id) > ($1::text::xid8, $2::bigint))`
	// The horizon, read while holding the writers' lock exclusive: no
	// writer is running, so every writer with an xid below the snapshot's
	// xmax has ended and its events are visible to any later snapshot, and
	// every later writer gets a larger xid. Other transactions (a long
	// import) do not hold events back.
	fenceHorizonSQL = `SELECT pg_snapshot_xmax(pg_current_snapshot())::text`
	// The order is by the xid8 column, not by its text (which would put
	// 1000 before 999): the text goes out under another name.
	// Whole rows: the first, then as many as keep the events within $4.
	// A row holds at least one event, so $4 rows are always enough.
	// A row holds its events in payload, or (written before 000010) in
	// the arrays.
	fencePendingSQL = `SELECT xid_text, id, events, payload, collections, devices, seqs, types, thing_ids, thing_keys, lats, lngs, ats FROM (
    SELECT o.xid, o.xid::text AS xid_text, o.id, o.payload, o.collections, o.devices, o.seqs, o.types, o.thing_ids, o.thing_keys, o.lats, o.lngs, o.ats,
        sum(o.events) OVER (ORDER BY o.xid, o.id) AS upto, o.events
    FROM fence_outbox o
    WHERE (o.xid, o.id) > ($1::text::xid8, $2::bigint) AND o.xid < $3::text::xid8
    ORDER BY o.xid, o.id LIMIT $4::integer) s
WHERE upto = events OR upto <= $4::integer
ORDER BY xid, id`
	fenceTrimSQL = `DELETE FROM fence_outbox WHERE (xid, id) <= ($1::text::xid8, $2::bigint)`

	fenceGaugesSQL = `SELECT (SELECT count(*) FROM fence_device), (SELECT coalesce(sum(events), 0) FROM fence_outbox)`

	// The relay's lock: (class, object) in the two-int4 advisory space.
	fenceRelayLockSQL   = `SELECT pg_try_advisory_lock(28, 1)`
	fenceRelayUnlockSQL = `SELECT pg_advisory_unlock(28, 1)`
)

// FenceStore implements geo.FenceStore and geo.Outbox on a pool of the
// primary (the writing pool's URL): states, outbox and offsets.
type FenceStore struct {
	pool *pgxpool.Pool
	// leadPoll is how often Lead tries the lock, and checks it holds it.
	leadPoll time.Duration
	// written gets a value (if it has none) when Apply committed events.
	written chan struct{}
}

// NewFenceStore returns a FenceStore on pool, which must reach the primary.
func NewFenceStore(pool *pgxpool.Pool) *FenceStore {
	return &FenceStore{pool: pool, leadPoll: time.Second, written: make(chan struct{}, 1)}
}

// Written receives a value after Apply committed events in this process
// (values coalesce: one may stand for several commits). A relay in the
// same process reads the outbox then instead of at its next poll; events
// other processes write are seen at the poll.
func (f *FenceStore) Written() <-chan struct{} { return f.written }

// Apply implements geo.FenceStore in four round trips: BEGIN; the writers'
// lock, the devices' locks and their states (one pipelined batch); the
// states, the outbox row and the offsets (another); COMMIT.
func (f *FenceStore) Apply(ctx context.Context, keys []geo.DeviceKey, offsets []geo.Offset, step func(map[geo.DeviceKey]geo.DeviceState) (geo.FenceChange, error)) error {
	var stepErr error
	events := false
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		states, err := lockStates(ctx, tx, keys)
		if err != nil {
			return err
		}
		change, err := step(states)
		if err != nil {
			stepErr = err
			return err
		}
		events = len(change.Events) > 0
		return saveChange(ctx, tx, change, offsets)
	})
	if stepErr != nil {
		return stepErr
	}
	if err == nil && events {
		select {
		case f.written <- struct{}{}:
		default: // one is waiting already
		}
	}
	return classify(ctx, "apply positions", err)
}

func splitKeys(keys []geo.DeviceKey) (collections, devices []string) {
	for _, k := range keys {
		collections = append(collections, k.Collection)
		devices = append(devices, k.Device)
	}
	return collections, devices
}

// insideJSON is a FenceThing as fence_device.inside holds it.
type insideJSON struct {
	ID  int64  `json:"id"`
	Key string `json:"key"`
}

// lockStates takes the writers' lock (shared), locks keys' devices and
// reads their states, in one pipelined batch.
func lockStates(ctx context.Context, tx pgx.Tx, keys []geo.DeviceKey) (map[geo.DeviceKey]geo.DeviceState, error) {
	states := map[geo.DeviceKey]geo.DeviceState{}
	b := &pgx.Batch{}
	b.Queue(fenceWriterLockSQL)
	if len(keys) > 0 {
		cs, ds := splitKeys(keys)
		b.Queue(fenceLockDevicesSQL, cs, ds)
		b.Queue(fenceStatesSQL, cs, ds).Query(func(rows pgx.Rows) error {
			return scanStates(rows, states)
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return states, nil
}

// scanStates reads fenceStatesSQL's rows into states.
func scanStates(rows pgx.Rows, states map[geo.DeviceKey]geo.DeviceState) error {
	for rows.Next() {
		var k geo.DeviceKey
		var s geo.DeviceState
		var inside string
		if err := rows.Scan(&k.Collection, &k.Device, &s.Seq, &s.LastTime, &inside); err != nil {
			return err
		}
		var things []insideJSON
		if err := json.Unmarshal([]byte(inside), &things); err != nil {
			return fmt.Errorf("fence_device.inside of %q: %w", k.Device, err)
		}
		for _, th := range things {
			s.Inside = append(s.Inside, geo.FenceThing{ID: th.ID, Key: th.Key})
		}
		states[k] = s
	}
	return rows.Err()
}

// saveChange writes the states, drops the deleted ones, adds the events to
// the outbox (one row) and moves the offsets on, in one pipelined batch.
// It returns Aborted when an offset was moved on by another consumer.
func saveChange(ctx context.Context, tx pgx.Tx, change geo.FenceChange, offsets []geo.Offset) error {
	b := &pgx.Batch{}
	if len(change.States) > 0 {
		if err := queueStates(b, change.States); err != nil {
			return err
		}
	}
	if len(change.Deleted) > 0 {
		cs, ds := splitKeys(change.Deleted)
		b.Queue(fenceDeleteStatesSQL, cs, ds)
	}
	if len(change.Events) > 0 {
		queueOutbox(b, change.Events)
	}
	for _, o := range offsets {
		b.Queue(fenceOffsetSQL, o.Group, o.Topic, o.Partition, o.From, o.Next).Exec(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() == 0 {
				return geo.Errorf(geo.Aborted, "the offset of %s/%d moved on from %d: another consumer has the partition", o.Topic, o.Partition, o.From)
			}
			return nil
		})
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// queueStates queues the upsert of states, in key order (the order the
// devices were locked in).
func queueStates(b *pgx.Batch, states map[geo.DeviceKey]geo.DeviceState) error {
	n := len(states)
	cs, ds, inside := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	seqs, times := make([]int64, 0, n), make([]time.Time, 0, n)
	for _, k := range slices.SortedFunc(mapKeys(states), compareKeys) {
		s := states[k]
		things := make([]insideJSON, len(s.Inside))
		for i, th := range s.Inside {
			things[i] = insideJSON(th)
		}
		js, err := json.Marshal(things)
		if err != nil {
			return err
		}
		cs, ds = append(cs, k.Collection), append(ds, k.Device)
		seqs, times, inside = append(seqs, s.Seq), append(times, s.LastTime), append(inside, string(js))
	}
	b.Queue(fenceSaveStatesSQL, cs, ds, seqs, times, inside)
	return nil
}

// queueOutbox queues the insert of events as one outbox row.
func queueOutbox(b *pgx.Batch, events []geo.Event) {
	b.Queue(fenceOutboxSQL, len(events), encodePayload(events))
}

func mapKeys(m map[geo.DeviceKey]geo.DeviceState) func(func(geo.DeviceKey) bool) {
	return func(yield func(geo.DeviceKey) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func compareKeys(a, b geo.DeviceKey) int {
	if c := strings.Compare(a.Collection, b.Collection); c != 0 {
		return c
	}
	return strings.Compare(a.Device, b.Device)
}

// Report sends fence.devices (device states kept, per collection counted
// apart) and fence.outbox (events not yet trimmed: published or waiting).
func (f *FenceStore) Report(ctx context.Context, m metrics.Metrics) {
	devices, outbox, err := f.Counts(ctx)
	if err != nil {
		return // the database is away: the readiness check says so
	}
	m.Gauge("fence.devices", devices)
	m.Gauge("fence.outbox", outbox)
}

// Counts returns the device states stored and the outbox's events not yet
// trimmed.
func (f *FenceStore) Counts(ctx context.Context) (devices, outbox int64, err error) {
	err = f.pool.QueryRow(ctx, fenceGaugesSQL).Scan(&devices, &outbox)
	return devices, outbox, classify(ctx, "count fence states", err)
}

// Offsets implements geo.FenceStore.
func (f *FenceStore) Offsets(ctx context.Context, group, topic string) (map[int32]int64, error) {
	rows, err := f.pool.Query(ctx, fenceOffsetsSQL, group, topic)
	if err != nil {
		return nil, classify(ctx, "read offsets", err)
	}
	out := map[int32]int64{}
	var p int32
	var next int64
	_, err = pgx.ForEachRow(rows, []any{&p, &next}, func() error {
		out[p] = next
		return nil
	})
	return out, classify(ctx, "read offsets", err)
}

// Pending implements geo.Outbox.
func (f *FenceStore) Pending(ctx context.Context, after geo.OutboxMark, n int) ([]geo.OutboxEvent, error) {
	// The writers are paused for the horizon only when there is something
	// to read: an idle relay does not stall them.
	var waiting bool
	if err := f.pool.QueryRow(ctx, fenceOutboxWaitingSQL, strconv.FormatUint(after.XID, 10), after.ID).Scan(&waiting); err != nil {
		return nil, classify(ctx, "read outbox", err)
	}
	if !waiting {
		return nil, nil
	}
	horizon, err := f.horizon(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := f.pool.Query(ctx, fencePendingSQL, strconv.FormatUint(after.XID, 10), after.ID, strconv.FormatUint(horizon, 10), n)
	if err != nil {
		return nil, classify(ctx, "read outbox", err)
	}
	var out []geo.OutboxEvent
	var r outboxRow
	_, err = pgx.ForEachRow(rows, []any{&r.xid, &r.id, &r.events, &r.payload, &r.collection, &r.device, &r.seq, &r.typ, &r.thingID, &r.thingKey, &r.lat, &r.lng, &r.at}, func() error {
		var err error
		out, err = r.appendTo(out)
		return err
	})
	return out, classify(ctx, "read outbox", err)
}

// outboxRow is one row of fence_outbox: one transaction's events, in
// payload or (rows from before migration 000010) in the arrays.
type outboxRow struct {
	xid                     string
	id                      int64
	events                  int
	payload                 []byte
	collection, device, typ []string
	thingKey                []string
	seq, thingID            []int64
	lat, lng                []float64
	at                      []time.Time
}

// appendTo appends the row's events to out, each at the row's mark.
func (r *outboxRow) appendTo(out []geo.OutboxEvent) ([]geo.OutboxEvent, error) {
	x, err := strconv.ParseUint(r.xid, 10, 64)
	if err != nil {
		return out, fmt.Errorf("outbox xid %q: %w", r.xid, err)
	}
	mark := geo.OutboxMark{XID: x, ID: r.id}
	if r.payload != nil {
		return appendPayload(slices.Grow(out, r.events), r.payload, mark, r.events)
	}
	n := len(r.device)
	for _, l := range []int{len(r.collection), len(r.typ), len(r.thingKey), len(r.seq), len(r.thingID), len(r.lat), len(r.lng), len(r.at)} {
		if l != n {
			return out, fmt.Errorf("outbox row %s/%d: arrays of %d and %d events", r.xid, r.id, n, l)
		}
	}
	out = slices.Grow(out, n)
	for i := range n {
		typ := geo.Exit
		if r.typ[i] == geo.Enter.String() {
			typ = geo.Enter
		}
		out = append(out, geo.OutboxEvent{Mark: mark, Event: geo.Event{
			Device: r.device[i], Collection: r.collection[i], Type: typ, Seq: r.seq[i],
			Thing: geo.FenceThing{ID: r.thingID[i], Key: r.thingKey[i]},
			Point: geo.Point{Lat: r.lat[i], Lng: r.lng[i]}, Time: r.at[i],
		}})
	}
	return out, nil
}

// horizon is the xid below which no event can appear any more
// (fenceHorizonSQL). It waits for the writers running and holds new ones
// back for as long as one short transaction takes.
func (f *FenceStore) horizon(ctx context.Context) (uint64, error) {
	var text string
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fenceWritersPauseSQL); err != nil {
			return err
		}
		return tx.QueryRow(ctx, fenceHorizonSQL).Scan(&text)
	})
	if err != nil {
		return 0, classify(ctx, "read outbox horizon", err)
	}
	h, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("outbox horizon %q: %w", text, err)
	}
	return h, nil
}

// Trim implements geo.Outbox.
func (f *FenceStore) Trim(ctx context.Context, upTo geo.OutboxMark) error {
	_, err := f.pool.Exec(ctx, fenceTrimSQL, strconv.FormatUint(upTo.XID, 10), upTo.ID)
	return classify(ctx, "trim outbox", err)
}

// Lead implements geo.Outbox with a session advisory lock held on a
// connection of its own, checked every leadPoll: when the connection
// fails, fn's context ends (the lock went with the session).
func (f *FenceStore) Lead(ctx context.Context, fn func(context.Context) error) error {
	for {
		conn, err := f.pool.Acquire(ctx)
		if err != nil {
			return classify(ctx, "relay lock", err)
		}
		var got bool
		if err := conn.QueryRow(ctx, fenceRelayLockSQL).Scan(&got); err != nil {
			conn.Release()
			return classify(ctx, "relay lock", err)
		}
		if got {
			return f.leadWith(ctx, conn, fn)
		}
		conn.Release()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.leadPoll):
		}
	}
}

func (f *FenceStore) leadWith(ctx context.Context, conn *pgxpool.Conn, fn func(context.Context) error) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(f.leadPoll)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				if err := conn.Ping(lctx); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	err := fn(lctx)
	cancel()
	<-watched
	uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ucancel()
	if _, uerr := conn.Exec(uctx, fenceRelayUnlockSQL); uerr != nil {
		// The session may be gone (and its lock with it); never reuse it.
		_ = conn.Conn().Close(uctx)
	}
	conn.Release()
	return err
}
