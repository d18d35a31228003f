package postgis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twpayne/go-geom/encoding/wkb"

	"github.com/geosearch/search/internal/geo"
)

// Import batches: a batch is one statement (insertThingsSQL), flushed when
// it holds this many features or vertices, whichever comes first. The
// feature bound is where small polygons stop gaining from sharing a
// statement; the vertex bound keeps a statement of large ones short (at
// 500,000 vertices a batch of the 1:10m countries took over 10 s on a
// loaded machine). A single feature over the bound is a batch of its own,
// as large as MAX_FEATURE_VERTICES allows. The writing pool's statements
// run under DB_WRITE_STATEMENT_TIMEOUT, not the readers' bound.
const (
	batchFeatures = 200
	batchVertices = 20_000
)

// insertThingsSQL stores a batch of features in one statement: the arrays
// hold each feature's WKB, key, name and properties, in the batch's order.
// A valid geometry is stored as it is; an invalid one is repaired with
// ST_MakeValid (structure method: outer rings are unioned, holes
// subtracted) keeping only the polygonal part. A geometry that
// geo.DecodeFeature unwrapped across the antimeridian (its longitudes run
// past +-180) is then cut at +-180 and its pieces folded back into
// [-180, 180] (ST_WrapX), and repaired again if the pieces meet (see geo's
// antimeridian.go). If nothing polygonal is left, no row is inserted and
// the feature is rejected. An existing key of the collection is replaced,
// so importing the same keyed data twice stores it once (the reader
// rejects a key repeated within one import, so no row is written twice in
// one statement). written_xact records the importing transaction (see
// replaceSQL). The thing_part_sync trigger writes the parts in the same
// statement.
//
// The answer has a row for each stored feature: its position in the batch
// (from 1) and whether the database repaired it. One statement for the
// batch, rather than one per feature, is planned once: planning the
// statement cost as much as executing it for a small polygon.
//
// checked, made and fixed are MATERIALIZED: PostgreSQL inlines a CTE read
// once, and then copies its expressions wherever they are used, so each
// feature's WKB was parsed and ST_IsValid run seven times (EXPLAIN
// VERBOSE shows the copies). The 1:10m countries spent 16 s in this
// statement outside the trigger; materialized, 4 s.
const insertThingsSQL = `WITH input AS (
    SELECT ord, key, name, properties, ST_SetSRID(ST_GeomFromWKB(wkb), 4326) AS raw
    FROM unnest(@wkb::bytea[], @key::text[], @name::text[], @properties::jsonb[])
         WITH ORDINALITY AS u (wkb, key, name, properties, ord)
), checked AS MATERIALIZED (
    SELECT ord, key, name, properties, raw, ST_IsValid(raw) AS valid FROM input
), made AS MATERIALIZED (
    SELECT ord, key, name, properties, valid,
           CASE WHEN valid THEN raw
                ELSE ST_CollectionExtract(ST_MakeValid(raw, 'method=structure'), 3) END AS geom
    FROM checked
), fixed AS MATERIALIZED (
    SELECT ord, key, name, properties, valid,
           ST_Multi(CASE WHEN coalesce(ST_XMin(geom) >= -180 AND ST_XMax(geom) <= 180, true) THEN geom
                         ELSE (SELECT CASE WHEN ST_IsValid(w) THEN w
                                           ELSE ST_CollectionExtract(ST_MakeValid(w, 'method=structure'), 3) END
                               FROM (SELECT ST_CollectionExtract(ST_WrapX(ST_WrapX(geom, 180, -360), -180, 360), 3) AS w) f)
                    END) AS geom
    FROM made
), stored AS (
    SELECT * FROM fixed WHERE NOT ST_IsEmpty(geom)
), written AS (
    INSERT INTO thing (collection, key, name, properties, geom, written_xact)
    SELECT @collection::text, NULLIF(key, ''), name, properties, geom, pg_current_xact_id()
    FROM stored
    ORDER BY ord
    ON CONFLICT (collection, key) DO UPDATE
    SET name = EXCLUDED.name, properties = EXCLUDED.properties,
        geom = EXCLUDED.geom, imported_at = now(), written_xact = EXCLUDED.written_xact
)
SELECT ord, NOT valid FROM stored ORDER BY ord`

