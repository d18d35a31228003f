package postgis

import (
	"context"

	"github.com/geosearch/search/internal/geo"
)

// A tile of a query with OverviewThings set is drawn by one statement that
// first counts the things meeting the tile, stopping at OverviewThings + 1
// rows (so it costs at most that many index entries). Over the threshold
// the tile is an overview: the things smaller than a cell of the tile (64
// MVT units, 4 pixels of a 256-pixel tile, in degrees) are counted per
// cell of a grid over the tile, found by their stored bounding boxes alone
// (no geometry is read), and each occupied cell is drawn as one square
// feature with no id, named "N things", its things attribute N; the larger
// things are drawn as themselves, as in any tile. At or under it, every
// thing is drawn as itself. The count gates both parts as a one-time
// filter (an InitPlan), so the side not taken scans nothing, and the
// statement says which side it took. A zoom 2 tile of 100,000 small
// squares is then a few hundred cells instead of 3.2 MB drawn and redrawn
// (docs/BENCHMARKS.md). The tile CTE is MATERIALIZED for the reason
// tiles.go gives.
const (
	overviewOpen = `WITH bounds AS (
    SELECT ST_TileEnvelope($?::int, $?::int, $?::int) AS merc
), clip AS (
    SELECT bounds.merc, ST_MakeEnvelope($?::float8, $?::float8, $?::float8, $?::float8, 4326)::box2d AS box, $?::float8 AS cell
    FROM bounds
), counted AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM thing t CROSS JOIN clip
        WHERE t.collection = $?::text AND t.geom && clip.box::geometry`
	overviewCounted = `
        LIMIT $?::bigint) c
), cells AS (
    SELECT floor((t.min_lng + t.max_lng) / 2 / clip.cell) AS cx, floor((t.min_lat + t.max_lat) / 2 / clip.cell) AS cy, count(*) AS n
    FROM thing t CROSS JOIN clip
    WHERE (SELECT counted.n FROM counted) > $?::bigint
      AND t.collection = $?::text AND t.geom && clip.box::geometry
      AND t.max_lng - t.min_lng < clip.cell AND t.max_lat - t.min_lat < clip.cell`
	overviewCells = `
    GROUP BY 1, 2
), tile AS MATERIALIZED (
    SELECT NULL::bigint AS id, cells.n || ' things' AS name, cells.n AS things`
	overviewCellProps    = `, NULL::jsonb AS props`
	overviewCellGeometry = `,
        ST_AsMVTGeom(ST_Transform(ST_ClipByBox2D(ST_MakeEnvelope(cells.cx * clip.cell, cells.cy * clip.cell,
                                                                 (cells.cx + 1) * clip.cell, (cells.cy + 1) * clip.cell, 4326), clip.box), 3857),
                     clip.merc, $?::int, $?::int, true) AS geom
    FROM cells CROSS JOIN clip
    UNION ALL (
    SELECT t.id, t.name, NULL::bigint AS things`
	overviewLarge = `
      AND ((SELECT counted.n FROM counted) <= $?::bigint
           OR NOT (t.max_lng - t.min_lng < clip.cell AND t.max_lat - t.min_lat < clip.cell))`
	overviewClose = `
))
SELECT coalesce(ST_AsMVT(tile.*, $?::text, $?::int, 'geom', 'id'), ''::bytea), count(*), (SELECT counted.n FROM counted) > $?::bigint
FROM tile WHERE tile.geom IS NOT NULL`
)

// overviewCellUnits is the side of an overview cell in MVT units.
const overviewCellUnits = 64

// OverviewStatement is TileStatement for a query with OverviewThings set:
// the count, then the overview or the plain tile (coarsened, and only the
// limit largest things when limit > 0). Its row is the MVT, the number of
// features it holds and whether it is an overview.
func OverviewStatement(q geo.TileQuery, coarsen float64, limit int) (string, []any) {
	var s statement
	west, south, east, north := q.Bounds()
	cell := 360 / float64(int(1)<<q.Z) / geo.TileExtent * overviewCellUnits
	s.add(overviewOpen, q.Z, q.X, q.Y, west, south, east, north, cell, q.Collection)
	s.propertyFilters(q.Properties)
	s.add(overviewCounted, q.OverviewThings+1, q.OverviewThings, q.Collection)
	s.propertyFilters(q.Properties)
	s.add(overviewCells)
	if len(q.Attributes) > 0 {
		s.add(overviewCellProps)
	}
	s.add(overviewCellGeometry, geo.TileExtent, geo.TileBuffer)
	if len(q.Attributes) > 0 {
		s.add(tileAttributes, q.Attributes)
	}
	s.add(tileGeometry, q.TileTolerance()*coarsen, geo.TileExtent, geo.TileBuffer, q.Collection)
	s.add(overviewLarge, q.OverviewThings)
	s.propertyFilters(q.Properties)
	if limit > 0 {
		s.add(tileLargestFirst, limit)
	}
	s.add(overviewClose, q.Collection, geo.TileExtent, q.OverviewThings)
	return s.sql.String(), s.args
}

// propertyFilters adds the property filters of a tile.
func (s *statement) propertyFilters(pfs []geo.PropertyFilter) {
	for _, pf := range pfs {
		s.add(propertyIn, containmentObjects(pf))
	}
}

// drawTile sends one drawing of q's tile: the MVT, its number of features
// and whether it is an overview.
func (s *SearchService) drawTile(ctx context.Context, q geo.TileQuery, coarsen float64, limit int) ([]byte, int, bool, error) {
	var mvt []byte
	var n int
	var overview bool
	var err error
	if q.OverviewThings > 0 {
		sql, args := OverviewStatement(q, coarsen, limit)
		err = s.pool.QueryRow(ctx, sql, args...).Scan(&mvt, &n, &overview)
	} else {
		sql, args := TileStatement(q, coarsen, limit)
		err = s.pool.QueryRow(ctx, sql, args...).Scan(&mvt, &n)
	}
	if err != nil {
		return nil, 0, false, classify(ctx, "draw tile", err)
	}
	return mvt, n, overview, nil
}
