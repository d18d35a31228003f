package postgis

import (
	"context"

	"github.com/geosearch/search/internal/geo"
)

// A tile that meets more things than its query's OverviewThings is drawn
// as an overview: the things smaller than a cell of the tile (64 MVT
// units, 4 pixels of a 256-pixel tile, in degrees) are counted per cell of
// a grid over the tile, found by their stored bounding boxes alone (no
// geometry is read), and each occupied cell is drawn as one square feature
// with no id, named "N things", its things attribute N; the larger things
// are drawn as themselves, as in any tile. A zoom 2 tile of 100,000 small
// squares is then a few hundred cells instead of 3.2 MB drawn and redrawn
// (docs/BENCHMARKS.md). The count that decides stops at OverviewThings + 1
// rows, so it costs at most that many index entries.
const (
	tileCount = `SELECT count(*) FROM (SELECT 1 FROM thing t
    WHERE t.collection = $?::text AND t.geom && ST_MakeEnvelope($?::float8, $?::float8, $?::float8, $?::float8, 4326)`
	tileCountClose = `
    LIMIT $?::bigint) c`

	overviewOpen = `WITH bounds AS (
    SELECT ST_TileEnvelope($?::int, $?::int, $?::int) AS merc
), clip AS (
    SELECT bounds.merc, ST_MakeEnvelope($?::float8, $?::float8, $?::float8, $?::float8, 4326)::box2d AS box, $?::float8 AS cell
    FROM bounds
), cells AS (
    SELECT floor((t.min_lng + t.max_lng) / 2 / clip.cell) AS cx, floor((t.min_lat + t.max_lat) / 2 / clip.cell) AS cy, count(*) AS n
    FROM thing t CROSS JOIN clip
    WHERE t.collection = $?::text AND t.geom && clip.box::geometry
      AND t.max_lng - t.min_lng < clip.cell AND t.max_lat - t.min_lat < clip.cell`
	overviewCells = `
    GROUP BY 1, 2
), tile AS (
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
      AND NOT (t.max_lng - t.min_lng < clip.cell AND t.max_lat - t.min_lat < clip.cell)`
	overviewClose = `
)`
)

// overviewCellUnits is the side of an overview cell in MVT units.
const overviewCellUnits = 64

// TileCountStatement returns the SQL and bind values that count the things
// meeting q's tile, up to limit.
func TileCountStatement(q geo.TileQuery, limit int) (string, []any) {
	var s statement
	west, south, east, north := q.Bounds()
	s.add(tileCount, q.Collection, west, south, east, north)
	for _, pf := range q.Properties {
		s.add(propertyIn, containmentObjects(pf))
	}
	s.add(tileCountClose, limit)
	return s.sql.String(), s.args
}

// OverviewStatement is TileStatement's overview: the small things counted
// per cell, the others drawn (coarsened, and only the limit largest when
// limit > 0).
func OverviewStatement(q geo.TileQuery, coarsen float64, limit int) (string, []any) {
	var s statement
	west, south, east, north := q.Bounds()
	cell := 360 / float64(int(1)<<q.Z) / geo.TileExtent * overviewCellUnits
	s.add(overviewOpen, q.Z, q.X, q.Y, west, south, east, north, cell, q.Collection)
	for _, pf := range q.Properties {
		s.add(propertyIn, containmentObjects(pf))
	}
	s.add(overviewCells)
	if len(q.Attributes) > 0 {
		s.add(overviewCellProps)
	}
	s.add(overviewCellGeometry, geo.TileExtent, geo.TileBuffer)
	if len(q.Attributes) > 0 {
		s.add(tileAttributes, q.Attributes)
	}
	s.add(tileGeometry, q.TileTolerance()*coarsen, geo.TileExtent, geo.TileBuffer, q.Collection)
	s.add(overviewLarge)
	for _, pf := range q.Properties {
		s.add(propertyIn, containmentObjects(pf))
	}
	if limit > 0 {
		s.add(tileLargestFirst, limit)
	}
	s.add(overviewClose)
	s.add(tileClose, q.Collection, geo.TileExtent)
	return s.sql.String(), s.args
}

// overview reports whether q's tile meets more than q.OverviewThings
// things.
func (s *SearchService) overview(ctx context.Context, q geo.TileQuery) (bool, error) {
	if q.OverviewThings <= 0 {
		return false, nil
	}
	sql, args := TileCountStatement(q, q.OverviewThings+1)
	var n int
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		return false, classify(ctx, "count tile things", err)
	}
	return n > q.OverviewThings, nil
}