// The import's collection is created if it does not exist. A replace also
// locks its row for the whole transaction (replaceCollectionSQL), so that
// replaces, deletes of keys and DeleteCollection of one collection take
// turns and a replace decides what is absent from a collection no other
// replace is writing. A plain import does not lock it (openCollectionSQL
// does not even try to insert an existing row, which would wait for
// another import that is inserting the same new collection) and runs beside
// others as before; it
// takes the row only to mark the collection changed, as its last statement
// (touchCollectionSQL), which holds the lock just until the commit.
const (
	openCollectionSQL = `INSERT INTO collection (name)
SELECT $1::text WHERE NOT EXISTS (SELECT FROM collection WHERE name = $1::text)
ON CONFLICT (name) DO NOTHING`
	replaceCollectionSQL = `INSERT INTO collection (name) VALUES ($1::text)
ON CONFLICT (name) DO UPDATE SET updated_at = clock_timestamp()`
	touchCollectionSQL = `UPDATE collection SET updated_at = clock_timestamp() WHERE name = $1::text`
)

// replaceSQL deletes the things of a collection that the current
// transaction did not write: pg_current_xact_id() is the top-level
// transaction's id, inside the import's savepoints too, and is never
// reused. Concurrent searches keep seeing the old things until the import
// commits, and then see only the new ones.
const replaceSQL = `DELETE FROM thing WHERE collection = $1::text AND written_xact IS DISTINCT FROM pg_current_xact_id()`

// dbRepair is the repair reported when the database made a geometry valid.
const dbRepair = "made valid with ST_MakeValid (self-intersections or overlapping rings)"

// Import stores every feature of src in one transaction, which opens when
// the first feature has arrived: a client that opens an import and waits
// holds no database connection. Faults of a feature's own data reject that
// feature; any other fault (a lost connection, a deadlock, a timeout)
// rolls the whole import back. The transaction creates the collection
// first (see openCollectionSQL) and, for a replace, ends by deleting what it
// did not write (replaceSQL).
func (s *SearchService) Import(ctx context.Context, opts geo.ImportOptions, src geo.FeatureSource) (geo.ImportResult, error) {
	opts, err := opts.Normalize()
	if err != nil {
		return geo.ImportResult{}, err
	}
	res := geo.ImportResult{Collection: opts.Collection}
	r := reader{src: src, res: &res, keys: map[string]int{}}
	first, err := r.next(ctx)
	var batch []pending
	vertices := 0
	switch {
	case errors.Is(err, io.EOF) && !opts.Replace:
		return res, nil // nothing to store
	case errors.Is(err, io.EOF):
		// An empty replace empties the collection.
	case err != nil:
		return geo.ImportResult{}, err
	default:
		batch, vertices = []pending{first}, first.vertices
	}
	openSQL := openCollectionSQL
	if opts.Replace {
		openSQL = replaceCollectionSQL
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		// ST_IsValid says why each invalid geometry is invalid in a NOTICE
		// that nobody reads; sending one per feature halved the rate of
		// an import of small invalid polygons (BenchmarkImport/bowties).
		if _, err := tx.Exec(ctx, "SET LOCAL client_min_messages = warning"); err != nil {
			return classify(ctx, "import", err)
		}
		if _, err := tx.Exec(ctx, openSQL, opts.Collection); err != nil {
			return classify(ctx, "import", err)
		}
		for more := len(batch) > 0; more; {
			p, err := r.next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			batch = append(batch, p)
			vertices += p.vertices
			if len(batch) >= batchFeatures || vertices >= batchVertices {
				if err := writeBatch(ctx, tx, opts.Collection, batch, &res); err != nil {
					return err
				}
				batch, vertices = batch[:0], 0
			}
		}
		if err := writeBatch(ctx, tx, opts.Collection, batch, &res); err != nil {
			return err
		}
		return finishImport(ctx, tx, opts, &res)
	})
	if err != nil {
		return geo.ImportResult{}, err
	}
	s.stats.invalidate()
	return res, nil
}

