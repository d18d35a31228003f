package postgis

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// A tile statement is pg_tileserv's: the things whose geometry meets the
// tile (with its buffer) are found through the GiST index on thing.geom,
// cut to the tile's box in WGS 84 (geo.TileQuery.Bounds; ST_ClipByBox2D:
// cheap, and it drops what lies beyond Web Mercator's ±85° before
// ST_Transform, which cannot project the poles), simplified for the zoom in degrees (a tolerance
// below one tile unit, geo.TileQuery.TileTolerance, so a country of
// megabytes costs a few hundred vertices at zoom 2; ST_Simplify keeping
// collapsed parts, 2.3 times faster than ST_SimplifyPreserveTopology on
// the zoom 2 tile of Paris in BenchmarkTiles, and ST_AsMVTGeom then
// drops what is degenerate on the tile's grid), projected, snapped to
// the tile's grid by ST_AsMVTGeom and encoded by ST_AsMVT. Every value is
// a bind parameter; the layer is named after the collection.
//
// The box is computed, not projected back from the tile's envelope: PROJ
// folds longitudes into [-180, 180], so the envelope of a first or last
// column, buffer included, came back as a box round the other side of the
// world (-88.6 to 178.6 for column 0 at zoom 2) and the tile was empty.
//
// The tile CTE is MATERIALIZED: inlined (PostgreSQL inlines a CTE read
// once), its geometry expression was computed twice per thing, once for
// the final WHERE tile.geom IS NOT NULL and once for ST_AsMVT. Measured
// on the 1:10m countries, zoom 1: 540-600 ms against 330-370 ms.
//
// A tile larger than its byte bound is drawn again with outlines four
// times coarser, twice, then with the largest things only (by their stored
// bounding box, which reads no geometry), half as many each time.
const (
	tileOpen = `WITH bounds AS (
    SELECT ST_TileEnvelope($?::int, $?::int, $?::int) AS merc
), clip AS (
    SELECT bounds.merc, ST_MakeEnvelope($?::float8, $?::float8, $?::float8, $?::float8, 4326)::box2d AS box
    FROM bounds
), tile AS MATERIALIZED (
    SELECT t.id, t.name`
	tileAttributes = `,
        (SELECT jsonb_object_agg(p.key, p.value) FROM jsonb_each(t.properties) p
         WHERE p.key = ANY($?::text[]) AND jsonb_typeof(p.value) IN ('string', 'number', 'boolean')) AS props`
	tileGeometry = `,
        ST_AsMVTGeom(ST_Transform(ST_Simplify(ST_ClipByBox2D(t.geom, clip.box), $?::float8, true), 3857),
                     clip.merc, $?::int, $?::int, true) AS geom
    FROM thing t CROSS JOIN clip
    WHERE t.collection = $?::text AND t.geom && clip.box::geometry`
	tileLargestFirst = `
    ORDER BY (t.max_lng - t.min_lng) * (t.max_lat - t.min_lat) DESC, t.id
    LIMIT $?::bigint`
	tileClose = `
)
SELECT coalesce(ST_AsMVT(tile.*, $?::text, $?::int, 'geom', 'id'), ''::bytea), count(*) FROM tile WHERE tile.geom IS NOT NULL`

	collectionVersionSQL = `SELECT updated_at FROM collection WHERE name = $1::text`
)

// tileAttempts is how many times a tile is drawn coarser (tolerance x4)
// before things are left out, and tileMaxRounds bounds all attempts.
const (
	tileCoarser   = 2
	tileMaxRounds = 24
)

// TileStatement returns the SQL and bind values of q's tile, which must be
// valid, drawn with the tolerance times coarsen and, when limit > 0, only
// the limit largest things. Its row is the MVT and the number of features
// it holds. search-bench sends it straight to the database.
func TileStatement(q geo.TileQuery, coarsen float64, limit int) (string, []any) {
	var s statement
	west, south, east, north := q.Bounds()
	s.add(tileOpen, q.Z, q.X, q.Y, west, south, east, north)
	if len(q.Attributes) > 0 {
		s.add(tileAttributes, q.Attributes)
	}
	s.add(tileGeometry, q.TileTolerance()*coarsen, geo.TileExtent, geo.TileBuffer, q.Collection)
	for _, pf := range q.Properties {
		s.add(propertyIn, containmentObjects(pf))
	}
	if limit > 0 {
		s.add(tileLargestFirst, limit)
	}
	s.add(tileClose, q.Collection, geo.TileExtent)
	return s.sql.String(), s.args
}

// Tile implements geo.TileSource.
func (s *SearchService) Tile(ctx context.Context, q geo.TileQuery) (geo.Tile, error) {
	if err := q.Validate(); err != nil {
		return geo.Tile{}, err
	}
	coarsen, limit := 1.0, 0
	for round := 0; ; round++ {
		mvt, n, overview, err := s.drawTile(ctx, q, coarsen, limit)
		if err != nil {
			return geo.Tile{}, err
		}
		if len(mvt) <= q.MaxBytes || n <= 1 || round >= tileMaxRounds {
			if len(mvt) > q.MaxBytes {
				return geo.Tile{}, geo.Errorf(geo.Invalid, "tile %d/%d/%d of %q is %d bytes with one thing at its coarsest, above the bound of %d bytes", q.Z, q.Y, q.X, q.Collection, len(mvt), q.MaxBytes)
			}
			return geo.Tile{MVT: mvt, Reduced: round > 0 || overview}, nil
		}
		if round < tileCoarser {
			coarsen *= 4
		} else {
			limit = n / 2
		}
	}
}

// CollectionVersion implements geo.TileSource: the collection's
// updated_at, which imports and deletes move.
func (s *SearchService) CollectionVersion(ctx context.Context, collection string) (time.Time, error) {
	if err := geo.ValidateCollectionName(collection); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	err := s.pool.QueryRow(ctx, collectionVersionSQL, collection).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, geo.Errorf(geo.NotFound, "there is no collection %q", collection)
	}
	if err != nil {
		return time.Time{}, classify(ctx, "collection version", fmt.Errorf("read: %w", err))
	}
	return t, nil
}

var _ geo.TileSource = (*SearchService)(nil)
