package postgis

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
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
