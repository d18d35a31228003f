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

// Import stores every feature of src in one transaction, which opens when
// the first feature has arrived: a client that opens an import and waits
// holds no database connection. Faults of a feature's own data reject that
// feature; any other fault (a lost connection, a deadlock, a timeout)
// rolls the whole import back.
func (s *SearchService) Import(ctx context.Context, src geo.FeatureSource) (geo.ImportResult, error) {
	var res geo.ImportResult
	r := reader{src: src, res: &res, keys: map[string]int{}}
	first, err := r.next(ctx)
	if errors.Is(err, io.EOF) {
		return res, nil // nothing to store
	}
	if err != nil {
		return geo.ImportResult{}, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		batch, vertices := []pending{first}, first.vertices
		for {
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
				r.res.Rejected = append(r.res.Rejected, geo.Problem{Index: f.Index, Name: f.Name,
					Reason: fmt.Sprintf("key %q is already used by feature %d of this import", f.Key, first)})
				continue
			}
			r.keys[f.Key] = f.Index
		}
		p, err := newPending(f)
		if err != nil {
			r.res.Rejected = append(r.res.Rejected, geo.Problem{Index: f.Index, Name: f.Name, Reason: err.Error()})
			continue
		}
		return p, nil
	}
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

// writeBatch sends batch in one round trip, under a savepoint that it
// releases. If the database refuses any feature, the batch is rolled back to
// its savepoint and replayed one feature at a time, each under its own
// savepoint, so that only the refused features are rejected. No savepoint
// outlives the call: an import of any size nests at most two.
func writeBatch(ctx context.Context, tx pgx.Tx, batch []pending, res *geo.ImportResult) error {
	if len(batch) == 0 {
		return nil
	}
	var b pgx.Batch
	b.Queue("SAVEPOINT import_batch")
	outcomes := make([]outcome, len(batch))
	for i := range batch {
		b.Queue(insertThingSQL, batch[i].args).QueryRow(func(row pgx.Row) error {
			outcomes[i] = scanOutcome(row)
			return outcomes[i].err
		})
	}
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
		if !refused(o.err) {
			return classify(ctx, "import", o.err)
		}
		if err := rollbackTo(ctx, tx, "import_feature"); err != nil {
			return err
		}
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
