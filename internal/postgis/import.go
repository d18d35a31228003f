package postgis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twpayne/go-geom/encoding/wkb"

	"github.com/geosearch/search/internal/geo"
)

// Import batches: a batch is sent in one round trip and is flushed when it
// holds this many features or vertices, whichever comes first.
const (
	batchFeatures = 200
	batchVertices = 500_000
)

// insertThingSQL stores one feature. A valid geometry is stored as it is; an
// invalid one is repaired with ST_MakeValid (structure method: outer rings
// are unioned, holes subtracted) keeping only the polygonal part. If nothing
// polygonal is left, no row is inserted and the feature is rejected. An
// existing key is replaced, so importing the same keyed data twice stores it
// once. The thing_part_sync trigger writes the parts in the same statement.
const insertThingSQL = `WITH input AS (
    SELECT ST_SetSRID(ST_GeomFromWKB(@wkb::bytea), 4326) AS raw
), checked AS (
    SELECT raw, ST_IsValid(raw) AS valid FROM input
), fixed AS (
    SELECT valid,
           ST_Multi(CASE WHEN valid THEN raw
                         ELSE ST_CollectionExtract(ST_MakeValid(raw, 'method=structure'), 3) END) AS geom
    FROM checked
)
INSERT INTO thing (key, name, properties, geom)
SELECT NULLIF(@key::text, ''), @name::text, @properties::jsonb, fixed.geom
FROM fixed
WHERE NOT ST_IsEmpty(fixed.geom)
ON CONFLICT (key) DO UPDATE
SET name = EXCLUDED.name, properties = EXCLUDED.properties,
    geom = EXCLUDED.geom, imported_at = now()
RETURNING NOT (SELECT valid FROM fixed)`

// dbRepair is the repair reported when the database made a geometry valid.
const dbRepair = "made valid with ST_MakeValid (self-intersections or overlapping rings)"

// Import stores every feature of src in one transaction.
func (s *SearchService) Import(ctx context.Context, src geo.FeatureSource) (geo.ImportResult, error) {
	var res geo.ImportResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var batch []pending
		vertices := 0
		keys := map[string]int{} // key -> index of the feature that has it
		for {
			f, err := src.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read feature: %w", err)
			}
			if f.Key != "" {
				if first, dup := keys[f.Key]; dup {
					res.Rejected = append(res.Rejected, geo.Problem{Index: f.Index, Name: f.Name,
						Reason: fmt.Sprintf("key %q is already used by feature %d of this import", f.Key, first)})
					continue
				}
				keys[f.Key] = f.Index
			}
			p, err := newPending(f)
			if err != nil {
				res.Rejected = append(res.Rejected, geo.Problem{Index: f.Index, Name: f.Name, Reason: err.Error()})
				continue
			}
			batch = append(batch, p)
			vertices += p.vertices
			if len(batch) >= batchFeatures || vertices >= batchVertices {
				if err := writeBatch(ctx, tx, batch, &res); err != nil {
					return err
				}
				batch, vertices = batch[:0], 0
			}
		}
		return writeBatch(ctx, tx, batch, &res)
	})
	if err != nil {
		return geo.ImportResult{}, err
	}
	return res, nil
}

// pending is a feature encoded for the database.
type pending struct {
	f        geo.Feature
	args     pgx.NamedArgs
	vertices int
}

func newPending(f geo.Feature) (pending, error) {
	b, err := wkb.Marshal(f.Geometry, binary.LittleEndian)
	if err != nil {
		return pending{}, fmt.Errorf("encode geometry: %w", err)
	}
	props := f.Properties
	if props == nil {
		props = map[string]any{}
	}
	return pending{
		f:        f,
		args:     pgx.NamedArgs{"wkb": b, "key": f.Key, "name": f.Name, "properties": props},
		vertices: f.Geometry.NumCoords(),
	}, nil
}

// writeBatch sends batch in one round trip. If the database refuses any
// feature, the batch is rolled back to its savepoint and replayed one feature
// at a time, each under its own savepoint, so that only the refused features
// are rejected. Connection failures abort the import.
func writeBatch(ctx context.Context, tx pgx.Tx, batch []pending, res *geo.ImportResult) error {
	if len(batch) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT import_batch"); err != nil {
		return classify(ctx, "import", err)
	}
	var b pgx.Batch
	outcomes := make([]outcome, len(batch))
	for i := range batch {
		b.Queue(insertThingSQL, batch[i].args).QueryRow(func(row pgx.Row) error {
			outcomes[i] = scanOutcome(row)
			return outcomes[i].err
		})
	}
	err := tx.SendBatch(ctx, &b).Close()
	if err == nil {
		for i := range batch {
			record(res, batch[i].f, outcomes[i])
		}
		return nil
	}
	if !refused(ctx, err) {
		return classify(ctx, "import", err)
	}
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT import_batch"); err != nil {
		return classify(ctx, "import", err)
	}
	for _, p := range batch {
		if err := writeOne(ctx, tx, p, res); err != nil {
			return err
		}
	}
	return nil
}

func writeOne(ctx context.Context, tx pgx.Tx, p pending, res *geo.ImportResult) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT import_feature"); err != nil {
		return classify(ctx, "import", err)
	}
	o := scanOutcome(tx.QueryRow(ctx, insertThingSQL, p.args))
	if o.err != nil {
		if !refused(ctx, o.err) {
			return classify(ctx, "import", o.err)
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT import_feature"); err != nil {
			return classify(ctx, "import", err)
		}
	} else if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT import_feature"); err != nil {
		return classify(ctx, "import", err)
	}
	record(res, p.f, o)
	return nil
}

// refused reports whether err is the database refusing one feature's data,
// as opposed to a connection failure or timeout, which abort the import.
func refused(ctx context.Context, err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && geo.ErrorCode(classify(ctx, "import", err)) == geo.Internal
}

// outcome is what the database did with one feature.
type outcome struct {
	stored   bool
	repaired bool
	err      error // a *pgconn.PgError: the database refused the feature
}

func scanOutcome(row pgx.Row) outcome {
	var repaired bool
	err := row.Scan(&repaired)
	if errors.Is(err, pgx.ErrNoRows) {
		return outcome{}
	}
	if err != nil {
		return outcome{err: err}
	}
	return outcome{stored: true, repaired: repaired}
}

func record(res *geo.ImportResult, f geo.Feature, o outcome) {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(o.err, &pgErr):
		res.Rejected = append(res.Rejected, geo.Problem{Index: f.Index, Name: f.Name,
			Reason: "the database could not store this geometry: " + pgErr.Message})
		return
	case !o.stored:
		res.Rejected = append(res.Rejected, geo.Problem{Index: f.Index, Name: f.Name,
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
			res.Repairs = append(res.Repairs, geo.Problem{Index: f.Index, Name: f.Name, Reason: r})
		}
	}
}
