package postgis

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// Reading a whole collection's stored geometry for an in-memory index
// (internal/memindex): one REPEATABLE READ, READ ONLY transaction, so that
// the things, the collection's row and the snapshot's description are one
// consistent state; it runs on a hot standby too. The snapshot is asked
// first: in REPEATABLE READ the first statement fixes the snapshot every
// later one reads, and pg_current_snapshot() describes it (which
// transactions it sees). The WAL position is read in the same statement:
// on a standby the position replayed (every transaction the snapshot sees
// was replayed at or before it), on a primary the current insert
// position.
const (
	geometrySnapshotSQL = `SELECT pg_current_snapshot()::text,
       CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)
            ELSE pg_current_wal_insert_lsn() END::text,
       (SELECT updated_at FROM collection WHERE name = $1::text),
       postgis_lib_version()`
	// The stored geometry exactly (WKB carries every double as stored),
	// in id order.
	collectionGeometriesSQL = `SELECT id, ST_AsBinary(geom) FROM thing WHERE collection = $1::text ORDER BY id`
)

// GeometryVersion describes the database state ScanGeometries read.
type GeometryVersion struct {
	// Snapshot is pg_current_snapshot() of the reading transaction, as
	// text ("xmin:xmax:xip,...").
	Snapshot string
	// LSN is the WAL position then, as text ("16/B374D848").
	LSN string
	// UpdatedAt is the collection's updated_at; Exists is false (and
	// nothing was scanned) when there is no such collection.
	UpdatedAt time.Time
	Exists    bool
	// PostGIS is postgis_lib_version(): whose arithmetic the answers are.
	PostGIS string
}

// ScanGeometries calls fn with the id and the stored geometry (WKB) of
// every thing of collection, in id order, all read in one snapshot, and
// returns that snapshot's description. An error from fn stops the scan
// and is returned as it is.
func (s *SearchService) ScanGeometries(ctx context.Context, collection string, fn func(id int64, wkb []byte) error) (GeometryVersion, error) {
	var v GeometryVersion
	var fnErr error
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var updated *time.Time
		if err := tx.QueryRow(ctx, geometrySnapshotSQL, collection).Scan(&v.Snapshot, &v.LSN, &updated, &v.PostGIS); err != nil {
			return classify(ctx, "read collection geometry", err)
		}
		if updated == nil {
			return nil
		}
		v.UpdatedAt, v.Exists = *updated, true
		rows, err := tx.Query(ctx, collectionGeometriesSQL, collection)
		if err != nil {
			return classify(ctx, "read collection geometry", err)
		}
		var id int64
		var wkb []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &wkb}, func() error {
			if err := fn(id, wkb); err != nil {
				fnErr = err
				return err
			}
			return nil
		})
		if fnErr != nil {
			return fnErr
		}
		return classify(ctx, "read collection geometry", err)
	})
	if fnErr != nil {
		return GeometryVersion{}, fnErr
	}
	if err != nil {
		return GeometryVersion{}, classify(ctx, "read collection geometry", err)
	}
	return v, nil
}

// Reading collections for the in-memory indexes (ReadCollections): the
// snapshot, as above, then every collection's change marker, then the
// things of the collections asked for, with what a search returns of
// them, all in the one snapshot. Every write to a collection's things
// updates its row in the same transaction (its updated_at, and so its
// xmin), so the row's (updated_at, xmin) changes with every write.
const (
	// readPositionSQL is read before the transaction: on a primary the
	// flushed position, which is what a write's consistency token holds
	// (Replica.WritePosition); on a standby the position replayed. A
	// token below it is of a write that was visible before it was read
	// (the flushed position only grows, and a token is read after its
	// write commits), or replayed, so in the snapshot taken after.
	readPositionSQL = `SELECT CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)
            ELSE pg_current_wal_flush_lsn() END::text`
	readSnapshotSQL = `SELECT pg_current_snapshot()::text,
       CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn)
            ELSE pg_current_wal_insert_lsn() END::text,
       postgis_lib_version()`
	collectionHeadsSQL  = `SELECT name, updated_at, updated_at::text || '/' || xmin::text FROM collection ORDER BY name`
	collectionThingsSQL = `SELECT t.id, t.collection, coalesce(t.key, ''), t.name, t.properties,
       t.min_lng, t.min_lat, t.max_lng, t.max_lat, ST_AsBinary(t.geom)
FROM thing t WHERE t.collection = $1::text ORDER BY t.id`
	// Every write of a thing sets written_xact to its transaction
	// (import.go), so the rows the earlier snapshot $2 did not see are
	// exactly those whose written_xact it does not see (a row it saw and
	// no one rewrote keeps a written_xact it sees; rows from before the
	// column, NULL, were all seen).
	collectionThingsSinceSQL = `SELECT t.id, t.collection, coalesce(t.key, ''), t.name, t.properties,
       t.min_lng, t.min_lat, t.max_lng, t.max_lat, ST_AsBinary(t.geom)
FROM thing t WHERE t.collection = $1::text AND NOT pg_visible_in_snapshot(t.written_xact, $2::pg_snapshot) ORDER BY t.id`
	collectionIDsSQL = `SELECT t.id FROM thing t WHERE t.collection = $1::text`
)

