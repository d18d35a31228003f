package postgis

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

const (
	// Get's statement is the thing's columns (thingColumns) and one of
	// these.
	getByID = `
FROM thing t
WHERE t.id = $?::bigint`
	getByKey = `
FROM thing t
WHERE t.collection = $?::text AND t.key = $?::text`

	// A delete marks the collections it changed as changed now.
	deleteByIDsSQL = `WITH gone AS (
    DELETE FROM thing WHERE id = ANY($1::bigint[]) RETURNING collection
), touched AS (
    UPDATE collection c SET updated_at = clock_timestamp()
    WHERE c.name IN (SELECT collection FROM gone)
)
SELECT count(*) FROM gone`
	// Deleting keys locks the collection's row (telling whether it exists),
	// so that it waits for a replace of the collection to finish, and marks
	// it changed only when something was deleted.
	lockCollectionForDeleteSQL = `SELECT true FROM collection WHERE name = $1::text FOR NO KEY UPDATE`
	deleteByKeysSQL            = `DELETE FROM thing WHERE collection = $1::text AND key = ANY($2::text[])`
	touchChangedCollectionSQL  = `UPDATE collection SET updated_at = clock_timestamp() WHERE name = $1::text`

	lockCollectionSQL      = `SELECT true FROM collection WHERE name = $1::text FOR UPDATE`
	deleteThingsOfSQL      = `DELETE FROM thing WHERE collection = $1::text`
	deleteCollectionRowSQL = `DELETE FROM collection WHERE name = $1::text`
)

// Get returns one thing by id, or by collection and key.
func (s *SearchService) Get(ctx context.Context, ref geo.ThingRef, includeGeometry bool, out geo.Output) (geo.Thing, error) {
	ref, err := ref.Normalize()
	if err != nil {
		return geo.Thing{}, err
	}
	if err := out.Validate(); err != nil {
		return geo.Thing{}, err
	}
	var st statement
	st.columns(includeGeometry, out)
	st.add(noDistance)
	if ref.ID > 0 {
		st.add(getByID, ref.ID)
	} else {
		st.add(getByKey, ref.Collection, ref.Key)
	}
	rows, err := s.pool.Query(ctx, st.sql.String(), st.args...)
	if err != nil {
		return geo.Thing{}, classify(ctx, "get thing", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, ScanThing)
	if errors.Is(err, pgx.ErrNoRows) {
		if ref.ID > 0 {
			return geo.Thing{}, geo.Errorf(geo.NotFound, "there is no thing with id %d", ref.ID)
		}
		return geo.Thing{}, geo.Errorf(geo.NotFound, "there is no thing with key %q in collection %q", ref.Key, ref.Collection)
	}
	return t, classify(ctx, "get thing", err)
}

// Delete deletes things by ids, or by keys within a collection, with their
// parts (the foreign key cascades), in one transaction.
func (s *SearchService) Delete(ctx context.Context, d geo.DeleteRequest) (int64, error) {
	d, err := d.Normalize()
	if err != nil {
		return 0, err
	}
	var n int64
	if len(d.IDs) > 0 {
		if err := s.writer.QueryRow(ctx, deleteByIDsSQL, d.IDs).Scan(&n); err != nil {
			return 0, classify(ctx, "delete things", err)
		}
		s.stats.invalidate()
		return n, nil
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		err := tx.QueryRow(ctx, lockCollectionForDeleteSQL, d.Collection).Scan(&exists)
		if errors.Is(err, pgx.ErrNoRows) {
			return geo.Errorf(geo.NotFound, "there is no collection %q", d.Collection)
		}
		if err != nil {
			return classify(ctx, "delete things", err)
		}
		tag, err := tx.Exec(ctx, deleteByKeysSQL, d.Collection, d.Keys)
		if err != nil {
			return classify(ctx, "delete things", err)
		}
		if n = tag.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, touchChangedCollectionSQL, d.Collection)
		return classify(ctx, "delete things", err)
	})
	if err != nil {
		return 0, err
	}
	s.stats.invalidate()
	return n, nil
}

// DeleteCollection deletes a collection, its things and their parts in one
// transaction.
func (s *SearchService) DeleteCollection(ctx context.Context, name string) (int64, error) {
	if err := geo.ValidateCollectionName(name); err != nil {
		return 0, err
	}
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var exists bool
		err := tx.QueryRow(ctx, lockCollectionSQL, name).Scan(&exists)
		if errors.Is(err, pgx.ErrNoRows) {
			return geo.Errorf(geo.NotFound, "there is no collection %q", name)
		}
		if err != nil {
			return classify(ctx, "delete collection", err)
		}
		tag, err := tx.Exec(ctx, deleteThingsOfSQL, name)
		if err != nil {
			return classify(ctx, "delete collection", err)
		}
		n = tag.RowsAffected()
		_, err = tx.Exec(ctx, deleteCollectionRowSQL, name)
		return classify(ctx, "delete collection", err)
	})
	if err != nil {
		return 0, err
	}
	s.stats.invalidate()
	return n, nil
}