// reader takes features from an import's source, rejecting into res those
// whose key an earlier feature has or that cannot be encoded.
type reader struct {
	src  geo.FeatureSource
	res  *geo.ImportResult
	keys map[string]int // key -> index of the feature that has it
}

// next returns the next feature to store, io.EOF after the last one, or the
// source's error.
func (r *reader) next(ctx context.Context) (pending, error) {
	for {
		f, err := r.src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return pending{}, io.EOF
		}
		if err != nil {
			return pending{}, fmt.Errorf("read feature: %w", err)
		}
		if f.Key != "" {
			if first, dup := r.keys[f.Key]; dup {
				r.res.Rejected.Add(geo.Problem{Index: f.Index, Name: f.Name,
					Reason: fmt.Sprintf("key %q is already used by feature %d of this import", f.Key, first)})
				continue
			}
			r.keys[f.Key] = f.Index
		}
		p, err := newPending(f)
		if err != nil {
			r.res.Rejected.Add(geo.Problem{Index: f.Index, Name: f.Name, Reason: err.Error()})
			continue
		}
		return p, nil
	}
}

// pending is a feature encoded for the database.
type pending struct {
	f        geo.Feature
	wkb      []byte
	vertices int
}

// finishImport deletes, for a replace, what the import did not store, and
// marks the collection changed if the import changed anything.
func finishImport(ctx context.Context, tx pgx.Tx, opts geo.ImportOptions, res *geo.ImportResult) error {
	if opts.Replace {
		tag, err := tx.Exec(ctx, replaceSQL, opts.Collection)
		if err != nil {
			return classify(ctx, "import: delete what the replace did not import", err)
		}
		res.Deleted = tag.RowsAffected()
	}
	if res.Imported == 0 && res.Deleted == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, touchCollectionSQL, opts.Collection)
	return classify(ctx, "import", err)
}

func newPending(f geo.Feature) (pending, error) {
	b, err := wkb.Marshal(f.Geometry, binary.LittleEndian)
	if err != nil {
		return pending{}, fmt.Errorf("encode geometry: %w", err)
	}
	return pending{f: f, wkb: b, vertices: f.Geometry.NumCoords()}, nil
}

// insertArgs are insertThingsSQL's arguments for batch.
func insertArgs(collection string, batch []pending) pgx.NamedArgs {
	wkbs := make([][]byte, len(batch))
	keys := make([]string, len(batch))
	names := make([]string, len(batch))
	props := make([]map[string]any, len(batch))
	for i, p := range batch {
		wkbs[i], keys[i], names[i], props[i] = p.wkb, p.f.Key, p.f.Name, p.f.Properties
		if props[i] == nil {
			props[i] = map[string]any{}
		}
	}
	return pgx.NamedArgs{"collection": collection, "wkb": wkbs, "key": keys, "name": names, "properties": props}
}

// writeBatch stores batch in one statement (insertThingsSQL), under a
// savepoint that it releases, in one round trip. If the database refuses
// any feature, the batch is rolled back to its savepoint and replayed one
// feature at a time, each under its own savepoint, so that only the
// refused features are rejected. No savepoint outlives the call: an import
// of any size nests at most two.
func writeBatch(ctx context.Context, tx pgx.Tx, collection string, batch []pending, res *geo.ImportResult) error {
	if len(batch) == 0 {
		return nil
	}
	outcomes := make([]outcome, len(batch))
	var b pgx.Batch
	b.Queue("SAVEPOINT import_batch")
	b.Queue(insertThingsSQL, insertArgs(collection, batch)).Query(func(rows pgx.Rows) error {
		return scanOutcomes(rows, outcomes)
	})
	b.Queue("RELEASE SAVEPOINT import_batch")
	err := tx.SendBatch(ctx, &b).Close()
	if err == nil {
		for i := range batch {
			record(res, batch[i].f, outcomes[i])
		}
		return nil
	}
	if !refused(err) {
		return classify(ctx, "import", err)
	}
	if err := rollbackTo(ctx, tx, "import_batch"); err != nil {
		return err
	}
	for _, p := range batch {
		if err := writeOne(ctx, tx, collection, p, res); err != nil {
			return err
		}
	}
	return nil
}

