package postgis

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/geosearch/search/internal/geo"
)

// Results are ordered by (name COLLATE "C", id), byte-wise so that every
// server and every locale pages the same way. A page starts after the cursor
// ($2, $3 below); the first page uses (”, 0), which precedes
// every row because names are never empty.
//
// The point query finds candidate parts through their GiST index. A point in
// the interior of a part is in the interior of the thing (a part is a subset
// of it), so ST_Contains on the part settles it. A point on a part's boundary
// is either on the thing's boundary (not contained) or on a line along which
// ST_Subdivide cut it (contained); only then is the whole geometry consulted.
// The answer is therefore exactly ST_Contains(thing.geom, point).
//
// The parameters are positional, the same in every statement: $1 the ILIKE
// pattern, $2 and $3 the cursor's name and id, $4 the limit, $5 whether to
// return geometry, and for points $6 lng and $7 lat. (pgx's named arguments
// would rewrite the SQL text on every call: a fifth of the server's
// allocations per search.)
//
// Each hit's thing is then fetched by primary key. The OFFSET 0 keeps the
// planner from flattening that lookup into a join: estimating a dozen hits,
// it would otherwise hash-join them against a scan of every thing, which
// costs more than the rest of the query on the 1:10m countries (a point is
// in zero to two things). EXPLAIN and the measurements are in
// docs/BENCHMARKS.md.
const (
	// thingColumns are the columns ScanThing reads; the geometry is sent
	// when the parameter after them is true ($5 in searches).
	thingColumnsBefore = `t.id, coalesce(t.key, ''), t.name, t.properties,
       t.min_lng, t.min_lat, t.max_lng, t.max_lat,
       CASE WHEN `
	thingColumnsAfter = `::boolean THEN ST_AsGeoJSON(t.geom) ELSE '' END`
	thingColumns      = thingColumnsBefore + `$5` + thingColumnsAfter

	searchByPointSQL = `WITH pt AS (
    SELECT ST_SetSRID(ST_MakePoint($6::float8, $7::float8), 4326) AS g
), hit AS (
    SELECT p.thing_id, bool_or(ST_Contains(p.geom, pt.g)) AS inside
    FROM thing_part p, pt
    WHERE ST_Intersects(p.geom, pt.g)
    GROUP BY p.thing_id
)
SELECT ` + thingColumns + `
FROM hit CROSS JOIN pt CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
WHERE (hit.inside OR ST_Contains(t.geom, pt.g))
  AND t.name ILIKE $1::text
  AND (t.name COLLATE "C", t.id) > ($2::text COLLATE "C", $3::bigint)
ORDER BY t.name COLLATE "C", t.id
LIMIT $4::bigint`

	// The box query finds the parts that intersect the box, or either half
	// of a box across the antimeridian ($6 > $8), through their GiST index.
	// Parameters $6 to $9 are the box's min lng, min lat, max lng, max lat.
	// EXPLAIN ANALYZE on the 1:50m countries: an Index Scan on
	// thing_part_geom_idx for a box, a BitmapOr of two Bitmap Index Scans on
	// it for a box across the line, then things by primary key. Every part
	// the box meets is read before the page is cut, so a box over a whole
	// large collection costs as much as the collection; without a box the
	// items are listed by name through thing_order_idx instead.
	searchByBBoxSQL = `WITH box AS (
    SELECT ST_MakeEnvelope($6::float8, $7::float8, CASE WHEN $6::float8 <= $8::float8 THEN $8::float8 ELSE 180 END, $9::float8, 4326) AS east,
           CASE WHEN $6::float8 > $8::float8 THEN ST_MakeEnvelope(-180, $7::float8, $8::float8, $9::float8, 4326) END AS west
), hit AS (
    SELECT DISTINCT p.thing_id
    FROM thing_part p, box
    WHERE ST_Intersects(p.geom, box.east) OR (box.west IS NOT NULL AND ST_Intersects(p.geom, box.west))
)
SELECT ` + thingColumns + `
FROM hit CROSS JOIN LATERAL (SELECT * FROM thing WHERE thing.id = hit.thing_id OFFSET 0) t
WHERE t.name ILIKE $1::text
  AND (t.name COLLATE "C", t.id) > ($2::text COLLATE "C", $3::bigint)
ORDER BY t.name COLLATE "C", t.id
LIMIT $4::bigint`

	searchByNameSQL = `SELECT ` + thingColumns + `
FROM thing t
WHERE t.name ILIKE $1::text
  AND (t.name COLLATE "C", t.id) > ($2::text COLLATE "C", $3::bigint)
ORDER BY t.name COLLATE "C", t.id
LIMIT $4::bigint`
)