// propertiesColumn is the position of t.properties in collectionThingsSQL.
const propertiesColumn = 4

// ReadCollections opens one REPEATABLE READ, READ ONLY transaction and
// calls read with the snapshot's description (every collection and its
// change marker) and a scan of any collection's things in that snapshot
// (geo.CollectionReader). It runs on a hot standby too.
func (s *SearchService) ReadCollections(ctx context.Context, read func(geo.StoreSnapshot, geo.SnapshotScanner) error) error {
	var before string
	if err := s.pool.QueryRow(ctx, readPositionSQL).Scan(&before); err != nil {
		return classify(ctx, "read collections", err)
	}
	b, err := parseLSN(before)
	if err != nil {
		return fmt.Errorf("read collections: %w", err)
	}
	var readErr error
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		snap, err := readHeads(ctx, tx)
		if err != nil {
			return err
		}
		snap.Before = geo.Position(b)
		readErr = read(snap, txScanner{ctx: ctx, tx: tx})
		return readErr
	})
	if readErr != nil {
		return readErr
	}
	return classify(ctx, "read collections", err)
}

// readHeads reads the snapshot's description; it must be tx's first
// statement.
func readHeads(ctx context.Context, tx pgx.Tx) (geo.StoreSnapshot, error) {
	var snap geo.StoreSnapshot
	var lsn string
	if err := tx.QueryRow(ctx, readSnapshotSQL).Scan(&snap.Snapshot, &lsn, &snap.Engine); err != nil {
		return snap, classify(ctx, "read collections", err)
	}
	p, err := parseLSN(lsn)
	if err != nil {
		return snap, fmt.Errorf("read collections: %w", err)
	}
	snap.Position = geo.Position(p)
	rows, err := tx.Query(ctx, collectionHeadsSQL)
	if err != nil {
		return snap, classify(ctx, "read collections", err)
	}
	var h geo.CollectionHead
	_, err = pgx.ForEachRow(rows, []any{&h.Name, &h.UpdatedAt, &h.Marker}, func() error {
		snap.Collections = append(snap.Collections, h)
		return nil
	})
	return snap, classify(ctx, "read collections", err)
}

// txScanner is ReadCollections' geo.SnapshotScanner: its transaction.
type txScanner struct {
	ctx context.Context
	tx  pgx.Tx
}

func (s txScanner) Scan(collection string, fn func(geo.StoredThing) error) error {
	return scanThings(s.ctx, s.tx, fn, collectionThingsSQL, collection)
}

func (s txScanner) ScanSince(collection, since string, fn func(geo.StoredThing) error) error {
	return scanThings(s.ctx, s.tx, fn, collectionThingsSinceSQL, collection, since)
}

func (s txScanner) ScanIDs(collection string, fn func(int64) error) error {
	rows, err := s.tx.Query(s.ctx, collectionIDsSQL, collection)
	if err != nil {
		return classify(s.ctx, "read collection", err)
	}
	defer rows.Close()
	var id int64
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return classify(s.ctx, "read collection", err)
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	return classify(s.ctx, "read collection", rows.Err())
}

// scanThings calls fn with every thing sql (collectionThingsSQL's columns)
// returns.
func scanThings(ctx context.Context, tx pgx.Tx, fn func(geo.StoredThing) error, sql string, args ...any) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return classify(ctx, "read collection", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t geo.StoredThing
		t.PropertiesBytes = len(rows.RawValues()[propertiesColumn])
		if err := rows.Scan(&t.ID, &t.Collection, &t.Key, &t.Name, &t.Properties,
			&t.BBox.MinLng, &t.BBox.MinLat, &t.BBox.MaxLng, &t.BBox.MaxLat, &t.WKB); err != nil {
			return classify(ctx, "read collection", err)
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return classify(ctx, "read collection", rows.Err())
}