func writeOne(ctx context.Context, tx pgx.Tx, collection string, p pending, res *geo.ImportResult) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT import_feature"); err != nil {
		return classify(ctx, "import", err)
	}
	outcomes := make([]outcome, 1)
	rows, err := tx.Query(ctx, insertThingsSQL, insertArgs(collection, []pending{p}))
	if err == nil {
		err = scanOutcomes(rows, outcomes)
	}
	o := outcomes[0]
	if err != nil {
		if !refused(err) {
			return classify(ctx, "import", err)
		}
		if err := rollbackTo(ctx, tx, "import_feature"); err != nil {
			return err
		}
		o = outcome{err: err}
	} else if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT import_feature"); err != nil {
		return classify(ctx, "import", err)
	}
	record(res, p.f, o)
	return nil
}

// rollbackTo undoes the work since savepoint name and removes it (ROLLBACK
// TO keeps a savepoint; without the RELEASE, each refused feature would
// nest one more level).
func rollbackTo(ctx context.Context, tx pgx.Tx, name string) error {
	for _, sql := range []string{"ROLLBACK TO SAVEPOINT " + name, "RELEASE SAVEPOINT " + name} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return classify(ctx, "import", err)
		}
	}
	return nil
}

// refused reports whether err is the database refusing one feature's data:
// a data exception (class 22), an integrity constraint (class 23), or an
// error PostGIS or GEOS raise about a geometry (XX000). Anything else (a
// lost connection, a deadlock, a lock or statement timeout, a missing
// privilege) is no fault of the feature and ends the whole import.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23") || pgErr.Code == "XX000"
}

// outcome is what the database did with one feature.
type outcome struct {
	stored   bool
	repaired bool
	err      error // a *pgconn.PgError: the database refused the feature
}

// scanOutcomes reads insertThingsSQL's answer into outcomes, one per
// feature of the batch: a feature without a row was not stored.
func scanOutcomes(rows pgx.Rows, outcomes []outcome) error {
	defer rows.Close()
	for rows.Next() {
		var ord int64
		var repaired bool
		if err := rows.Scan(&ord, &repaired); err != nil {
			return err
		}
		if ord < 1 || ord > int64(len(outcomes)) {
			return fmt.Errorf("import: the database answered for feature %d of a batch of %d", ord, len(outcomes))
		}
		outcomes[ord-1] = outcome{stored: true, repaired: repaired}
	}
	return rows.Err()
}

func record(res *geo.ImportResult, f geo.Feature, o outcome) {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(o.err, &pgErr):
		res.Rejected.Add(geo.Problem{Index: f.Index, Name: f.Name,
			Reason: "the database could not store this geometry: " + pgErr.Message})
		return
	case !o.stored:
		res.Rejected.Add(geo.Problem{Index: f.Index, Name: f.Name,
			Reason: "geometry has no area: its rings collapse to lines or points, even after repair"})
		return
	}
	res.Imported++
	repairs := f.Repairs
	if o.repaired {
		repairs = append(repairs[:len(repairs):len(repairs)], dbRepair)
	}
	if len(repairs) > 0 {
		res.Repaired++
		for _, r := range repairs {
			res.Repairs.Add(geo.Problem{Index: f.Index, Name: f.Name, Reason: r})
		}
	}
}