// WholeGeometryPointSQL answers the point query the naive way: ST_Contains
// against every candidate's whole geometry, without the parts table. It takes
// the same parameters as the statement SearchStatement returns for a point
// query and returns the same columns in the same order. The service never
// sends it; it is the reference that search-bench measures the parts against.
const WholeGeometryPointSQL = `SELECT ` + thingColumns + `
FROM thing t
WHERE ST_Contains(t.geom, ST_SetSRID(ST_MakePoint($6::float8, $7::float8), 4326))
  AND t.name ILIKE $1::text
  AND (t.name COLLATE "C", t.id) > ($2::text COLLATE "C", $3::bigint)
ORDER BY t.name COLLATE "C", t.id
LIMIT $4::bigint`

// SearchStatement returns the SQL and the bind values Search sends for q,
// which must be valid, so that search-bench can send the very same statement
// straight to the database. Rows scan with ScanThing; there is one row more
// than q.Limit when a next page exists.
func SearchStatement(q geo.Query) (string, []any) {
	after := geo.Cursor{}
	if q.After != nil {
		after = *q.After
	}
	// One more than the limit tells whether a next page exists.
	args := []any{likePattern(q.Query), after.Name, after.ID, q.Limit + 1, q.IncludeGeometry}
	switch {
	case q.Point != nil:
		return searchByPointSQL, append(args, q.Point.Lng, q.Point.Lat)
	case q.BBox != nil:
		return searchByBBoxSQL, append(args, q.BBox.MinLng, q.BBox.MinLat, q.BBox.MaxLng, q.BBox.MaxLat)
	default:
		return searchByNameSQL, args
	}
}

// Search returns one page of things matching q.
func (s *SearchService) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	if err := q.Filter.Validate(); err != nil {
		return geo.Page{}, err
	}
	if q.Limit <= 0 {
		return geo.Page{}, geo.Errorf(geo.Invalid, "page size must be positive")
	}
	sql, args := SearchStatement(q)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return geo.Page{}, classify(ctx, "search", err)
	}
	defer rows.Close()
	var page geo.Page
	size := 0
	for rows.Next() {
		t, err := ScanThing(rows)
		if err != nil {
			return geo.Page{}, classify(ctx, "search", err)
		}
		if len(page.Things) == q.Limit { // the row beyond the limit: a next page exists
			page.Next = &geo.Cursor{Name: page.Things[q.Limit-1].Name, ID: page.Things[q.Limit-1].ID}
			break
		}
		page.Things = append(page.Things, t)
		if q.MaxBytes > 0 {
			for _, v := range rows.RawValues() {
				size += len(v)
			}
			if size >= q.MaxBytes {
				// Cut the page here; the rows not read are discarded as
				// they arrive, never held.
				page.Next = &geo.Cursor{Name: t.Name, ID: t.ID}
				break
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return geo.Page{}, classify(ctx, "search", err)
	}
	return page, nil
}

// getSQL takes the id ($1) and whether to return the geometry ($2).
const getSQL = `SELECT ` + thingColumnsBefore + `$2` + thingColumnsAfter + `
FROM thing t
WHERE t.id = $1::bigint`

// Get returns the thing with id, NotFound if there is none.
func (s *SearchService) Get(ctx context.Context, id int64, includeGeometry bool) (geo.Thing, error) {
	rows, err := s.pool.Query(ctx, getSQL, id, includeGeometry)
	if err != nil {
		return geo.Thing{}, classify(ctx, "get thing", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, ScanThing)
	if errors.Is(err, pgx.ErrNoRows) {
		return geo.Thing{}, geo.Errorf(geo.NotFound, "there is no thing with id %d", id)
	}
	return t, classify(ctx, "get thing", err)
}

// ScanThing scans one row of the statements SearchStatement returns.
func ScanThing(row pgx.CollectableRow) (geo.Thing, error) {
	var t geo.Thing
	err := row.Scan(&t.ID, &t.Key, &t.Name, &t.Properties,
		&t.BBox.MinLng, &t.BBox.MinLat, &t.BBox.MaxLng, &t.BBox.MaxLat, &t.GeometryGeoJSON)
	return t, err
}

// likePattern matches names containing query literally: ILIKE's wildcards
// and its escape character in the query are escaped. An empty query matches
// every name.
func likePattern(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 2)
	b.WriteByte('%')
	for _, r := range query {
		if r == '%' || r == '_' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('%')
	return b.String()
}
